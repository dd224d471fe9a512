"""The deploy checks over templates as written or as SAM outputs them (MSK poller mode, fixed
names, WebSocket deployments, cfn-lint), each on a small bad template (fails: what issue 14
found) and the same one fixed (passes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.deploy_check.websocket import routes_digest
from tests.unit.deploy_check_support import failures, parse, stack

pytestmark = pytest.mark.unit

# --- MSK triggers: error handling controls are for provisioned pollers -------------------------

MSK_MAPPING = """
Resources:
  RecorderFunctionEvents:
    Type: AWS::Lambda::EventSourceMapping
    Properties:
      EventSourceArn: !GetAtt Msk.Outputs.ClusterArn
      FunctionName: !Ref RecorderFunction
      Topics: [bourse.events]
      AmazonManagedKafkaEventSourceConfig: {{ConsumerGroupId: recorder}}
      StartingPosition: TRIM_HORIZON
{extra}
"""


@pytest.mark.parametrize(
    "extra",
    [
        "      MaximumRetryAttempts: 3",
        "      FunctionResponseTypes: [ReportBatchItemFailures]",
        "      BisectBatchOnFunctionError: true",
        "      MaximumRecordAgeInSeconds: 600",
        "      DestinationConfig: {OnFailure: {Destination: 'kafka://bourse.dead-letters'}}",
    ],
)
def test_provisioned_only_settings_without_provisioned_pollers_fail(
    extra: str, tmp_path: Path
) -> None:
    bad = stack(transformed=MSK_MAPPING.format(extra=extra), tmp_path=tmp_path)
    (failure,) = failures("msk-poller-mode", bad)
    assert failure.where == "RecorderFunctionEvents"
    assert "ProvisionedPollerConfig" in failure.message


@pytest.mark.parametrize(
    "extra",
    [
        "",  # on-demand pollers, Lambda's defaults
        "      MaximumRetryAttempts: 3\n      FunctionResponseTypes: [ReportBatchItemFailures]\n"
        "      ProvisionedPollerConfig: {MinimumPollers: 1, MaximumPollers: 2}",
        # an SQS on-failure destination is not a provisioned-mode feature
        "      DestinationConfig: {OnFailure: {Destination: !GetAtt Dlq.Arn}}",
    ],
)
def test_msk_triggers_within_their_mode_pass(extra: str, tmp_path: Path) -> None:
    good = stack(transformed=MSK_MAPPING.format(extra=extra), tmp_path=tmp_path)
    assert failures("msk-poller-mode", good) == []


def test_an_sqs_trigger_may_report_item_failures(tmp_path: Path) -> None:
    sqs = """
Resources:
  Fills:
    Type: AWS::Lambda::EventSourceMapping
    Properties:
      EventSourceArn: !GetAtt SettlementQueue.Arn
      FunctionName: !Ref SettlementFunction
      FunctionResponseTypes: [ReportBatchItemFailures]
