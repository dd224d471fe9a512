"""moto server: stands in for AWS's own APIs (DynamoDB, SQS, SNS, S3, KMS, Secrets Manager).

Its state lives in memory, so every `up` (re)creates what template.yaml declares; the creation
is idempotent, which keeps a second `up` fast when moto is already running.
"""

from __future__ import annotations

import sys
from typing import Any

from devstack.service import Launch, Service, child_env


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
        from bourse.adapters import aws  # boto3 is heavy; `status` and `down` never need it

        return aws.client(service)

    def ping(self) -> None:
        self.client("dynamodb").list_tables(Limit=1)

    def configure(self) -> list[str]:
        from devstack.template_resources import ensure_resources

        return ensure_resources(self.settings, self.client)
