"""moto server: stands in for AWS's own APIs (DynamoDB, SQS, SNS, S3, KMS, Secrets Manager).

Its state lives in memory, so every `up` (re)creates what template.yaml declares; the creation
is idempotent, which keeps a second `up` fast when moto is already running.
"""

from __future__ import annotations

import sys
from typing import Any

from devstack.service import Launch, Service, child_env

# moto accepts any credentials; boto3 needs some to sign requests. Child processes of `run`
# get these too, so the exchange's own code works against moto unchanged.
LOCAL_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


class Moto(Service):
    name = "moto"
    ready_timeout = 30.0

    @property
    def ports(self) -> dict[int, str]:
        return {self.settings.moto_port: "BOURSE_MOTO_PORT"}

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.settings.moto_port}"

    def launch(self) -> Launch:
        argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                "-p", str(self.settings.moto_port)]  # fmt: skip
        return Launch(argv, env=child_env())

    def client(self, service: str) -> Any:
        import boto3  # heavy; `status` and `down` never need it

        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.endpoint,
            region_name=self.settings.region,
            aws_access_key_id=LOCAL_AWS_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=LOCAL_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        )

    def ping(self) -> None:
        self.client("dynamodb").list_tables(Limit=1)

    def configure(self) -> list[str]:
        from devstack.template_resources import ensure_resources

        return ensure_resources(self.settings, self.client)
