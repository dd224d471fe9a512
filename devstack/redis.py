"""Redis from Debian's redis-server, in the foreground, with its data under the stack dir.

It requires the stack's AUTH token (devstack/redis_auth.py), as ElastiCache does: a client
that does not read the token from the secret is refused here as it would be on AWS.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from devstack.redis_auth import local_token
from devstack.service import Launch, Service, require_binary


class Redis(Service):
    name = "redis"
    ready_timeout = 20.0

    @property
    def home(self) -> Path:
        return self.paths.data("redis")

    @property
    def ports(self) -> dict[int, str]:
        return {self.settings.redis_port: "BOURSE_REDIS_URL"}

    @property
    def endpoint(self) -> str:
        return self.settings.redis_url

    @property
    def auth_config(self) -> Path:
        return self.home / "auth.conf"

    def prepare(self) -> None:
        require_binary(self.name, "redis-server", "redis-server")
        self.home.mkdir(parents=True, exist_ok=True)
        # In a config file, not on the command line, so that `ps` does not show the token.
        fd = os.open(self.auth_config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(f"requirepass {local_token(self.paths)}\n")

    def launch(self) -> Launch:
        argv = [
            require_binary(self.name, "redis-server", "redis-server"),
            str(self.auth_config),
            "--bind", "127.0.0.1",
            "--port", str(self.settings.redis_port),
            "--dir", str(self.home),
            "--daemonize", "no",
            "--logfile", "",  # stdout, which the stack sends to logs/redis.log
            # The engine can rebuild everything in Redis, so no append-only file; the RDB
            # snapshot on shutdown keeps a warm restart warm. Redis's default save points also
            # snapshot every minute under load: a fork and ~1.4 s of a core writing ~300 MB on
            # the two cores the exchange shares, which ElastiCache (no persistence, a daily
            # backup at most) never costs it. An hour's save point keeps the shutdown save.
            "--appendonly", "no",
            "--save", "3600 1",
            # Each integration test module isolates itself in a database of its own.
            "--databases", "64",
        ]  # fmt: skip
        return Launch(argv, cwd=self.home)

    def _client(self, password: str | None) -> Any:
        import redis as redis_client  # heavy; `status` and `down` never need it

        return redis_client.Redis.from_url(
            self.settings.redis_url, password=password, socket_timeout=2
        )

    def ping(self) -> None:
        import redis as redis_client

        client = self._client(local_token(self.paths))
        try:
            client.ping()
        except redis_client.AuthenticationError:
            # A server started before Redis had a password: alive; configure() protects it.
            if self._unprotected():
                return
            raise
        finally:
            client.close()

    def _unprotected(self) -> bool:
        import redis as redis_client

        client = self._client(None)
        try:
            return bool(client.ping())
        except redis_client.AuthenticationError:
            return False
        finally:
            client.close()

    def configure(self) -> list[str]:
        if not self._unprotected():
            return []
        # Running since before the password: set it live rather than restart, so that the
        # connections already open (and authenticated, having needed nothing) keep working.
        client = self._client(None)
        try:
            client.config_set("requirepass", local_token(self.paths))
        finally:
            client.close()
        return ["now requires its AUTH token (it was started without one)"]
