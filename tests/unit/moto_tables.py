"""One DynamoDB table in moto's in-process mock, which ``bourse.adapters.aws.client`` hands out:
the set-up the adapter tests of idempotency claims and listen keys share."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from bourse.adapters import aws


@contextmanager
def dynamodb_table(monkeypatch: pytest.MonkeyPatch, name: str, key: str) -> Iterator[Any]:
    """A table ``name`` with string hash key ``key``; yields the DynamoDB client."""
    import boto3
    from moto import mock_aws

    for var, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():  # fmt: skip
        monkeypatch.setenv(var, value)
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        monkeypatch.setattr(aws, "client", lambda service: ddb)
        ddb.create_table(
            TableName=name,
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
        )
        yield ddb
