"""The IAM contract over SAM's output (infra/deploy_check/iam.py), each check on a small bad
stack (fails: what issue 14 found) and the same stack fixed (passes).

"transformed" texts stand for SAM's output: AWS::Lambda::Function with ``<Name>Role``; one test
runs the real translator to show SAM adding a managed policy a role already lists."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from infra.deploy_check.runner import TranslateError, translate
from tests.unit.deploy_check_support import failures, parse, stack

pytestmark = pytest.mark.unit

SAM_XRAY = "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess"
MSK_ROLE = "arn:aws:iam::aws:policy/service-role/AWSLambdaMSKExecutionRole"

# --- X-Ray: the MSK bootstrap lookup in infra/msk.yaml -----------------------------------------

BOOTSTRAP = """
Resources:
  BootstrapLookupRole:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument: {{}}
      ManagedPolicyArns:
        - arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole
{extra}
  BootstrapLookupFunction:
    Type: AWS::Lambda::Function
    Properties:
      Role: !GetAtt BootstrapLookupRole.Arn
      TracingConfig: {{Mode: Active}}
"""
XRAY_POLICY = '        - !Sub "arn:${AWS::Partition}:iam::aws:policy/AWSXRayDaemonWriteAccess"'


def test_a_traced_nested_function_without_xray_fails(tmp_path: Path) -> None:
    bad = stack(
        transformed="Resources: {}",
        nested={"Msk": BOOTSTRAP.format(extra="")},
        tmp_path=tmp_path,
    )
    (failure,) = failures("iam-xray", bad)
    assert failure.where == "Msk/BootstrapLookupFunction"
    assert "xray:PutTraceSegments" in failure.message
    assert "xray:PutTelemetryRecords" in failure.message


def test_a_traced_nested_function_with_xray_passes(tmp_path: Path) -> None:
    good = stack(
        transformed="Resources: {}",
        nested={"Msk": BOOTSTRAP.format(extra=XRAY_POLICY)},
        tmp_path=tmp_path,
    )
    assert failures("iam-xray", good) == []


def test_an_inline_xray_statement_counts(tmp_path: Path) -> None:
    inline = BOOTSTRAP.format(
        extra="""      Policies:
        - PolicyName: xray
          PolicyDocument:
            Statement:
              - {Effect: Allow, Action: ["xray:Put*"], Resource: "*"}"""
    )
    assert failures("iam-xray", stack(transformed=inline, tmp_path=tmp_path)) == []


# --- managed policies twice: AWSLambdaMSKExecutionRole listed and added by SAM's MSK event ------


def _role(arns: list[str]) -> str:
    listed = "\n".join(f"        - {arn}" for arn in arns)
    return f"""
Resources:
  RecorderFunctionRole:
    Type: AWS::IAM::Role
    Properties:
      ManagedPolicyArns:
{listed}
"""


def test_the_same_managed_policy_twice_fails(tmp_path: Path) -> None:
    bad = _role(
        [SAM_XRAY, '!Sub "arn:${AWS::Partition}:iam::aws:policy/service-role/'
         'AWSLambdaMSKExecutionRole"', MSK_ROLE]
    )  # fmt: skip
    (failure,) = failures("iam-managed-policies", stack(transformed=bad, tmp_path=tmp_path))
    assert failure.where == "RecorderFunctionRole"
    assert "AWSLambdaMSKExecutionRole" in failure.message


def test_each_managed_policy_once_passes(tmp_path: Path) -> None:
    good = _role([SAM_XRAY, MSK_ROLE, "!Ref EventsConsumerPolicy"])
    assert failures("iam-managed-policies", stack(transformed=good, tmp_path=tmp_path)) == []


def test_more_managed_policies_than_the_quota_fails(tmp_path: Path) -> None:
    many = _role([f"!Ref Policy{n}" for n in range(11)])
    (failure,) = failures("iam-managed-policies", stack(transformed=many, tmp_path=tmp_path))
    assert "11 managed policies" in failure.message


SAM_MSK_FUNCTION = """
Transform: AWS::Serverless-2016-10-31
Resources:
  Consumer:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.11
      Handler: app.handler
      CodeUri: src/
      Policies:
{policies}
      Events:
        Events:
          Type: MSK
          Properties:
            Stream: arn:aws:kafka:us-east-1:123456789012:cluster/c/abc
            Topics: [bourse.events]
            StartingPosition: LATEST
