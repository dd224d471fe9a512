"""The exchange's own processes that `python -m devstack run` supervises in the foreground.

Adding one is adding one ProcessSpec to PROCESSES, e.g. for the matching service:

    ProcessSpec(
        name="matching",
        argv=lambda s: [sys.executable, "-m", "matching_service"],
        ready_port=lambda s: None,
    ),

argv is built from settings so ports and names follow the environment; each process also gets
the environment the stack runs with (plus local AWS credentials for moto), so
``bourse.settings`` in the child sees exactly what we see.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from bourse.settings import Settings


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: Callable[[Settings], list[str]]
    # Extra environment for this process only.
    env: Callable[[Settings], dict[str, str]] = field(default=lambda s: {})
    # A port it listens on once ready (the gateway); `run` waits for it before "ready".
    ready_port: Callable[[Settings], int | None] = field(default=lambda s: None)
    # Whether `run` starts it at all (a setting can switch a process off).
    enabled: Callable[[Settings], bool] = field(default=lambda s: True)


# Later issues add the event consumers here.
def _event_source(
    name: str, function: str, extra: Callable[[Settings], list[str]] = lambda s: []
) -> ProcessSpec:
    """A consumer Lambda behind its local event source (devstack/event_sources.py), logging as
    Powertools does on AWS, with no X-Ray daemon to trace to; ``extra``: more arguments (an
    SQS poller's queue other than settlement's)."""
    return ProcessSpec(
        name=name,
        argv=lambda s: [sys.executable, "-m", "devstack.event_sources", function, *extra(s)],
        env=lambda s: {
            "POWERTOOLS_SERVICE_NAME": name,
            "POWERTOOLS_METRICS_NAMESPACE": "Bourse",
            "POWERTOOLS_TRACE_DISABLED": "true",
        },
    )


PROCESSES: tuple[ProcessSpec, ...] = (
    # The sequencer: commands in, events out (matching-service/). Its Prometheus endpoint
    # answers only once recovery is done, so it doubles as the ready signal.
    ProcessSpec(
        name="matching",
        argv=lambda s: [sys.executable, "-m", "matching_service"],
        ready_port=lambda s: s.matching_metrics_port or None,
    ),
    # template.yaml's REST API on 127.0.0.1:gateway_port (devstack/gateway, docs/api.md).
    ProcessSpec(
        name="gateway",
        argv=lambda s: [sys.executable, "-m", "devstack.gateway"],
        ready_port=lambda s: s.gateway_port,
    ),
    # The trade recorder Lambda behind its local MSK event source (devstack/event_sources.py):
    # bourse.events -> the record in PostgreSQL, the S3 archive, SNS trade fills.
    _event_source("recorder", "RecorderFunction"),
    # The broadcaster behind its local MSK event source: bourse.events -> WebSocket streams,
    # posted to the gateway's @connections endpoint (docs/streams.md).
    _event_source("broadcaster", "BroadcasterFunction"),
    # Settlement behind its local SQS event source: trade fills from the settlement queue.
    _event_source("settlement", "SettlementFunction"),
    # Push without a socket (docs/webhooks.md): the dispatcher behind its MSK event source
    # (bourse.events -> the delivery queue and accounts' queues), the sender behind the FIFO
    # delivery queue's SQS event source (-> the webhooks' URLs).
    _event_source("webhook-dispatcher", "WebhookDispatcherFunction"),
    _event_source(
        "webhook-sender", "WebhookSenderFunction", lambda s: ["--queue", s.webhook_queue_name]
    ),
    # A seeded market maker and taker trading through the REST API, so the trading page has a
    # living market (devstack/demo_market.py, docs/frontend.md). Last: stopped first, while
    # the gateway still answers the cancels of its quotes. BOURSE_DEMO_MARKET=0 leaves it out.
    ProcessSpec(
        name="demo-market",
        argv=lambda s: [sys.executable, "-m", "devstack.demo_market"],
        enabled=lambda s: s.demo_market,
    ),
)
