"""The pure heart of the service: a batch of command records -> engine -> encoded outputs.

No Kafka, Redis or S3 here, so the whole transform is tested without a stack. The loop feeds
it ``(offset, value)`` pairs and publishes what it returns.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from bourse.domain import errors
from bourse.domain.admin_auth import AdminVerifier
from bourse.domain.codec import CommandDecodeError, decode_record
from bourse.domain.commands import RejectedAdmin
from bourse.domain.enums import ExecutionType
from bourse.domain.event_codec import encode_event, encode_events
from bourse.domain.events import (
    AccountBalances,
    AccountFeesUpdated,
    AccountUpdated,
    DepthUpdate,
    Event,
    ExecutionReport,
    Reply,
    SymbolUpdated,
    Trade,
)
from bourse.domain.symbols import SymbolSpec
from bourse.engine import Engine

log = logging.getLogger("matching_service.pipeline")

# Kafka's default max.message.bytes is 1 MiB; records stay well under it.
DEFAULT_MAX_RECORD_BYTES = 512 * 1024
_REPLY_START = b'{"type":"Reply",'  # unescaped only where an envelope starts


@dataclass(slots=True)
class BatchOutput:
    """What one batch of commands produced, ready to publish."""

    first_offset: int
    next_offset: int  # the consumer position after the batch: what the transaction commits
    commands: int = 0
    undecodable: int = 0
    events: int = 0
    last_seq: int = 0  # 0 when the batch produced no event
    records: list[bytes] = field(default_factory=list)  # values for bourse.events
    replies: list[tuple[str, bytes]] = field(default_factory=list)  # (request id, reply)
    depth_symbols: list[str] = field(default_factory=list)  # symbols whose book changed
    last_trades: dict[str, Trade] = field(default_factory=dict)
    # The account and symbol view (bourse.adapters.redis_book), folded over the batch: only
    # the last state of each order / balance / symbol matters, so each is written once.
    orders: dict[tuple[int, str, int], ExecutionReport] = field(default_factory=dict)
    balances: dict[tuple[int, str], tuple[int, int]] = field(default_factory=dict)
    symbols: dict[str, SymbolSpec] = field(default_factory=dict)
    fees: dict[int, tuple[int, int]] = field(default_factory=dict)
    accounts: dict[int, str] = field(default_factory=dict)  # account -> "ACTIVE" / "FROZEN"
    # Every TRADE report, in seq order (not folded: each is a fill myTrades lists).
    fills: list[ExecutionReport] = field(default_factory=list)
    refused_admin: int = 0  # admin records that were not validly signed (RejectedAdmin)
    late: int = 0  # commands refused because they reached the engine after their deadline
    clock: int = 0  # the sequencer's time the batch was judged by (0: none)


def _encode_bounded(events: list[Event], limit: int, out: list[bytes]) -> None:
    data = encode_events(events)
    if len(data) <= limit or len(events) == 1:
        out.append(data)
        return
    half = len(events) // 2
    _encode_bounded(events[:half], limit, out)
    _encode_bounded(events[half:], limit, out)


def join_records(parts: list[bytes], *, max_record_bytes: int) -> list[bytes]:
    """Concatenate per-command JSON arrays into records of at most ``max_record_bytes``."""
    out: list[bytes] = []
    group: list[bytes] = []
    size = 2
    for part in parts:
        if len(part) <= 2:  # a command with no events cannot exist (Reply), but be exact
            continue
        if group and size + len(part) - 1 > max_record_bytes:
            out.append(b"[" + b",".join(group) + b"]")
            group, size = [], 2
        group.append(part[1:-1])
        size += len(part) - 1
    if group:
        out.append(b"[" + b",".join(group) + b"]")
    return out


def run_batch(
    engine: Engine,
    records: Iterable[tuple[int, bytes]],
    *,
    verifier: AdminVerifier,
    publish: bool = True,
    want_replies: bool = True,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    clock: Callable[[int], int] | None = None,
) -> BatchOutput:
    """Apply the commands in ``records`` (offset order) to ``engine``.

    ``clock``: the sequencer's time (ms) for a commands offset, asked only for a command with a
    deadline: the live batch's wall clock, or on a replay the clock the first run recorded
    (``matching_service.clocks``). None: no command is judged late (a replay of a log
    written before deadlines existed, the tests' reference runs).

    ``publish=False`` is the replay of commands whose events are already committed: the engine
    state advances exactly as before but nothing is encoded for Kafka. An undecodable record is
    skipped with an error log: it is skipped identically on every replay, so determinism holds,
    and the service does not crash-loop on one poison record.

    ``verifier`` holds the trusted admin signing keys: an admin command that is not in a
    SIGNED record verifying against one of them is decoded as a ``RejectedAdmin``, which the
    engine refuses (-1002) and records (``codec.decode_record``). The same keys on every replay
    give the same decisions, so determinism holds here too.
    """
    first = -1
    last = -1
    events: list[Event] = []
    replies: list[tuple[str, bytes]] = []
    depth: dict[str, None] = {}  # insertion-ordered set
    trades: dict[str, Trade] = {}
    orders: dict[tuple[int, str, int], ExecutionReport] = {}
    balances: dict[tuple[int, str], tuple[int, int]] = {}
    symbols: dict[str, SymbolSpec] = {}
    fees: dict[int, tuple[int, int]] = {}
    accounts: dict[int, str] = {}
    fills: list[ExecutionReport] = []
    n = 0
    bad = 0
    refused = 0
    late = 0
    process = engine.process
    # One line per command only when asked for (DEBUG): at thousands of commands per second
    # the log would otherwise cost more than matching.
    trace = log.isEnabledFor(logging.DEBUG)
    # Each command's events are encoded once, as one JSON array; records are joins of those
    # arrays (so a record never splits a command) and the reply for Redis is the tail of the
    # same bytes (the Reply envelope is always last), not a second encoding.
    parts: list[bytes] = []
    for offset, value in records:
        if first < 0:
            first = offset
        last = offset
        try:
            command = decode_record(value, verifier)
        except CommandDecodeError as exc:
            bad += 1
            log.error("undecodable command skipped", extra={"offset": offset, "error": str(exc)})
            continue
        if type(command) is RejectedAdmin:
            refused += 1
            if publish:  # once, when it happens, not on every replay
                log.warning(
                    "admin command refused: not signed by the admin plane",
                    extra={"offset": offset, "requestId": command.request_id,
                           "command": command.command, "reason": command.reason,
                           "principal": command.principal},
                )  # fmt: skip
        judged = clock is not None and getattr(command, "deadline", 0) != 0
        out = process(command, clock(offset)) if judged and clock is not None else process(command)
        n += 1
        events.extend(out)
        reply = out[-1]
        if judged and isinstance(reply, Reply) and reply.code == errors.INVALID_TIMESTAMP:
            late += 1
        if trace and isinstance(reply, Reply):
            log.debug(
                "command applied",
                extra={"offset": offset, "requestId": reply.request_id, "seq": reply.seq,
                       "command": reply.command, "code": reply.code, "published": publish},
            )  # fmt: skip
        if publish:
            data = encode_events(out)
            if len(data) <= max_record_bytes:
                parts.append(data)
            else:  # e.g. a sweep of thousands of levels: split it, Kafka caps record size
                _encode_bounded(out, max_record_bytes, parts)
            if want_replies and isinstance(reply, Reply) and reply.request_id:
                replies.append((reply.request_id, data[data.rfind(_REPLY_START) : -1]))
        elif want_replies and isinstance(reply, Reply) and reply.request_id:
            replies.append((reply.request_id, encode_event(reply)))
    last_seq = events[-1].seq if events else 0
    for event in events:
        # isinstance narrows for the type checker; events are final classes, so it is the
        # same test as ``type(event) is``. Commonest first.
        if isinstance(event, ExecutionReport):
            info = event.order
            orders[(info.account_id, info.symbol, info.order_id)] = event
            if event.exec_type is ExecutionType.TRADE:
                fills.append(event)
        elif isinstance(event, Trade):
            trades[event.symbol] = event
        elif isinstance(event, DepthUpdate):
            depth[event.symbol] = None
        elif isinstance(event, AccountBalances):
            for asset, free, locked in event.balances:
                balances[(event.account_id, asset)] = (free, locked)
        elif isinstance(event, SymbolUpdated):
            symbols[event.spec.symbol] = event.spec
        elif isinstance(event, AccountFeesUpdated):
            fees[event.account_id] = (event.maker_rate, event.taker_rate)
        elif isinstance(event, AccountUpdated):
            accounts[event.account_id] = event.status
    return BatchOutput(
        first_offset=first,
        next_offset=last + 1,
        commands=n,
        undecodable=bad,
        events=len(events),
        last_seq=last_seq,
        records=join_records(parts, max_record_bytes=max_record_bytes),
        replies=replies,
        depth_symbols=list(depth),
        last_trades=trades,
        orders=orders,
        balances=balances,
        symbols=symbols,
        fees=fees,
        accounts=accounts,
        fills=fills,
        refused_admin=refused,
        late=late,
    )
