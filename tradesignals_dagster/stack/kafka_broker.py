"""A single-node KRaft Apache Kafka broker run from Maven Central jars.

The jars are resolved once with Maven (``pom.xml`` beside this module) into a jar directory
that may be shared between instances; each instance keeps its configuration, data, pid and
log under ``<state_dir>/kafka``. The broker runs in combined mode (broker and controller in
one JVM), listens on 127.0.0.1 only, and is started as a detached process so it outlives the
``tradesignals stack up`` command.
"""

from __future__ import annotations

import base64
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from tradesignals_dagster.stack.errors import (
    BrokerStartError,
    PortInUseError,
    StackError,
)
from tradesignals_dagster.stack.jars import (
    KAFKA_VERSION,
    check_java,
    jars_complete,
    resolve_jars,
    storage_tool_class,
)
from tradesignals_dagster.stack.process import (
    LOCALHOST,
    find_free_port,
    last_lines,
    port_in_use,
    start_detached,
    stop_pid,
    tail,
    tcp_open,
    wait_until,
    write_json,
)
from tradesignals_dagster.stack.service import LocalService

DEFAULT_HEAP = "768m"
_BROKER_MAIN = "kafka.Kafka"

_LOG4J2 = """\
status = warn
shutdownHook = disable
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


def new_cluster_id() -> str:
    """A KRaft cluster id: a random UUID in URL-safe base64 without padding.

    One in 32 starts with '-', which is why it is passed as ``--cluster-id=<id>``.
    """
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


def server_properties(
    port: int, controller_port: int, data_dir: Path, *, node_id: int = 1, voters: str | None = None
) -> str:
    """The ``server.properties`` of a combined-mode (broker and controller) node on 127.0.0.1.

    Alone (``voters`` None) its internal topics have replication factor 1; in a cluster of
    three the voters list names every node's controller and the internal topics (offsets,
    transactions) get replication factor 3 with min ISR 2, as in production, so losing one
    broker loses no committed offset or transaction state. Automatic topic creation is off so
    that the registry, not a typo in a producer, decides which topics exist.
    """
    size = voters.count("@") if voters else 1
    rf, isr = ("3", "2") if size >= 3 else ("1", "1")
    cluster = (
        # a dead follower leaves the ISR after 10 s instead of 30 s: drills and operators see it sooner
        {"replica.lag.time.max.ms": "10000"} if size >= 3 else {}
    )
    props = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": voters or f"{node_id}@{LOCALHOST}:{controller_port}",
        "listeners": f"PLAINTEXT://{LOCALHOST}:{port},CONTROLLER://{LOCALHOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{LOCALHOST}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        "default.replication.factor": rf,
        "min.insync.replicas": isr,
        "offsets.topic.replication.factor": rf,
        "offsets.topic.num.partitions": "8",
        "transaction.state.log.replication.factor": rf,
        "transaction.state.log.min.isr": isr,
        "transaction.state.log.num.partitions": "8",
        "share.coordinator.state.topic.replication.factor": rf,
        "share.coordinator.state.topic.min.isr": isr,
        "auto.create.topics.enable": "false",
        "group.initial.rebalance.delay.ms": "0",
        "num.network.threads": "2",
        "num.io.threads": "4",
        **cluster,
    }
    return "".join(f"{key}={value}\n" for key, value in props.items())


class KafkaBroker(LocalService):
    """One local broker instance: its files under ``<state_dir>/kafka`` and its process.

    ``port`` / ``controller_port`` of None mean: the ports this instance used last time if
    they are still free, else free ones chosen by the kernel. ``jar_dir`` defaults to
    ``<state_dir>/kafka/lib``; pass :func:`shared_jar_cache` to share jars between instances.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        port: int | None = None,
        controller_port: int | None = None,
        jar_dir: Path | None = None,
        heap: str = DEFAULT_HEAP,
        java: str = "java",
        mvn: str = "mvn",
        node_id: int = 1,
        voters: str | None = None,
        cluster_id: str | None = None,
        subdir: str = "kafka",
    ) -> None:
        self.node_id = node_id
        self.voters = voters
        self.cluster_id = cluster_id
        self.home = Path(state_dir).resolve() / subdir
        self.data_dir = self.home / "data"
        self.config_path = self.home / "server.properties"
        self.log4j_path = self.home / "log4j2.properties"
        self.log_path = self.home / "broker.log"
        self.state_path = self.home / "broker.json"
        self.jar_dir = Path(jar_dir).resolve() if jar_dir else self._recorded_jar_dir()
        self.heap = heap
        self.java = java
        self.mvn = mvn
        self._want_port = port
        self._want_controller_port = controller_port

    # -- recorded state -------------------------------------------------------------------

    def identity(self) -> str:
        """The config file path, unique to this instance."""
        return str(self.config_path)

    def _recorded_jar_dir(self) -> Path:
        """The jar dir the last start used, if still complete, else ``<home>/lib``."""
        recorded = self._state().get("jar_dir")
        if recorded and jars_complete(Path(recorded)):
            return Path(recorded)
        return self.home / "lib"

    @property
    def controller_port(self) -> int | None:
        """The KRaft controller port this instance last started on."""
        value = self._state().get("controller_port")
        return int(value) if value else None

    @property
    def bootstrap_servers(self) -> str:
        """``127.0.0.1:<port>`` for clients, once the broker has been started."""
        if self.port is None:
            raise StackError(f"The broker under {self.home} has never been started.")
        return f"{LOCALHOST}:{self.port}"

    # -- lifecycle ------------------------------------------------------------------------

    def is_ready(self, timeout: float = 2.0) -> bool:
        """Whether the broker answers a metadata request that lists itself."""
        port = self.port
        if port is None or not tcp_open(port):
            return False
        admin = AdminClient({"bootstrap.servers": f"{LOCALHOST}:{port}", "log_level": 0})
        try:
            metadata = admin.list_topics(timeout=timeout)
        except KafkaException:
            return False
        return bool(metadata.brokers)

    def _choose_ports(self) -> tuple[int, int]:
        """The client and controller ports for a new start, checked to be free."""
        state = self._state()
        chosen: list[int] = []
        for wanted, recorded, what in (
            (self._want_port, state.get("port"), "Kafka broker listener"),
            (self._want_controller_port, state.get("controller_port"), "Kafka controller"),
        ):
            if wanted:
                if port_in_use(wanted) or wanted in chosen:
                    raise PortInUseError(wanted, what)
                chosen.append(wanted)
                continue
            if recorded and int(recorded) not in chosen and not port_in_use(int(recorded)):
                chosen.append(int(recorded))
                continue
            port = find_free_port()
            while port in chosen:
                port = find_free_port()
            chosen.append(port)
        return chosen[0], chosen[1]

    def _java_command(self, java: str, main: str, *args: str) -> list[str]:
        """``java <heap, GC and logging options> -cp <jars> main args``."""
        opts = [f"-Xmx{self.heap}", "-Xms128m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20"]
        opts += ["-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={self.log4j_path}"]
        opts += [f"-Dkafka.logs.dir={self.home / 'logs'}", "-cp", f"{self.jar_dir}/*"]
        return [java, *opts, main, *args]

    def _format(self, java: str) -> None:
        """Format the KRaft storage once; later starts reuse the data directory."""
        if (self.data_dir / "meta.properties").is_file():
            return
        args = ["format", "--config", str(self.config_path), "--ignore-formatted"]
        cluster_id = self.cluster_id or new_cluster_id()
        cmd = self._java_command(java, storage_tool_class(self.jar_dir), *args, f"--cluster-id={cluster_id}")
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
        if proc.returncode != 0:
            raise BrokerStartError(
                f"Formatting the Kafka storage in {self.data_dir} failed "
                f"(exit {proc.returncode}):\n{last_lines(proc.stdout + proc.stderr)}"
            )

    def start(self, timeout: float = 60.0, *, wait: bool = True) -> dict[str, Any]:
        """Start the broker (or find it running) and wait until it answers metadata.

        Idempotent: a broker of this instance that is already running is waited for and
        reported, not started twice. Returns :meth:`status`. ``wait=False`` returns once the
        process is launched: a node of a cluster answers only when a quorum of its peers runs.
        """
        running = self.pid
        if running is not None:
            for wanted, actual in (
                (self._want_port, self.port),
                (self._want_controller_port, self.controller_port),
            ):
                if wanted and wanted != actual:
                    raise StackError(
                        f"The broker under {self.home} already runs (pid {running}) on port "
                        f"{actual}, not {wanted}; stop it first to change ports."
                    )
            if wait and not wait_until(self.is_ready, timeout, interval=0.5, pid=running):
                raise BrokerStartError(
                    f"The broker under {self.home} (pid {running}) runs but does not answer on "
                    f"{LOCALHOST}:{self.port}. Log {self.log_path}:\n{tail(self.log_path)}"
                )
            return self.status()

        java = check_java(self.java)
        resolve_jars(self.jar_dir, mvn=self.mvn)
        port, controller_port = self._choose_ports()
        self.home.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            server_properties(port, controller_port, self.data_dir, node_id=self.node_id, voters=self.voters)
        )
        self.log4j_path.write_text(_LOG4J2)
        self._format(java)
        if self.log_path.exists():
            self.log_path.replace(self.log_path.with_suffix(".log.1"))
        started = time.monotonic()
        pid = start_detached(
            self._java_command(java, _BROKER_MAIN, str(self.config_path)),
            self.log_path,
            cwd=self.home,
        )
        state: dict[str, Any] = {"pid": pid, "port": port, "controller_port": controller_port}
        state |= {"version": KAFKA_VERSION, "jar_dir": str(self.jar_dir)}
        write_json(self.state_path, state)
        if not wait:
            return self.status()
        return self.wait_ready(pid, started, timeout)

    def wait_ready(self, pid: int, started: float, timeout: float) -> dict[str, Any]:
        """Wait until the launched process ``pid`` answers; stop it and explain if it does not."""
        port = self.port
        state = self._state()
        if not wait_until(self.is_ready, timeout, interval=0.25, pid=pid):
            died = not stop_pid(pid, timeout=10.0)
            log = tail(self.log_path)
            if "Address already in use" in log:
                hint = "A port was taken between the check and the start; try again."
            elif died:
                hint = "The broker process exited during start-up."
            else:
                hint = f"It did not answer on {LOCALHOST}:{port} within {timeout:.0f}s."
            raise BrokerStartError(
                f"The Kafka {KAFKA_VERSION} broker failed to start. {hint}\n"
                f"Last lines of {self.log_path}:\n{log}",
                exited=died,
            )
        state["startup_seconds"] = round(time.monotonic() - started, 2)
        write_json(self.state_path, state)
        return self.status()

    def status(self) -> dict[str, Any]:
        """Whether the broker runs and answers, with its pid, ports, log and data paths."""
        state = self._state()
        pid = self.pid
        port = self.port
        return {
            "running": pid is not None,
            "ready": pid is not None and self.is_ready(timeout=2.0),
            "pid": pid,
            "port": port,
            "controller_port": self.controller_port,
            "bootstrap_servers": f"{LOCALHOST}:{port}" if port else None,
            "version": KAFKA_VERSION,
            "log": str(self.log_path),
            "data_dir": str(self.data_dir),
            "jar_dir": str(self.jar_dir),
            "startup_seconds": state.get("startup_seconds"),
        }
