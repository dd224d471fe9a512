"""What a workload asked for and what the engine made of it, for a benchmark's output.

``Mix.add(cmd, events)`` after each ``Engine.process`` (outside the timed region) counts the
commands by kind, the rejected ones by kind and reason, and the outcomes seen in the events:
trades, stops triggered (trailing ones apart), iceberg refills, prevented self-trades. The
counts are of what happened, not of what the generator meant: a cancel of an order that has
filled meanwhile is a rejected cancel, a self-crossing order whose own resting order is gone
prevents nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from bourse.domain.commands import CancelOrder, Command, NewOrder
from bourse.domain.enums import STOP_TYPES, ExecutionType, OrderStatus, OrderType
from bourse.domain.events import ExecutionReport, PreventedMatch, Reply, Trade

_FINAL = frozenset(
    {
        OrderStatus.FILLED,
        OrderStatus.CANCELED,
        OrderStatus.REJECTED,
        OrderStatus.EXPIRED,
        OrderStatus.EXPIRED_IN_MATCH,
    }
)


def kind_of(cmd: Command) -> str:
    if isinstance(cmd, CancelOrder):
        return "cancel"
    if not isinstance(cmd, NewOrder):
        return type(cmd).__name__
    if cmd.trailing_delta is not None:
        return f"trailing {cmd.type.value}"
    if cmd.type in STOP_TYPES:
        return cmd.type.value
    if cmd.quote_order_qty is not None:
        return "MARKET by quote"
    if cmd.type is OrderType.MARKET:
        return "MARKET"
    if cmd.iceberg_qty is not None:
        return "LIMIT iceberg"
    if cmd.stp_mode is not None:
        return f"LIMIT self-cross {cmd.stp_mode.value}"
    return f"LIMIT {cmd.time_in_force}"


class Mix:
    def __init__(self) -> None:
        self.commands = 0
        self.kinds: Counter[str] = Counter()
        self.ns: Counter[str] = Counter()  # time inside Engine.process, by kind
        self.rejected: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.trades = 0
        self.stops_triggered = 0
        self.trailing_triggered = 0
        self.stops_expired_unfunded = 0
        self.prevented = 0
        self.refills = 0
        # Iceberg order id -> visible quantity left in its current slice, once it rests.
        self._slices: dict[int, int] = {}

    def add(self, cmd: Command, events: Sequence[object], elapsed_ns: int = 0) -> None:
        kind = kind_of(cmd)
        self.commands += 1
        self.kinds[kind] += 1
        self.ns[kind] += elapsed_ns
        tally = self.events
        for event in events:
            tally[type(event).__name__] += 1
            if type(event) is ExecutionReport:
                self._report(event)
            elif type(event) is Trade:
                self.trades += 1
            elif type(event) is PreventedMatch:
                self.prevented += 1
            elif type(event) is Reply and event.code:
                self.rejected[kind] += 1
                self.reasons[f"{event.code} {event.msg}"] += 1

    def _report(self, report: ExecutionReport) -> None:
        info = report.order
        if report.exec_type is ExecutionType.NEW:
            # A stop's second NEW report, working this time, is its trigger.
            if report.is_working and info.type in STOP_TYPES:
                self.stops_triggered += 1
                if info.trailing_delta:
                    self.trailing_triggered += 1
            return
        if info.type in STOP_TYPES and report.reject_reason == "INSUFFICIENT_BALANCE":
            self.stops_expired_unfunded += 1
        if info.iceberg_qty and report.exec_type is ExecutionType.TRADE and report.is_maker:
            self._iceberg_fill(report)
        if report.status in _FINAL:
            self._slices.pop(info.order_id, None)

    def _iceberg_fill(self, report: ExecutionReport) -> None:
        """The engine shows the next slice when the visible one is used up (engine.py)."""
        info = report.order
        left = self._slices.get(info.order_id)
        if left is None:  # its first fill as a maker: it rested after what it took
            before = report.cum_qty - report.last_qty
            left = min(info.iceberg_qty, info.quantity - before)
        left -= report.last_qty
        if left <= 0 and report.status is OrderStatus.PARTIALLY_FILLED:
            self.refills += 1
            left = min(info.iceberg_qty, info.quantity - report.cum_qty)
        self._slices[info.order_id] = left

    def lines(self) -> list[str]:
        """The mix, for humans: two or three lines."""
        kinds = ", ".join(
            f"{kind} {n}" + (f" ({self.rejected[kind]} rejected)" if self.rejected[kind] else "")
            for kind, n in sorted(self.kinds.items(), key=lambda kv: -kv[1])
        )
        rejected = sum(self.rejected.values())
        reasons = ", ".join(f"{reason!r} {n}" for reason, n in self.reasons.most_common(6))
        events = ", ".join(f"{name} {n}" for name, n in self.events.most_common())
        return [
            f"mix: {self.commands} commands: {kinds}",
            f"outcomes: {rejected} rejected ({reasons}); {self.trades} trades; "
            f"{self.stops_triggered} stops triggered ({self.trailing_triggered} trailing, "
            f"{self.stops_expired_unfunded} expired unfunded); {self.refills} iceberg refills; "
            f"{self.prevented} prevented self-trades",
            f"events: {sum(self.events.values())} ({events})",
        ]

    def cost_line(self) -> str:
        """Mean microseconds inside ``process`` by kind, dearest first (when timed)."""
        means = {kind: self.ns[kind] / n / 1e3 for kind, n in self.kinds.items()}
        costs = ", ".join(
            f"{kind} {us:.1f}" for kind, us in sorted(means.items(), key=lambda kv: -kv[1])
        )
        return f"mean us by kind: {costs}"
