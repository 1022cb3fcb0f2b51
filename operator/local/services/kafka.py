"""Apache Kafka in KRaft mode: one combined broker + controller node."""

from __future__ import annotations

import subprocess

from confluent_kafka.admin import AdminClient

from userpipeline.operator.local.artifacts import load_artifacts
from userpipeline.operator.local.services.base import Service, ServiceError
from userpipeline.operator.local.services.ports import port_accepts

# Large enough for the 5 MB edge-case message: the stream dead-letters it as oversized.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024

LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.state.name = state.change.logger
logger.state.level = WARN
"""


class KafkaService(Service):
    name = "kafka"
    default_ports = {"broker": 9092, "controller": 9093}
    start_timeout = 180.0  # a loaded machine: JVM start and log recovery after a crash

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.ports['broker']}"

    def properties(self) -> str:
        broker, controller = self.ports["broker"], self.ports["controller"]
        settings = {
            "process.roles": "broker,controller",
            "node.id": 1,
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller}",
            "listeners": f"PLAINTEXT://127.0.0.1:{broker},CONTROLLER://127.0.0.1:{controller}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{broker}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": self.data_dir,
            "num.partitions": 3,
            "offsets.topic.replication.factor": 1,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "share.coordinator.state.topic.replication.factor": 1,
            "share.coordinator.state.topic.min.isr": 1,
            "group.initial.rebalance.delay.ms": 0,
            "message.max.bytes": MAX_MESSAGE_BYTES,
            "replica.fetch.max.bytes": MAX_MESSAGE_BYTES,
            "log.retention.check.interval.ms": 60000,
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def _java(self, main: str, *args: str) -> list[str]:
        artifacts = load_artifacts()
        return [
            str(artifacts.java), "-Xms256m", "-Xmx512m", "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={self.conf_dir / 'log4j2.properties'}",
            "-cp", f"{artifacts.kafka_lib}/*", main, *args,
        ]

    def prepare(self) -> None:
        (self.conf_dir / "server.properties").write_text(self.properties())
        (self.conf_dir / "log4j2.properties").write_text(LOG4J2)
        if not (self.data_dir / "meta.properties").exists():
            self._format_storage()

    def _format_storage(self) -> None:
        cluster_id = subprocess.run(self._java("kafka.tools.StorageTool", "random-uuid"),
                                    capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        result = subprocess.run(
            self._java("kafka.tools.StorageTool", "format", "--standalone", "-t", cluster_id,
                       "-c", str(self.conf_dir / "server.properties")),
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise ServiceError(f"kafka: formatting {self.data_dir} failed: {result.stderr.strip()[-500:]}")

    def command(self) -> list[str]:
        return self._java("kafka.Kafka", str(self.conf_dir / "server.properties"))

    def check_health(self) -> bool:
        if not port_accepts(self.ports["broker"]):
            return False
        try:
            admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
            return bool(admin.list_topics(timeout=3).brokers)
        except Exception:
            return False

    def failure_hint(self, log_text: str) -> str:
        if "meta.properties" in log_text or "InconsistentClusterIdException" in log_text or "corrupt" in log_text.lower():
            return f"Kafka's data in {self.data_dir} is inconsistent: `userpipeline reset kafka` clears it (data loss)."
        return super().failure_hint(log_text)
