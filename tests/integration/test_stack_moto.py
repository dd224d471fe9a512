"""Every table, queue, topic, bucket and key of template.yaml exists in moto, under the names
bourse.settings uses by default."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bourse.settings import Settings
from devstack.cfn import load_template, local_resolver
from devstack.template_resources import local_resources

pytestmark = pytest.mark.integration


def _names(settings: Settings) -> dict[str, str]:
    """Physical name of each declared resource, resolved for the stack's stage."""
    template = load_template()
    resolver = local_resolver(template, settings.stage, settings.region)
    name_keys = {
        "AWS::DynamoDB::Table": "TableName",
        "AWS::SQS::Queue": "QueueName",
        "AWS::SNS::Topic": "TopicName",
        "AWS::S3::Bucket": "BucketName",
        "AWS::KMS::Alias": "AliasName",
        "AWS::SecretsManager::Secret": "Name",
    }
    names = {}
    for logical_id, resource in local_resources(template, resolver).items():
        key = name_keys.get(resource["Type"])
        if key:
            names[logical_id] = resolver.resolve(resource["Properties"][key])
    return names


def test_every_template_resource_exists(
    local_stack: Settings, aws_client: Callable[[str], Any]
) -> None:
    template = load_template()
    names = _names(local_stack)
    checked = 0
    for logical_id, name in names.items():
        kind = template["Resources"][logical_id]["Type"]
        if kind == "AWS::DynamoDB::Table":
            assert aws_client("dynamodb").describe_table(TableName=name)["Table"]
        elif kind == "AWS::SQS::Queue":
            assert aws_client("sqs").get_queue_url(QueueName=name)["QueueUrl"]
        elif kind == "AWS::SNS::Topic":
            arns = [t["TopicArn"] for t in aws_client("sns").list_topics()["Topics"]]
            assert any(arn.endswith(f":{name}") for arn in arns), name
        elif kind == "AWS::S3::Bucket":
            aws_client("s3").head_bucket(Bucket=name)
        elif kind == "AWS::KMS::Alias":
            aliases = {a["AliasName"]: a for a in aws_client("kms").list_aliases()["Aliases"]}
            assert aliases[name].get("TargetKeyId"), name
        elif kind == "AWS::SecretsManager::Secret":
            aws_client("secretsmanager").describe_secret(SecretId=name)
        checked += 1
    assert checked >= 11


def test_names_match_settings(local_stack: Settings) -> None:
    names = _names(local_stack)
    assert names["ApiKeysTable"] == local_stack.api_keys_table
    assert names["RateLimitsTable"] == local_stack.rate_limits_table
    assert names["IdempotencyTable"] == local_stack.idempotency_table
    assert names["ConnectionsTable"] == local_stack.connections_table
    assert names["SnapshotsBucket"] == local_stack.snapshots_bucket
    assert names["ArchiveBucket"] == local_stack.archive_bucket
    assert names["TradeFillsTopic"] == local_stack.trade_fills_topic_name
    assert names["AlertsTopic"] == local_stack.alerts_topic_name
    assert names["SettlementQueue"] == local_stack.settlement_queue_name
    assert names["ApiKeySecretsKeyAlias"] == local_stack.api_key_kms_alias


def test_settlement_wiring(local_stack: Settings, aws_client: Callable[[str], Any]) -> None:
    """TradeFills fans out to the settlement queue, which redrives to its DLQ."""
    sqs, sns = aws_client("sqs"), aws_client("sns")
    url = sqs.get_queue_url(QueueName=local_stack.settlement_queue_name)["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert "settlement-dlq" in attrs["RedrivePolicy"]
    topic_arn = next(
        t["TopicArn"]
        for t in sns.list_topics()["Topics"]
        if t["TopicArn"].endswith(":" + local_stack.trade_fills_topic_name)
    )
    subs = sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
    assert [s["Endpoint"] for s in subs] == [attrs["QueueArn"]]
    sns.publish(TopicArn=topic_arn, Message='{"probe": true}')
    messages = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=2).get("Messages", [])
    assert [m["Body"] for m in messages] == ['{"probe": true}']  # raw delivery
    sqs.delete_message(QueueUrl=url, ReceiptHandle=messages[0]["ReceiptHandle"])
