"""Apache Kafka 4.x, one KRaft node (broker and controller in one JVM), from Maven Central jars."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from bourse.adapters.kafka_topics import topic_specs
from devstack.paths import DEVSTACK_DIR
from devstack.processes import port_answers
from devstack.service import Launch, Service, StackError, child_env, require_binary

if TYPE_CHECKING:
    from kafka import KafkaAdminClient

POM = DEVSTACK_DIR / "kafka" / "pom.xml"
HEAP = ["-Xms256m", "-Xmx512m"]

# Single-node settings: every internal topic has one replica, or transactions and consumer
# groups would wait forever for replicas that do not exist. Few internal partitions keep a cold
# start and the first transaction fast.
_SERVER_PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={data}
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.check.interval.ms=300000
"""

_LOG4J2 = """\
# Kafka's log goes to stdout, which the stack sends to logs/kafka.log.
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.console.ref = STDOUT
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.controller.name = org.apache.kafka.controller
logger.controller.level = WARN
"""


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes in URL-safe base64 without padding, never starting
    with "-" (one in 64 would, and StorageTool's argument parser reads such an id after
    ``--cluster-id`` as an option and fails the format; Kafka's own Uuid.randomUuid draws
    again for the same reason)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class Kafka(Service):
    name = "kafka"
    ready_timeout = 90.0

    @property
    def home(self) -> Path:
        return self.paths.data("kafka")

    @property
    def libs(self) -> Path:
        return self.home / "libs"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def ports(self) -> dict[int, str]:
        return {
            self.settings.kafka_port: "BOURSE_KAFKA_BOOTSTRAP",
            self.settings.kafka_controller_port: "BOURSE_KAFKA_CONTROLLER_PORT",
        }

    @property
    def endpoint(self) -> str:
        return self.settings.kafka_bootstrap

    def prepare(self) -> None:
        require_binary(self.name, "java", "openjdk-17-jre-headless")
        self.home.mkdir(parents=True, exist_ok=True)
        self._fetch_jars()
        (self.home / "server.properties").write_text(
            _SERVER_PROPERTIES.format(
                port=self.settings.kafka_port,
                controller_port=self.settings.kafka_controller_port,
                data=self.data_dir,
            )
        )
        (self.home / "log4j2.properties").write_text(_LOG4J2)
        if not (self.data_dir / "meta.properties").exists():
            self._format()

    def _fetch_jars(self) -> None:
        """Copy Kafka and its dependencies out of the Maven cache (~/.m2) into libs/.

        A stamp with the pom's hash makes this a no-op until the pom changes."""
        stamp = self.libs / ".pom-sha256"
        digest = hashlib.sha256(POM.read_bytes()).hexdigest()
        if stamp.exists() and stamp.read_text() == digest:
            return
        mvn = require_binary(self.name, "mvn", "maven")
        staging = self.home / "libs.partial"
        shutil.rmtree(staging, ignore_errors=True)
        maven_log = self.paths.log("maven")
        with maven_log.open("ab") as log:
            result = subprocess.run(
                [mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
                 f"-DoutputDirectory={staging}", "-DincludeScope=runtime"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False,
            )  # fmt: skip
        if result.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
            raise StackError(
                f"kafka: Maven could not fetch the Kafka jars (network or Maven Central?); "
                f"see {maven_log}"
            )
        (staging / ".pom-sha256").write_text(digest)
        shutil.rmtree(self.libs, ignore_errors=True)
        staging.rename(self.libs)

    def _java(self, main: str, *args: str) -> list[str]:
        java = require_binary(self.name, "java", "openjdk-17-jre-headless")
        return [
            java, *HEAP, "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            "-cp", f"{self.libs}/*", main, *args,
        ]  # fmt: skip

    def _format(self) -> None:
        cluster_id = new_cluster_id()
        with self.log_path.open("ab") as log:
            result = subprocess.run(
                self._java("kafka.tools.StorageTool", "format", "--cluster-id", cluster_id,
                           "--config", str(self.home / "server.properties")),
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False,
            )  # fmt: skip
        if result.returncode != 0:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            raise self.fail("formatting the storage failed")

    def launch(self) -> Launch:
        argv = self._java("kafka.Kafka", str(self.home / "server.properties"))
        return Launch(argv, env=child_env({"KAFKA_HEAP_OPTS": " ".join(HEAP)}), cwd=self.home)

    def _admin(self) -> KafkaAdminClient:
        from kafka import KafkaAdminClient  # heavy; `status` and `down` never need it

        return KafkaAdminClient(
            bootstrap_servers=self.settings.kafka_bootstrap,
            client_id="devstack",
            request_timeout_ms=5000,
            # Defaults wait 30 s for a broker that is still starting; we poll instead.
            bootstrap_timeout_ms=3000,
            reconnect_backoff_max_ms=500,
        )

    def ping(self) -> None:
        if not port_answers(self.settings.kafka_port):
            raise ConnectionRefusedError(self.settings.kafka_bootstrap)
        admin = self._admin()
        try:
            admin.list_topics()
        finally:
            admin.close()

    def configure(self) -> list[str]:
        from kafka.errors import TopicAlreadyExistsError

        specs = topic_specs(self.settings)
        admin = self._admin()
        try:
            existing = set(admin.list_topics())
            missing = [spec for spec in specs if spec.name not in existing]
            for spec in missing:
                # Already there means another `up` raced us to it: fine.
                with contextlib.suppress(TopicAlreadyExistsError):
                    admin.create_topics(
                        {spec.name: {"num_partitions": spec.partitions, "replication_factor": 1,
                                     "configs": dict(spec.configs)}},
                        timeout_ms=10000, wait_for_metadata=True,
                    )  # fmt: skip
            described = admin.describe_topics([spec.name for spec in specs])
        finally:
            admin.close()
        partitions = {t["name"]: len(t["partitions"]) for t in described}
        for spec in specs:
            if partitions.get(spec.name) != spec.partitions:
                raise self.fail(
                    f"topic {spec.name} has {partitions.get(spec.name)} partitions, "
                    f"expected {spec.partitions}"
                )
        return [f"created topic {spec.name} ({spec.partitions} partition)" for spec in missing]