"""


@pytest.mark.parametrize(
    ("policies", "twice"),
    [
        ('        - !Sub "arn:${AWS::Partition}:iam::aws:policy/service-role/'
         'AWSLambdaMSKExecutionRole"', True),
        ("        - AWSXrayWriteOnlyAccess", False),
    ],
)  # fmt: skip
def test_sams_translator_adds_the_msk_policy_a_role_already_lists(
    policies: str, twice: bool, tmp_path: Path
) -> None:
    source = tmp_path / "template.yaml"
    source.write_text(textwrap.dedent(SAM_MSK_FUNCTION.format(policies=policies)))
    try:
        transformed = translate(source, tmp_path / "out.json")
    except TranslateError as error:
        pytest.fail(f"SAM's translator: {error}")
    checked = stack(tmp_path=tmp_path)
    checked.transformed = transformed
    found = failures("iam-managed-policies", checked)
    assert bool(found) == twice, found


# --- calls from the code, KMS for encrypted topics, queues, secrets ---------------------------

SETTLEMENT_WRITTEN = """
Resources:
  SettlementFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/settlement/
      Handler: app.lambda_handler
"""


def _settlement(statements: str, managed: str = "", topic_key: str = "") -> str:
    key = topic_key or "!If [IsLocal, alias/aws/sns, !GetAtt Network.Outputs.AlertsKeyArn]"
    return f"""
Resources:
  SettlementFunction:
    Type: AWS::Lambda::Function
    Properties:
      Role: !GetAtt SettlementFunctionRole.Arn
  SettlementFunctionRole:
    Type: AWS::IAM::Role
    Properties:
      ManagedPolicyArns: [{managed}]
      Policies:
        - PolicyName: p
          PolicyDocument:
            Statement:
{textwrap.indent(textwrap.dedent(statements), " " * 14)}
  AlertsTopic:
    Type: AWS::SNS::Topic
    Properties:
      KmsMasterKeyId: {key}
  AlertsPublisherPolicy:
    Type: AWS::IAM::ManagedPolicy
    Properties:
      PolicyDocument:
        Statement:
          - Effect: Allow
            Action: [kms:Decrypt, kms:GenerateDataKey*]
            Resource: !GetAtt Network.Outputs.AlertsKeyArn
"""


PUBLISH = """
- Effect: Allow
  Action: sns:Publish
  Resource: !Ref AlertsTopic
"""
CONNECT = """
- Effect: Allow
  Action: rds-db:connect
  Resource: !Sub
    - "arn:aws:rds-db:us-east-1:1:dbuser:${ProxyId}/bourse"
    - ProxyId: !GetAtt Data.Outputs.RecordProxyResourceId
