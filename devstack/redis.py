"""Redis from Debian's redis-server, in the foreground, with its data under the stack dir."""

from __future__ import annotations

from pathlib import Path

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

    def prepare(self) -> None:
        require_binary(self.name, "redis-server", "redis-server")
        self.home.mkdir(parents=True, exist_ok=True)

    def launch(self) -> Launch:
        argv = [
            require_binary(self.name, "redis-server", "redis-server"),
            "--bind", "127.0.0.1",
            "--port", str(self.settings.redis_port),
            "--dir", str(self.home),
            "--daemonize", "no",
            "--logfile", "",  # stdout, which the stack sends to logs/redis.log
            # The engine can rebuild everything in Redis, so no append-only file; the default
            # RDB snapshot on shutdown keeps a warm restart warm.
            "--appendonly", "no",
            # Each integration test module isolates itself in a database of its own.
            "--databases", "64",
        ]  # fmt: skip
        return Launch(argv, cwd=self.home)

    def ping(self) -> None:
        import redis as redis_client  # heavy; `status` and `down` never need it

        client = redis_client.Redis.from_url(self.settings.redis_url, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
