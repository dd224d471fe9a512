"""Kafka event source mappings ask only for what their poller mode supports.

Lambda's documentation ("Configuring error handling controls for Kafka event sources"):
retry attempts, maximum record age, split batch on error and partial batch responses
(ReportBatchItemFailures) are configured under provisioned mode; a Kafka-topic on-failure
destination likewise needs provisioned pollers. An MSK or self-managed Kafka mapping that sets
them without ``ProvisionedPollerConfig`` is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from infra.deploy_check.checks import Failure, Stack, check, where

KAFKA_SOURCE_KEYS = (
    "AmazonManagedKafkaEventSourceConfig",
    "SelfManagedEventSource",
    "SelfManagedKafkaEventSourceConfig",
)
PROVISIONED_ONLY = (
    "MaximumRetryAttempts",
    "MaximumRecordAgeInSeconds",
    "BisectBatchOnFunctionError",
)


def is_kafka(mapping: dict[str, Any]) -> bool:
    properties = mapping.get("Properties") or {}
    return any(key in properties for key in KAFKA_SOURCE_KEYS) or "Topics" in properties


def provisioned_only_settings(properties: dict[str, Any]) -> list[str]:
    found = [key for key in PROVISIONED_ONLY if key in properties]
    if "ReportBatchItemFailures" in (properties.get("FunctionResponseTypes") or []):
        found.append("FunctionResponseTypes: ReportBatchItemFailures")
    destination = ((properties.get("DestinationConfig") or {}).get("OnFailure") or {}).get(
        "Destination"
    )
    if isinstance(destination, str) and destination.startswith("kafka://"):
        found.append("a Kafka on-failure destination")
    return found


@check(
    "msk-poller-mode",
    "each MSK trigger has ProvisionedPollerConfig or none of retries, record age, bisect, "
    "ReportBatchItemFailures, Kafka destinations (provisioned mode only)",
    needs_transformed=True,
)
def poller_mode(stack: Stack) -> Iterator[Failure]:
    for key, logical_id, mapping in stack.resources("AWS::Lambda::EventSourceMapping"):
        if not is_kafka(mapping):
            continue
        properties = mapping.get("Properties") or {}
        if properties.get("ProvisionedPollerConfig"):
            continue
        settings = provisioned_only_settings(properties)
        if settings:
            yield Failure(
                where(key, logical_id),
                f"sets {', '.join(settings)} without ProvisionedPollerConfig (on-demand pollers: "
                "Lambda refuses them)",
            )
