"""What the local stack makes for the admin plane from template.yaml (moto in-process): the
admin signing key (asymmetric, its policy naming the admin function's role) and its alias,
the funding topic, the key table's by-account index (added to a table an older `up` made),
and the operator's credentials."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from bourse.settings import get_settings
from devstack.template_resources import ensure_resources

pytestmark = pytest.mark.unit


@pytest.fixture
def aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("BOURSE_STACK_DIR", str(tmp_path / "stack"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    get_settings.cache_clear()
    with mock_aws():
        yield lambda service: boto3.client(service, region_name="us-east-1")
    get_settings.cache_clear()


def test_admin_resources_from_the_template(aws: Any) -> None:
    settings = get_settings()
    ddb = aws("dynamodb")
    # A key table from before the index existed.
    ddb.create_table(
        TableName="bourse-local-api-keys",
        KeySchema=[{"AttributeName": "apiKey", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "apiKey", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    notes = ensure_resources(settings, aws)
    assert "added index by-account to table bourse-local-api-keys" in notes
    assert any("operator's credentials" in note for note in notes)
    table = ddb.describe_table(TableName="bourse-local-api-keys")["Table"]
    assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == ["by-account"]

    kms = aws("kms")
    key = kms.describe_key(KeyId="alias/bourse-local-admin-signing")["KeyMetadata"]
    assert (key["KeySpec"], key["KeyUsage"]) == ("ECC_NIST_P256", "SIGN_VERIFY")
    policy = json.loads(kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"])
    signers = [s for s in policy["Statement"] if s["Action"] == "kms:Sign"]
    assert {s["Effect"] for s in signers} == {"Allow", "Deny"}
    allow = next(s for s in signers if s["Effect"] == "Allow")
    assert allow["Principal"]["AWS"] == "arn:aws:iam::123456789012:role/AdminFunctionRole"
    signature = kms.sign(KeyId="alias/bourse-local-admin-signing", Message=b"x",
                         MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256")  # fmt: skip
    assert signature["KeyId"] == key["Arn"]

    topics = [t["TopicArn"] for t in aws("sns").list_topics()["Topics"]]
    assert "arn:aws:sns:us-east-1:123456789012:bourse-local-funding" in topics

    # Idempotent: a second `up` makes nothing new and keeps the credentials.
    again = ensure_resources(settings, aws)
    assert not [n for n in again if "created" in n or "added" in n], again