"""


def test_a_call_the_role_does_not_allow_fails(tmp_path: Path) -> None:
    bad = stack(SETTLEMENT_WRITTEN, transformed=_settlement(PUBLISH), tmp_path=tmp_path)
    (failure,) = failures("iam-code-calls", bad)
    assert failure.where == "SettlementFunction (SettlementFunctionRole)"
    assert "rds-db:connect on Data" in failure.message


def test_every_call_allowed_passes(tmp_path: Path) -> None:
    good = stack(SETTLEMENT_WRITTEN, transformed=_settlement(PUBLISH + CONNECT), tmp_path=tmp_path)
    assert failures("iam-code-calls", good) == []


def test_publishing_to_a_customer_key_topic_without_the_key_fails(tmp_path: Path) -> None:
    bad = stack(SETTLEMENT_WRITTEN, transformed=_settlement(PUBLISH + CONNECT), tmp_path=tmp_path)
    found = failures("iam-kms", bad)
    assert {f.message.rsplit(" ", 1)[-1] for f in found} == {"kms:GenerateDataKey", "kms:Decrypt"}
    assert all("AlertsTopic" in f.message and "AlertsKeyArn" in f.message for f in found)


def test_publishing_with_the_key_passes(tmp_path: Path) -> None:
    good = stack(
        SETTLEMENT_WRITTEN,
        transformed=_settlement(PUBLISH + CONNECT, managed="!Ref AlertsPublisherPolicy"),
        tmp_path=tmp_path,
    )
    assert failures("iam-kms", good) == []


def test_an_aws_managed_topic_key_needs_nothing(tmp_path: Path) -> None:
    good = stack(
        SETTLEMENT_WRITTEN,
        transformed=_settlement(PUBLISH + CONNECT, topic_key="alias/aws/sns"),
        tmp_path=tmp_path,
    )
    assert failures("iam-kms", good) == []


def test_reading_a_customer_key_queue_needs_decrypt(tmp_path: Path) -> None:
    queue = """
  SettlementQueue:
    Type: AWS::SQS::Queue
    Properties: {KmsMasterKeyId: !Ref QueueKey}
  QueueKey:
    Type: AWS::KMS::Key
  Fills:
    Type: AWS::Lambda::EventSourceMapping
    Properties:
      FunctionName: !Ref SettlementFunction
      EventSourceArn: !GetAtt SettlementQueue.Arn
"""
    base = _settlement(PUBLISH + CONNECT, managed="!Ref AlertsPublisherPolicy") + queue
    (failure,) = failures("iam-kms", stack(SETTLEMENT_WRITTEN, transformed=base, tmp_path=tmp_path))
    assert "reads SettlementQueue" in failure.message and "kms:Decrypt" in failure.message
    decrypt = "\n- {Effect: Allow, Action: kms:Decrypt, Resource: !GetAtt QueueKey.Arn}\n"
    fixed = _settlement(PUBLISH + CONNECT + decrypt, managed="!Ref AlertsPublisherPolicy") + queue
    checked = stack(SETTLEMENT_WRITTEN, transformed=fixed, tmp_path=tmp_path)
    assert failures("iam-kms", checked) == []


# --- Redis: the AUTH token for every Redis client ----------------------------------------------

DATA = """
Resources:
  DataKey:
    Type: AWS::KMS::Key
  RedisAuthSecret:
    Type: AWS::SecretsManager::Secret
    Properties: {KmsKeyId: !Ref DataKey}
Outputs:
  RedisAuthSecretArn: {Value: !Ref RedisAuthSecret}
  DataKeyArn: {Value: !GetAtt DataKey.Arn}
"""
ORDERS_WRITTEN = """
Resources:
  OrdersFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/orders/
      Handler: app.lambda_handler
"""
READ_SECRET = """
- Effect: Allow
  Action: secretsmanager:GetSecretValue
  Resource: !GetAtt Data.Outputs.RedisAuthSecretArn
"""
DECRYPT_DATA = """
- Effect: Allow
  Action: kms:Decrypt
  Resource: !GetAtt Data.Outputs.DataKeyArn
"""


def _redis_client(name: str, statements: str, env: bool = True) -> str:
    variables = (
        "{BOURSE_REDIS_AUTH_SECRET_ARN: !GetAtt Data.Outputs.RedisAuthSecretArn}" if env else "{}"
    )
    return f"""
