"""How clients connect on AWS: MSK with IAM (OAUTHBEARER), Redis with the AUTH token from
Secrets Manager; locally neither applies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from aws_msk_iam_sasl_signer import MSKAuthTokenProvider
from kafka.net.sasl.oauth import AbstractTokenProvider

from bourse.adapters import aws, kafka, redis_conn
from bourse.settings import get_settings

pytestmark = pytest.mark.unit


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    get_settings.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


def test_local_kafka_is_plaintext(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.delenv("BOURSE_KAFKA_IAM_AUTH", raising=False)
    assert kafka.security_config() == {"bootstrap_servers": get_settings().kafka_bootstrap}


def test_msk_uses_iam_tokens_signed_once_per_lifetime(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("BOURSE_KAFKA_IAM_AUTH", "true")
    settings_env.setenv("BOURSE_KAFKA_BOOTSTRAP", "b-1.msk.example:9098,b-2.msk.example:9098")
    settings_env.setenv("AWS_REGION", "eu-west-1")
    signed: list[str] = []

    def sign(region: str) -> tuple[str, int]:
        signed.append(region)
        return f"token-{len(signed)}", 10**15  # far future: no refresh

    settings_env.setattr(MSKAuthTokenProvider, "generate_auth_token", staticmethod(sign))
    config = kafka.security_config()
    assert config["security_protocol"] == "SASL_SSL"
    assert config["sasl_mechanism"] == "OAUTHBEARER"
    assert config["bootstrap_servers"] == "b-1.msk.example:9098,b-2.msk.example:9098"
    provider = config["sasl_oauth_token_provider"]
    assert isinstance(provider, AbstractTokenProvider)
    assert [provider.token(), provider.token()] == ["token-1", "token-1"]
    assert signed == ["eu-west-1"]


def test_redis_auth_token_comes_from_the_secret(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("BOURSE_REDIS_AUTH_SECRET_ARN", "arn:aws:secretsmanager:x:1:secret:r")
    calls: list[str] = []

    class Secrets:
        def get_secret_value(self, SecretId: str) -> dict[str, Any]:
            calls.append(SecretId)
            return {"SecretString": json.dumps({"token": "s3cret"})}

    settings_env.setattr(aws, "client", lambda service: Secrets())
    redis_conn._auth_token.cache_clear()
    client = redis_conn.connect("rediss://cache.example:6379/0")
    redis_conn.connect("rediss://cache.example:6379/0")
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["password"] == "s3cret" and kwargs["host"] == "cache.example"
    assert calls == ["arn:aws:secretsmanager:x:1:secret:r"]  # read once per process
    redis_conn._auth_token.cache_clear()


def test_local_redis_takes_its_token_from_the_stacks_secret(
    settings_env: pytest.MonkeyPatch,
) -> None:
    """As strict as ElastiCache: locally too the token comes from the secret infra/data.yaml
    declares (bourse-local/redis-auth), which the local stack creates in moto."""
    settings_env.delenv("BOURSE_REDIS_AUTH_SECRET_ARN", raising=False)
    settings_env.setenv("BOURSE_STAGE", "local")
    calls: list[str] = []

    class Secrets:
        def get_secret_value(self, SecretId: str) -> dict[str, Any]:
            calls.append(SecretId)
            return {"SecretString": json.dumps({"token": "local-token"})}

    settings_env.setattr(aws, "client", lambda service: Secrets())
    redis_conn._auth_token.cache_clear()
    client = redis_conn.connect("redis://127.0.0.1:6380/0")
    assert client.connection_pool.connection_kwargs["password"] == "local-token"
    assert calls == ["bourse-local/redis-auth"]
    redis_conn._auth_token.cache_clear()
