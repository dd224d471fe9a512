"""Local twins of Lambda's MSK and SQS event source mappings.

``python -m devstack.event_sources <FunctionLogicalId> [--group G] [--batch-size N]`` reads the
function and its MSK or SQS event from template.yaml (code folder, handler, topics or queue,
batch size, batching window, consumer group, retry limit), imports the handler and invokes it
in this process with the events Lambda would send, and acts on the answer as Lambda does:

MSK
  records of one poll grouped by "topic-partition", key and value base64, headers as lists of
  byte values; read_committed, from the group's committed offset (TRIM_HORIZON when none). A
  success commits past the batch; an exception delivers the whole batch again. A
  ``batchItemFailures`` answer counts only when the event lists ``ReportBatchItemFailures`` in
  ``FunctionResponseTypes`` (otherwise Lambda ignores it: the batch succeeded); then it commits
  up to the lowest failed offset of each partition and delivers again from there. After
  ``MaximumRetryAttempts`` failed deliveries of the same offset (-1, the default: never) the
  record is dropped (logged) and consumption moves past it, as an event source mapping with a
  retry limit and no on-failure destination does. (On AWS both settings need provisioned
  poller mode; template.yaml's MSK triggers use neither.)
SQS
  up to BatchSize messages (10 per receive) with attributes and message attributes in Lambda's
  shape; messages the function did not report failed are deleted, the others come back after
  the queue's visibility timeout, until its redrive policy moves them to the DLQ.

Topic names in the template are the production names; the ones in settings (tests rename
them) are used in their place. The function runs with its environment from the template, as
the gateway's functions do: so it reaches PostgreSQL as its own role (BOURSE_PG_USER), with
exactly the privileges it has on AWS.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.util
import logging
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from bourse.settings import Settings, get_settings
from devstack.cfn import LOCAL_ACCOUNT_ID, load_template, local_resolver
from devstack.paths import REPO_ROOT

log = logging.getLogger("devstack.event_sources")
Handler = Callable[[dict[str, Any], Any], Any]


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    name: str
    code_dir: Path
    handler: str  # module.function
    timeout_s: int
    memory_mb: int
    event_type: str  # "MSK" or "SQS"
    event: dict[str, Any]  # the event's resolved Properties


def function_spec(logical_id: str, settings: Settings) -> FunctionSpec:
    template = load_template()
    resolver = local_resolver(template, "local", settings.region)
    resource = template["Resources"][logical_id]
    props = resource["Properties"]
    glob = template.get("Globals", {}).get("Function", {})
    events = [e for e in props.get("Events", {}).values() if e.get("Type") in ("MSK", "SQS")]
    if len(events) != 1:
        raise SystemExit(f"{logical_id}: expected one MSK or SQS event, found {len(events)}")
    event = events[0]
    resolved: dict[str, Any] = {}
    for key, value in event.get("Properties", {}).items():
        # Stream and Queue name resources or parameters that exist only on AWS; the local
        # twin uses settings for those.
        if key in ("Stream", "Queue"):
            resolved[key] = value
            continue
        resolved[key] = resolver.resolve(value)
    return FunctionSpec(
        logical_id=logical_id,
        name=resolver.resolve(props.get("FunctionName", logical_id)),
        code_dir=REPO_ROOT / props["CodeUri"],
        handler=props["Handler"],
        timeout_s=int(props.get("Timeout", glob.get("Timeout", 3))),
        memory_mb=int(props.get("MemorySize", glob.get("MemorySize", 128))),
        event_type=event["Type"],
        event=resolved,
    )


def load_handler(spec: FunctionSpec) -> Handler:
    module_name, func = spec.handler.rsplit(".", 1)
    path = spec.code_dir / f"{module_name}.py"
    # A unique module name per function: every function's file is called app.py.
    loader = importlib.util.spec_from_file_location(f"fn_{spec.logical_id}", path)
    if loader is None or loader.loader is None:
        raise SystemExit(f"cannot import {path}")
    module = importlib.util.module_from_spec(loader)
    sys.modules[loader.name] = module
    loader.loader.exec_module(module)
    handler: Handler = getattr(module, func)
    return handler


class Context:
    """What Powertools and handlers read from Lambda's context object."""

    def __init__(self, spec: FunctionSpec, region: str) -> None:
        self.function_name = spec.name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = spec.memory_mb
        self.invoked_function_arn = (
            f"arn:aws:lambda:{region}:{LOCAL_ACCOUNT_ID}:function:{spec.name}"
        )
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{spec.name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + spec.timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


_stop = False


def _on_signal(signum: int, frame: FrameType | None) -> None:
    global _stop
    _stop = True


# ------------------------------------------------------------------------------------- MSK


def topic_names(settings: Settings) -> dict[str, str]:
    return {
        "bourse.events": settings.events_topic,
        "bourse.commands": settings.commands_topic,
        "bourse.marketdata": settings.marketdata_topic,
    }


def msk_record(record: Any) -> dict[str, Any]:
    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "timestampType": "CREATE_TIME" if record.timestamp_type == 0 else "LOG_APPEND_TIME",
        "key": None if record.key is None else base64.b64encode(record.key).decode(),
        "value": base64.b64encode(record.value or b"").decode(),
        "headers": [{k: list(v or b"")} for k, v in (record.headers or [])],
    }