"""
    assert failures("msk-poller-mode", stack(transformed=sqs, tmp_path=tmp_path)) == []


# --- fixed global names -------------------------------------------------------------------------


def _bucket(name: str | None, policy: str = "Delete", kind: str = "AWS::S3::Bucket") -> str:
    prop = "BucketName" if kind == "AWS::S3::Bucket" else "RepositoryName"
    named = f"\n    Properties:\n      {prop}: {name}" if name else ""
    return f"Resources:\n  Store:\n    Type: {kind}\n    DeletionPolicy: {policy}{named}\n"


@pytest.mark.parametrize(
    ("template", "problems"),
    [
        # the snapshots and archive buckets as they were: the stage only
        (_bucket('!Sub "bourse-${Stage}-archive"'), ["AWS::AccountId, AWS::Region"]),
        (_bucket('!Sub "bourse-${Stage}-web-${AWS::AccountId}"'), ["AWS::Region"]),
        # retained and named: a failed first creation leaves the name taken
        (
            _bucket('!Sub "bourse-${Stage}-a-${AWS::AccountId}-${AWS::Region}"', "Retain"),
            ["RetainExceptOnCreate"],
        ),
        (
            _bucket('!Sub "bourse-${Stage}/matching"', "Retain", "AWS::ECR::Repository"),
            ["RetainExceptOnCreate"],
        ),
    ],
)
def test_fixed_names_fail(template: str, problems: list[str], tmp_path: Path) -> None:
    found = failures("fixed-names", stack(nested={"Edge": template}, tmp_path=tmp_path))
    assert len(found) == len(problems)
    for failure, problem in zip(found, problems, strict=True):
        assert failure.where == "Edge/Store" and problem in failure.message


@pytest.mark.parametrize(
    "template",
    [
        _bucket(None, "Retain"),
        _bucket('!Sub "bourse-${Stage}-a-${AWS::AccountId}-${AWS::Region}"'),
        _bucket(
            '!Sub "bourse-${Stage}-a-${AWS::AccountId}-${AWS::Region}"', "RetainExceptOnCreate"
        ),
        _bucket(
            '!Sub ["bourse-${S}-a-${A}-${R}", {S: !Ref Stage, A: !Ref "AWS::AccountId", '
            'R: !Ref "AWS::Region"}]'
        ),
        _bucket('!Sub "bourse-${Stage}/matching"', "RetainExceptOnCreate", "AWS::ECR::Repository"),
    ],
)
def test_names_that_cannot_collide_pass(template: str, tmp_path: Path) -> None:
    assert failures("fixed-names", stack(template, tmp_path=tmp_path)) == []


# --- WebSocket deployments ----------------------------------------------------------------------

WEBSOCKET = """
Resources:
  WebSocketApi:
    Type: AWS::ApiGatewayV2::Api
    Properties: {{ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.method}}
  WsPingRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties: {{ApiId: !Ref WebSocketApi, RouteKey: ping}}
  WsPingRouteResponse:
    Type: AWS::ApiGatewayV2::RouteResponse
    Properties: {{ApiId: !Ref WebSocketApi, RouteId: !Ref WsPingRoute, RouteResponseKey: $default}}
  WebSocketStage:
    Type: AWS::ApiGatewayV2::Stage
    Properties:
      ApiId: !Ref WebSocketApi
      StageName: dev
{stage}
{deployment}
"""


def _websocket(deployment_id: str, depends: str) -> str:
    deployment = (
        f"  {deployment_id}:\n    Type: AWS::ApiGatewayV2::Deployment\n"
        f"    DependsOn: [{depends}]\n    Properties: {{ApiId: !Ref WebSocketApi}}\n"
    )
    return WEBSOCKET.format(
        stage=f"      DeploymentId: !Ref {deployment_id}", deployment=deployment
    )


def test_a_deployment_before_its_route_responses_and_with_a_fixed_id_fails(tmp_path: Path) -> None:
    bad = _websocket("WebSocketDeployment", "WsPingRoute")
    found = failures("websocket-deployment", stack(bad, tmp_path=tmp_path))
    assert len(found) == 2
    assert "WsPingRouteResponse" in found[0].message
    assert "hash" in found[1].message


def test_a_deployment_that_changes_with_its_routes_passes(tmp_path: Path) -> None:
    draft = _websocket("WebSocketDeployment", "WsPingRoute, WsPingRouteResponse")
    digest = routes_digest(parse(draft, tmp_path), "WebSocketApi")
    good = _websocket(f"WebSocketDeployment{digest}", "WsPingRoute, WsPingRouteResponse")
    assert failures("websocket-deployment", stack(good, tmp_path=tmp_path)) == []
    # a route changes: the same id no longer carries its hash
    changed = good.replace("RouteKey: ping", "RouteKey: pong")
    (failure,) = failures("websocket-deployment", stack(changed, tmp_path=tmp_path))
    assert "hash" in failure.message


def test_a_stage_with_auto_deploy_needs_no_deployment(tmp_path: Path) -> None:
    auto = WEBSOCKET.format(stage="      AutoDeploy: true", deployment="")
    assert failures("websocket-stage", stack(auto, tmp_path=tmp_path)) == []
    assert failures("websocket-deployment", stack(auto, tmp_path=tmp_path)) == []


def test_a_stage_with_nothing_to_serve_fails(tmp_path: Path) -> None:
    bare = WEBSOCKET.format(stage="", deployment="")
    (failure,) = failures("websocket-stage", stack(bare, tmp_path=tmp_path))
    assert failure.where == "WebSocketStage"


# --- cfn-lint on SAM's output and the nested stacks ---------------------------------------------

QUEUE = """
AWSTemplateFormatVersion: "2010-09-09"
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: {timeout}
"""


@pytest.mark.slow
def test_cfn_lint_findings_in_a_nested_stack_fail(tmp_path: Path) -> None:
    checked = stack(nested={"Data": QUEUE.format(timeout='"soon"')}, tmp_path=tmp_path)
    checked.transformed = {}
    checked.files["transformed"] = checked.files["Data"].replace("Data.yaml", "ok.yaml")
    Path(checked.files["transformed"]).write_text(QUEUE.format(timeout=30))
    found = failures("cfn-lint", checked)
    assert found and all(f.where.startswith("Data (") for f in found), found
    assert any("E3012" in f.message for f in found), found


@pytest.mark.slow
def test_cfn_lint_on_clean_templates_passes(tmp_path: Path) -> None:
    checked = stack(nested={"Data": QUEUE.format(timeout=30)}, tmp_path=tmp_path)
    checked.transformed = {}
    checked.files["transformed"] = checked.files["Data"]
    assert failures("cfn-lint", checked) == []


STAGED_BUCKET = """
Parameters:
  Stage: {{Type: String, Default: dev, AllowedValues: [local, dev, staging, prod]}}
Conditions:
  IsLocal: !Equals [!Ref Stage, local]
  IsProd: !Equals [!Ref Stage, prod]
Resources:
  Store:
    Type: AWS::S3::Bucket
    Properties:
      BucketName: !If
        - {condition}
        - !Sub "bourse-${{Stage}}-a{first}"
        - !Sub "bourse-${{Stage}}-a{second}"
"""
FULL = "-${AWS::AccountId}-${AWS::Region}"


def test_a_local_only_fixed_name_passes(tmp_path: Path) -> None:
    local_only = STAGED_BUCKET.format(condition="IsLocal", first="", second=FULL)
    assert failures("fixed-names", stack(local_only, tmp_path=tmp_path)) == []


def test_a_fixed_name_on_some_aws_stage_fails(tmp_path: Path) -> None:
    dev_fixed = STAGED_BUCKET.format(condition="IsProd", first=FULL, second="")
    (failure,) = failures("fixed-names", stack(dev_fixed, tmp_path=tmp_path))
    assert "AWS::AccountId" in failure.message
