"""Reading template.yaml for the local stack: short tags, intrinsic functions, creation order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bourse.settings import get_settings
from devstack.cfn import load_template, local_resolver, references
from devstack.template_resources import creation_order, local_resources

pytestmark = pytest.mark.unit

SAMPLE = """
Parameters:
  Stage: {Type: String, Default: dev}
Conditions:
  IsProd: !Equals [!Ref Stage, prod]
  NotProd: !Not [!Condition IsProd]
Resources:
  Dlq:
    Type: AWS::SQS::Queue
    Properties: {QueueName: !Sub "x-${Stage}-dlq"}
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Join ["-", [x, !Ref Stage, q]]
      RedrivePolicy: {deadLetterTargetArn: !GetAtt Dlq.Arn, maxReceiveCount: 3}
      Extra: !If [IsProd, yes, !Ref AWS::NoValue]
  ProdOnly:
    Type: AWS::SNS::Topic
    Condition: IsProd
    Properties: {TopicName: prod-only}
  Layer:
    Type: AWS::Serverless::LayerVersion
    Properties: {ContentUri: x/}
"""


@pytest.fixture()
def sample(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "template.yaml"
    path.write_text(SAMPLE)
    return load_template(path)


def test_short_tags_become_long_forms(sample: dict[str, Any]) -> None:
    queue = sample["Resources"]["Queue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["Dlq", "Arn"]}
    assert queue["QueueName"] == {"Fn::Join": ["-", ["x", {"Ref": "Stage"}, "q"]]}
    assert sample["Conditions"]["NotProd"] == {"Fn::Not": [{"Condition": "IsProd"}]}


def test_resolution_for_a_stage(sample: dict[str, Any]) -> None:
    resolver = local_resolver(sample, "local", "us-east-1")
    resolver.attrs[("Dlq", "Arn")] = "arn:dlq"
    props = resolver.resolve(sample["Resources"]["Queue"]["Properties"])
    # AWS::NoValue removes the property, as CloudFormation does.
    assert props == {
        "QueueName": "x-local-q",
        "RedrivePolicy": {"deadLetterTargetArn": "arn:dlq", "maxReceiveCount": 3},
    }
    assert resolver.condition("NotProd") is True
    assert resolver.sub("${AWS::StackName}/${AWS::Region}/${AWS::AccountId}", {}) == (
        "bourse-local/us-east-1/123456789012"
    )


def test_only_supported_and_enabled_resources_in_dependency_order(sample: dict[str, Any]) -> None:
    resolver = local_resolver(sample, "local", "us-east-1")
    resources = local_resources(sample, resolver)
    assert set(resources) == {"Dlq", "Queue"}  # no layer, no prod-only topic
    assert creation_order(resources) == ["Dlq", "Queue"]
    assert references(sample["Resources"]["Queue"]["Properties"]) == {"Stage", "Dlq"}


def test_the_real_template_resolves_to_the_settings_defaults() -> None:
    """With stage local, the names template.yaml declares are those bourse.settings uses."""
    settings = get_settings()
    template = load_template()
    resolver = local_resolver(template, "local", settings.region)
    resources = local_resources(template, resolver)
    order = creation_order(resources)
    assert order.index("SettlementDeadLetterQueue") < order.index("SettlementQueue")
    assert order.index("ApiKeySecretsKey") < order.index("ApiKeySecretsKeyAlias")
    assert order.index("TradeFillsTopic") < order.index("SettlementSubscription")
    expected = {
        "ApiKeysTable": ("TableName", "bourse-local-api-keys"),
        "RateLimitsTable": ("TableName", "bourse-local-rate-limits"),
        "IdempotencyTable": ("TableName", "bourse-local-idempotency"),
        "ConnectionsTable": ("TableName", "bourse-local-connections"),
        "SettlementQueue": ("QueueName", "bourse-local-settlement"),
        "TradeFillsTopic": ("TopicName", "bourse-local-trade-fills"),
        "AlertsTopic": ("TopicName", "bourse-local-alerts"),
        "SnapshotsBucket": ("BucketName", "bourse-local-snapshots"),
        "ArchiveBucket": ("BucketName", "bourse-local-archive"),
        "ApiKeySecretsKeyAlias": ("AliasName", "alias/bourse-local-api-keys"),
    }
    for logical_id, (key, value) in expected.items():
        # Only the name: other properties refer to resources that exist only once created.
        assert resolver.resolve(resources[logical_id]["Properties"][key]) == value, logical_id
