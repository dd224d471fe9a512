"""Custom resource (deploy time): the Kafka topics with the partition counts the design needs.
Logic in bourse.deploy.kafka_topics; the protocol (one answer on every path, before the
function's timeout) in bourse.deploy.custom_resource."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from bourse.deploy import custom_resource
from bourse.deploy.kafka_topics import ensure_topics
from bourse.settings import get_settings

logger = Logger()

PHYSICAL_ID = "bourse-kafka-topics"


def _create(_properties: Mapping[str, Any], deadline: float) -> dict[str, str]:
    settings = get_settings()
    created = ensure_topics(settings, deadline)
    logger.info("topics ready", extra={"topics_created": [spec.name for spec in created]})
    names = (settings.commands_topic, settings.events_topic, settings.marketdata_topic)
    return {"Topics": ",".join(names), "Created": ",".join(spec.name for spec in created)}


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return custom_resource.run(event, context, PHYSICAL_ID, _create)
