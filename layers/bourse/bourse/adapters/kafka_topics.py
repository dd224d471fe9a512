"""The Kafka topics Bourse uses, with their partition counts: the one list of them.

The local stack creates exactly these; the matching service and consumers take names from here
(through settings) so a topic cannot be renamed in one place only.

Partitioning is part of the design, not a tuning knob:
- ``commands`` has exactly one partition: its offsets *are* the global command sequence, and
  recovery replays it from a snapshot's offset. More partitions would break ordering.
- ``events`` has one partition too, so every consumer sees events in global ``seq`` order. If
  it is ever split (e.g. by symbol), order holds only per partition and consumers must keep
  one high-water ``seq`` per partition.
- ``marketdata`` carries depth diffs and tickers for the broadcaster; also one partition, since
  a depth diff is useless out of order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bourse.settings import Settings

_WEEK_MS = 7 * 24 * 3600 * 1000
_DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)


def topic_specs(settings: Settings) -> list[TopicSpec]:
    return [
        # Kept forever: the journal that recovery replays from the newest snapshot's offset.
        TopicSpec(settings.commands_topic, 1, {"retention.ms": "-1"}),
        # Consumers are idempotent by seq and Aurora is the durable record, so a week is plenty.
        TopicSpec(settings.events_topic, 1, {"retention.ms": str(_WEEK_MS)}),
        TopicSpec(settings.marketdata_topic, 1, {"retention.ms": str(_DAY_MS)}),
    ]