def msk_event(batch: dict[Any, list[Any]], settings: Settings, arn: str) -> dict[str, Any]:
    return {
        "eventSource": "aws:kafka",
        "eventSourceArn": arn,
        "bootstrapServers": settings.kafka_bootstrap,
        "records": {
            f"{tp.topic}-{tp.partition}": [msk_record(r) for r in records]
            for tp, records in batch.items()
            if records
        },
    }


def run_msk(spec: FunctionSpec, handler: Handler, settings: Settings, args: Any) -> None:
    from kafka import TopicPartition
    from kafka.structs import OffsetAndMetadata

    from bourse.adapters.kafka import consumer

    names = topic_names(settings)
    topics = [names.get(t, t) for t in spec.event["Topics"]]
    group = args.group or spec.event.get("ConsumerGroupId") or spec.name
    batch_size = args.batch_size or int(spec.event.get("BatchSize", 100))
    window_ms = int(spec.event.get("MaximumBatchingWindowInSeconds", 0)) * 1000 or 500
    max_retries = int(spec.event.get("MaximumRetryAttempts", -1))
    reports_items = "ReportBatchItemFailures" in spec.event.get("FunctionResponseTypes", [])
    kafka = consumer(group_id=group, max_poll_records=batch_size, fetch_max_bytes=64 << 20)
    # Partitions are assigned by hand and the group only holds committed offsets: a poller
    # that was SIGKILLed would otherwise stay a group member until its session times out,
    # and its successor would wait for the rebalance.
    partitions = [
        TopicPartition(t, p) for t in topics for p in sorted(kafka.partitions_for_topic(t) or ())
    ]
    kafka.assign(partitions)
    committed = {tp: kafka.committed(tp) for tp in partitions}
    for tp, offset in committed.items():
        if offset is not None:
            kafka.seek(tp, offset)
    arn = f"arn:aws:kafka:{settings.region}:{LOCAL_ACCOUNT_ID}:cluster/local/0"
    attempts: dict[tuple[str, int, int], int] = {}  # (topic, partition, offset) -> failures
    log.info("polling %s as group %s for %s (batch %d)", topics, group, spec.name, batch_size)
    while not _stop:
        batch = kafka.poll(timeout_ms=window_ms, max_records=batch_size)
        if not any(batch.values()):
            continue
        event = msk_event(batch, settings, arn)
        first = {tp: records[0].offset for tp, records in batch.items() if records}
        try:
            answer = handler(event, Context(spec, settings.region)) or {}
            # Without ReportBatchItemFailures, Lambda takes any answer as the batch's success.
            failures = (answer.get("batchItemFailures") or []) if reports_items else []
        except Exception:
            log.exception("%s failed; the whole batch is delivered again", spec.name)
            failures = [
                {"itemIdentifier": {"partition": f"{tp.topic}-{tp.partition}", "offset": off}}
                for tp, off in first.items()
            ]
        resume: dict[Any, int] = {
            tp: records[-1].offset + 1 for tp, records in batch.items() if records
        }
        for failure in failures:
            ident = failure["itemIdentifier"]
            topic, _, part = str(ident["partition"]).rpartition("-")
            tp = TopicPartition(topic, int(part))
            offset = int(ident["offset"])
            key = (topic, int(part), offset)
            attempts[key] = attempts.get(key, 0) + 1
            if 0 <= max_retries < attempts[key]:
                log.error("%s offset %d: retries exhausted, record dropped", tp, offset)
                offset += 1
            else:
                time.sleep(min(0.05 * attempts[key], 1.0))
            resume[tp] = min(resume.get(tp, offset), offset)
        kafka.commit({tp: OffsetAndMetadata(off, "", -1) for tp, off in resume.items()})
        for tp, off in resume.items():
            kafka.seek(tp, off)
    kafka.close(autocommit=False)