Resources:
  {name}:
    Type: AWS::Lambda::Function
    Properties:
      Role: !GetAtt {name}Role.Arn
      Environment: {{Variables: {variables}}}
  {name}Role:
    Type: AWS::IAM::Role
    Properties:
      Policies:
        - PolicyName: p
          PolicyDocument:
            Statement:
{textwrap.indent(textwrap.dedent(statements), " " * 14)}
"""


def test_a_redis_client_that_cannot_read_the_token_fails(tmp_path: Path) -> None:
    bad = stack(
        ORDERS_WRITTEN,
        transformed=_redis_client("OrdersFunction", "- {Effect: Allow, Action: s3:*, Resource: x}"),
        nested={"Data": DATA},
        tmp_path=tmp_path,
    )
    (failure,) = failures("iam-redis-secret", bad)
    assert "secretsmanager:GetSecretValue on Data.Outputs.RedisAuthSecretArn" in failure.message
    assert "kms:Decrypt on Data.Outputs.DataKeyArn" in failure.message


def test_a_redis_client_without_the_secrets_arn_fails(tmp_path: Path) -> None:
    bad = stack(
        ORDERS_WRITTEN,
        transformed=_redis_client("OrdersFunction", READ_SECRET + DECRYPT_DATA, env=False),
        nested={"Data": DATA},
        tmp_path=tmp_path,
    )
    (failure,) = failures("iam-redis-secret", bad)
    assert "BOURSE_REDIS_AUTH_SECRET_ARN" in failure.message


def test_a_redis_client_that_reads_the_token_passes(tmp_path: Path) -> None:
    good = stack(
        ORDERS_WRITTEN,
        transformed=_redis_client("OrdersFunction", READ_SECRET + DECRYPT_DATA),
        nested={"Data": DATA},
        tmp_path=tmp_path,
    )
    assert failures("iam-redis-secret", good) == []
    # and the secret's key is one of iam-kms's needs too
    assert failures("iam-kms", good) == []


def test_reading_a_secret_without_its_key_fails_iam_kms(tmp_path: Path) -> None:
    bad = stack(
        ORDERS_WRITTEN,
        transformed=_redis_client("OrdersFunction", READ_SECRET),
        nested={"Data": DATA},
        tmp_path=tmp_path,
    )
    (failure,) = failures("iam-kms", bad)
    assert "reads the secret Data.Outputs.RedisAuthSecretArn" in failure.message


@pytest.mark.parametrize(
    ("code", "direct"),
    [
        # the broadcaster's mistake: a client of its own, without the AUTH token
        ("import redis\n\nclient = redis.Redis.from_url('rediss://h:6379/0')\n", True),
        ("from redis import Redis\n\nclient = Redis(host='h')\n", True),
        (
            "from bourse.adapters.redis_conn import connect\n\nclient = connect('rediss://h')\n",
            False,
        ),
    ],
)
def test_a_redis_client_built_outside_the_factory_fails(
    code: str, direct: bool, tmp_path: Path
) -> None:
    (tmp_path / "functions" / "cache").mkdir(parents=True)
    (tmp_path / "functions" / "cache" / "app.py").write_text(code)
    written = """
Resources:
  CacheFunction:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: functions/cache/, Handler: app.lambda_handler}
"""
    checked = stack(
        written,
        transformed=_redis_client("CacheFunction", READ_SECRET + DECRYPT_DATA),
        nested={"Data": DATA},
        tmp_path=tmp_path,
        code_root=tmp_path,
    )
    found = failures("iam-redis-secret", checked)
    assert bool(found) == direct, found
    if direct:
        assert "builds a Redis client itself" in found[0].message


# --- ReservedConcurrentExecutions ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "fails"),
    [
        ("      ReservedConcurrentExecutions: 1\n", True),
        ("", False),
        (
            "      ReservedConcurrentExecutions: 1\n    Metadata:\n      DeployCheck:\n"
            "        reserved-concurrency: the account's quota is raised to 1000 first\n",
            False,
        ),
    ],
)
def test_reserved_concurrency_without_a_reason_fails(
    extra: str, fails: bool, tmp_path: Path
) -> None:
    nested = (
        "Resources:\n  BootstrapLookupFunction:\n    Type: AWS::Lambda::Function\n"
        "    Properties:\n      Timeout: 30\n" + extra
    )
    found = failures("reserved-concurrency", stack(nested={"Msk": nested}, tmp_path=tmp_path))
    assert [f.where for f in found] == (["Msk/BootstrapLookupFunction"] if fails else [])


def test_parse_keeps_short_tags(tmp_path: Path) -> None:
    assert parse("A: !GetAtt B.Arn\n", tmp_path) == {"A": {"Fn::GetAtt": ["B", "Arn"]}}
