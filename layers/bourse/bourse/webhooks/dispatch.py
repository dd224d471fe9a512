"""Which messages one batch of user-data events makes, per target (a webhook or an account's
queue), idempotently by seq.

A target receives the events of commands made from its registration on: those whose time
(the command's, set when the API took it) is not before the registration's. A dispatcher that
lags behind (or a batch delivered again) may hold older events of the account: they are not
the new target's.

Every target has a high-water mark: the highest seq already enqueued for it. Events at or below
it are dropped, so a batch delivered again by the event source (after a failure, a timeout or a
restart: the MSK trigger is at-least-once) enqueues nothing twice, however late it comes. Below
that, SQS FIFO's deduplication id ``<target>:<seq>`` covers a batch that failed half way,
before the marks were written (FIFO keeps ids for 5 minutes). Each target's messages share one
message group, so FIFO delivers them in seq order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bourse.webhooks.events import UserEvent, body

WEBHOOK = "WEBHOOK"
QUEUE = "QUEUE"


@dataclass(frozen=True, slots=True)
class Target:
    target_id: str  # the webhook id, or "queue-<accountId>"
    kind: str  # WEBHOOK (through the delivery queue) or QUEUE (the account's own)
    account_id: int
    high_water: int = 0
    queue_url: str = ""  # QUEUE: the account's queue
    from_ts: int = 0  # its registration's time (ms)


@dataclass(frozen=True, slots=True)
class Outgoing:
    seq: int
    group_id: str
    dedup_id: str
    body: bytes


def messages_for(target: Target, events: Sequence[UserEvent]) -> list[Outgoing]:
    """``target``'s messages among the events (already the target's account's), in order."""
    out: list[Outgoing] = []
    last = target.high_water
    for event in events:
        if event.seq <= last or event.ts < target.from_ts:
            continue
        last = event.seq
        if target.kind == WEBHOOK:
            payload, group = body(event, target.target_id), target.target_id
        else:
            payload, group = body(event), str(target.account_id)
        out.append(Outgoing(event.seq, group, f"{target.target_id}:{event.seq}", payload))
    return out


def plan(
    events: Sequence[UserEvent], targets: Mapping[int, Sequence[Target]]
) -> list[tuple[Target, list[Outgoing]]]:
    """Each target with messages to send, with them; accounts without a target cost nothing."""
    by_account: dict[int, list[UserEvent]] = {}
    for event in events:
        if event.account_id in targets:
            by_account.setdefault(event.account_id, []).append(event)
    out: list[tuple[Target, list[Outgoing]]] = []
    for account_id, mine in by_account.items():
        for target in targets[account_id]:
            messages = messages_for(target, mine)
            if messages:
                out.append((target, messages))
    return out