# ------------------------------------------------------------------------------------- SQS


def sqs_record(message: dict[str, Any], arn: str, region: str) -> dict[str, Any]:
    attrs = {}
    for name, value in (message.get("MessageAttributes") or {}).items():
        attrs[name] = {
            "stringValue": value.get("StringValue"),
            "binaryValue": (
                base64.b64encode(value["BinaryValue"]).decode() if "BinaryValue" in value else None
            ),
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": value["DataType"],
        }
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": attrs,
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(message["Body"].encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": region,
    }


def run_sqs(spec: FunctionSpec, handler: Handler, settings: Settings, args: Any) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    from bourse.adapters import aws

    sqs = aws.client("sqs")
    # The template names the queue by GetAtt Arn of a resource whose QueueName settings know.
    name = args.queue or settings.settlement_queue_name
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    batch_size = args.batch_size or int(spec.event.get("BatchSize", 10))
    log.info("polling %s for %s (batch %d)", name, spec.name, batch_size)
    while not _stop:
        messages: list[dict[str, Any]] = []
        while len(messages) < batch_size:
            try:
                got = sqs.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=min(10, batch_size - len(messages)),
                    WaitTimeSeconds=0 if messages else 1,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
            except (BotoCoreError, ClientError):
                # A busy moto server times out now and then; Lambda's poller just polls again.
                log.warning("receive from %s failed; polling again", name, exc_info=True)
                time.sleep(1)
                break
            if not got:
                break
            messages.extend(got)
        if not messages:
            continue
        event = {"Records": [sqs_record(m, arn, settings.region) for m in messages]}
        try:
            answer = handler(event, Context(spec, settings.region)) or {}
            failed = {f["itemIdentifier"] for f in answer.get("batchItemFailures") or []}
        except Exception:
            log.exception("%s failed; the batch comes back after the visibility timeout", spec.name)
            continue
        done = [m for m in messages if m["MessageId"] not in failed]
        for i in range(0, len(done), 10):
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(j), "ReceiptHandle": m["ReceiptHandle"]}
                    for j, m in enumerate(done[i : i + 10])
                ],
            )


def _apply_template_environment(logical_id: str) -> None:
    """The function's environment from template.yaml, as the gateway gives its functions
    (devstack.gateway.runtime): its own PostgreSQL role (BOURSE_PG_USER) among the rest.
    Variables this process already has win (tests move topics and ports that way)."""
    from devstack.gateway.runtime import apply_environment
    from devstack.gateway.template_api import load_rest_api

    settings = get_settings()
    api = load_rest_api(settings.stage, settings.region, settings.moto_port)
    apply_environment(api.functions[logical_id].environment, dict(os.environ))
    get_settings.cache_clear()  # read again with the function's environment


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.event_sources")
    parser.add_argument("function", help="logical id of the function in template.yaml")
    parser.add_argument("--group", help="Kafka consumer group (default: the template's)")
    parser.add_argument("--queue", help="SQS queue name (default: from settings)")
    parser.add_argument("--batch-size", type=int, help="override the template's BatchSize")
    args = parser.parse_args(argv)
    # The level in each line lets `make run`'s console pick out warnings (devstack/console.py).
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    _apply_template_environment(args.function)
    settings = get_settings()
    spec = function_spec(args.function, settings)
    handler = load_handler(spec)
    if spec.event_type == "MSK":
        run_msk(spec, handler, settings, args)
    else:
        run_sqs(spec, handler, settings, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
