"""Apache Cassandra 5.0 as a single local node, tuned to start fast."""

from __future__ import annotations

import logging

import yaml
from cassandra.cluster import Cluster, Session

from userpipeline.operator.local.artifacts import load_artifacts
from userpipeline.operator.local.services.base import Service
from userpipeline.operator.local.services.ports import port_accepts

# From Cassandra 5.0's conf/jvm17-server.options: the JDK internals it needs on Java 17.
JVM17_MODULE_OPTIONS = [
    *(f"--add-exports={m}=ALL-UNNAMED" for m in (
        "java.base/jdk.internal.misc", "java.base/jdk.internal.ref", "java.base/sun.nio.ch",
        "java.management.rmi/com.sun.jmx.remote.internal.rmi", "java.rmi/sun.rmi.registry",
        "java.rmi/sun.rmi.server", "java.sql/java.sql", "java.base/java.lang.ref", "jdk.unsupported/sun.misc",
    )),
    *(f"--add-opens={m}=ALL-UNNAMED" for m in (
        "java.base/java.lang.module", "java.base/jdk.internal.loader", "java.base/jdk.internal.ref",
        "java.base/jdk.internal.reflect", "java.base/jdk.internal.math", "java.base/jdk.internal.module",
        "java.base/jdk.internal.util.jar", "jdk.management/com.sun.management.internal", "java.base/sun.nio.ch",
        "java.base/java.io", "java.base/java.nio", "java.base/java.util.concurrent", "java.base/java.util",
        "java.base/java.util.concurrent.atomic", "java.base/java.lang", "java.base/java.math",
        "java.base/java.lang.reflect", "java.base/java.net",
    )),
]

LOGBACK = """\
<configuration>
  <appender name="OUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%date{ISO8601} %-5level [%thread] %logger{0} %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="OUT"/></root>
</configuration>
"""


class CassandraService(Service):
    name = "cassandra"
    default_ports = {"cql": 9042, "storage": 7000}
    start_timeout = 180.0

    @property
    def contact(self) -> str:
        return f"127.0.0.1:{self.ports['cql']}"

    def config(self) -> dict:
        return {
            "cluster_name": "userpipeline",
            "num_tokens": 1,
            "partitioner": "org.apache.cassandra.dht.Murmur3Partitioner",
            "commitlog_sync": "periodic",
            "commitlog_sync_period": "10000ms",
            "endpoint_snitch": "SimpleSnitch",
            "listen_address": "127.0.0.1",
            "rpc_address": "127.0.0.1",
            "storage_port": self.ports["storage"],
            "native_transport_port": self.ports["cql"],
            "start_native_transport": True,
            "auto_snapshot": False,
            "seed_provider": [{
                "class_name": "org.apache.cassandra.locator.SimpleSeedProvider",
                "parameters": [{"seeds": f"127.0.0.1:{self.ports['storage']}"}],
            }],
        }

    def prepare(self) -> None:
        (self.conf_dir / "cassandra.yaml").write_text(yaml.safe_dump(self.config()))
        (self.conf_dir / "logback.xml").write_text(LOGBACK)

    def command(self) -> list[str]:
        artifacts = load_artifacts()
        lib = artifacts.cassandra_lib
        jamm = next(lib.glob("jamm-*.jar"))
        return [
            str(artifacts.java), "-Xms1g", "-Xmx1g", "-Xss256k", "-XX:+UseG1GC",
            "-XX:+HeapDumpOnOutOfMemoryError", f"-XX:HeapDumpPath={self.home}",
            "-Djdk.attach.allowAttachSelf=true", f"-javaagent:{jamm}",
            *JVM17_MODULE_OPTIONS,
            f"-Dcassandra.config=file://{self.conf_dir / 'cassandra.yaml'}",
            f"-Dcassandra.storagedir={self.data_dir}",
            f"-Dcassandra.logdir={self.home}",
            f"-Dlogback.configurationFile={self.conf_dir / 'logback.xml'}",
            "-Dcassandra.skip_wait_for_gossip_to_settle=0", "-Dcassandra.initial_token=0",
            "-Dcassandra-foreground=yes",
            "-cp", f"{lib}/*", "org.apache.cassandra.service.CassandraDaemon",
        ]

    def cluster(self, **kwargs) -> Cluster:
        return Cluster(["127.0.0.1"], port=self.ports["cql"], connect_timeout=5, **kwargs)

    def session(self, keyspace: str | None = None) -> Session:
        """A new driver session; the caller shuts down `session.cluster` when done."""
        return self.cluster().connect(keyspace)

    def check_health(self) -> bool:
        if not port_accepts(self.ports["cql"]):
            return False
        driver_log = logging.getLogger("cassandra")
        level = driver_log.level
        driver_log.setLevel(logging.CRITICAL)
        cluster = self.cluster()
        try:
            row = cluster.connect().execute("SELECT release_version FROM system.local").one()
            return row is not None
        except Exception:
            return False
        finally:
            cluster.shutdown()
            driver_log.setLevel(level)

    def failure_hint(self, log_text: str) -> str:
        if "CorruptSSTableException" in log_text or "CommitLogReadException" in log_text:
            return f"Cassandra's data in {self.data_dir} is corrupt: `userpipeline reset cassandra` clears it (data loss)."
        if "Address already in use" in log_text:
            return "One of its ports is taken: stop the other process or pick other ports."
        return super().failure_hint(log_text)
