"""A single-node KRaft Apache Kafka broker run from Maven Central jars.

The jars are resolved once with Maven (``pom.xml`` beside this module) into a jar directory
that may be shared between instances; each instance keeps its configuration, data, pid and
log under ``<state_dir>/kafka``. The broker runs in combined mode (broker and controller in
one JVM), listens on 127.0.0.1 only, and is started as a detached process so it outlives the
``tradesignals stack up`` command.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from tradesignals_dagster.stack.errors import (
    BrokerStartError,
    JarResolveError,
    JavaMissingError,
    PortInUseError,
    StackError,
)
from tradesignals_dagster.stack.process import (
    LOCALHOST,
    find_free_port,
    last_lines,
    pid_matches,
    port_in_use,
    read_json,
    start_detached,
    stop_pid,
    tail,
    tcp_open,
    wait_until,
    write_json,
)

KAFKA_VERSION = "4.1.1"
"""The Apache Kafka release the stack runs; keep in step with ``kafka.version`` in pom.xml."""
SCALA_VERSION = "2.13"
CACHE_ENV = "TRADESIGNALS_KAFKA_CACHE"
DEFAULT_HEAP = "768m"
MIN_JAVA = 17
_BROKER_MAIN = "kafka.Kafka"
_STORAGE_TOOLS = ("kafka.tools.StorageTool", "org.apache.kafka.tools.StorageTool")
_COMPLETE = ".complete"

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


def shared_jar_cache() -> Path:
    """The jar directory shared by every broker instance of this Kafka version.

    ``$TRADESIGNALS_KAFKA_CACHE`` (read at call time) or ``~/.cache/tradesignals`` is the
    root; the version is part of the path so an upgrade never mixes jars.
    """
    root = os.environ.get(CACHE_ENV) or str(Path.home() / ".cache" / "tradesignals")
    return Path(root).expanduser() / f"kafka-{KAFKA_VERSION}" / "lib"


def check_java(java: str = "java") -> str:
    """The path of a Java 17+ runtime, or :class:`JavaMissingError` saying what to install."""
    path = shutil.which(java)
    if path is None:
        raise JavaMissingError(
            f"'{java}' was not found on PATH. The local Kafka broker needs Java {MIN_JAVA} "
            "or newer (Debian: apt-get install -y openjdk-17-jre-headless)."
        )
    try:
        out = subprocess.run([path, "-version"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise JavaMissingError(f"Could not run '{path} -version': {exc}") from exc
    text = out.stderr + out.stdout
    match = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if match:
        major = int(match.group(1))
        if major == 1 and match.group(2):  # "1.8.0_x" style
            major = int(match.group(2))
        if major < MIN_JAVA:
            raise JavaMissingError(
                f"{path} is Java {major}; Kafka {KAFKA_VERSION} needs Java {MIN_JAVA} or newer."
            )
    return path


def _jars_complete(jar_dir: Path) -> bool:
    """Whether ``jar_dir`` holds a finished resolve of this Kafka version."""
    marker = jar_dir / _COMPLETE
    return (
        marker.is_file()
        and marker.read_text().strip() == KAFKA_VERSION
        and (jar_dir / f"kafka_{SCALA_VERSION}-{KAFKA_VERSION}.jar").is_file()
    )


def resolve_jars(jar_dir: Path, *, mvn: str = "mvn", timeout: float = 900.0) -> Path:
    """Make ``jar_dir`` hold the broker's classpath, resolving it with Maven if needed.

    A finished directory is reused as is. Otherwise the jars are copied into a scratch
    directory beside it and renamed into place, so an interrupted or concurrent resolve
    never leaves a half-filled classpath behind.
    """
    if _jars_complete(jar_dir):
        return jar_dir
    mvn_path = shutil.which(mvn)
    if mvn_path is None:
        raise JavaMissingError(
            f"'{mvn}' (Apache Maven) was not found on PATH; it fetches the Kafka broker jars "
            "from Maven Central (Debian: apt-get install -y maven)."
        )
    jar_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = jar_dir.parent / f".resolve-{uuid.uuid4().hex[:8]}"
    scratch.mkdir()
    try:
        pom = scratch / "pom.xml"
        shutil.copyfile(Path(__file__).with_name("pom.xml"), pom)
        out_dir = scratch / "lib"
        cmd = [mvn_path, "-B", "-q", "-f", str(pom), "dependency:copy-dependencies"]
        cmd += [f"-DoutputDirectory={out_dir}", "-DincludeScope=runtime"]
        try:
            proc = subprocess.run(
                cmd, cwd=scratch, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise JarResolveError(
                f"Maven did not finish resolving Kafka {KAFKA_VERSION} within {timeout:.0f}s."
            ) from exc
        output = last_lines(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise JarResolveError(
                f"Maven could not resolve the Kafka {KAFKA_VERSION} broker jars "
                f"(exit {proc.returncode}) with: {' '.join(cmd)}\n{output}"
            )
        (out_dir / _COMPLETE).write_text(KAFKA_VERSION)
        if not _jars_complete(out_dir):
            raise JarResolveError(
                f"Maven finished but kafka_{SCALA_VERSION}-{KAFKA_VERSION}.jar is not in {out_dir}.\n{output}"
            )
        if jar_dir.exists() and not _jars_complete(jar_dir):
            shutil.rmtree(jar_dir)
        try:
            out_dir.rename(jar_dir)
        except OSError:
            if not _jars_complete(jar_dir):  # a concurrent resolve did not win either
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return jar_dir


def storage_tool_class(jar_dir: Path) -> str:
    """The main class of Kafka's storage formatter in this release's jars."""
    for name in _STORAGE_TOOLS:
        entry = name.replace(".", "/") + ".class"
        for jar in sorted(jar_dir.glob("kafka*.jar")):
            with zipfile.ZipFile(jar) as zf:
                if entry in zf.namelist():
                    return name
    raise JarResolveError(f"No Kafka StorageTool class found in the jars under {jar_dir}.")


def new_cluster_id() -> str:
    """A KRaft cluster id: a random UUID in URL-safe base64 without padding.

    One in 32 starts with '-', which is why it is passed as ``--cluster-id=<id>``.
    """
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


def server_properties(port: int, controller_port: int, data_dir: Path) -> str:
    """The ``server.properties`` of a single-node combined-mode broker on 127.0.0.1.

    Replication factors are 1 because there is one node; automatic topic creation is off so
    that the registry, not a typo in a producer, decides which topics exist.
    """
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{LOCALHOST}:{controller_port}",
        "listeners": f"PLAINTEXT://{LOCALHOST}:{port},CONTROLLER://{LOCALHOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{LOCALHOST}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "8",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "8",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "auto.create.topics.enable": "false",
        "group.initial.rebalance.delay.ms": "0",
        "num.network.threads": "2",
        "num.io.threads": "4",
    }
    return "".join(f"{key}={value}\n" for key, value in props.items())


class KafkaBroker:
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
    ) -> None:
        self.home = Path(state_dir).resolve() / "kafka"
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

    def _recorded_jar_dir(self) -> Path:
        """The jar dir the last start used, if still complete, else ``<home>/lib``."""
        recorded = self._state().get("jar_dir")
        if recorded and _jars_complete(Path(recorded)):
            return Path(recorded)
        return self.home / "lib"

    def _state(self) -> dict[str, Any]:
        return read_json(self.state_path)

    @property
    def pid(self) -> int | None:
        """The pid of this instance's broker if it is running, else None."""
        pid = self._state().get("pid")
        return int(pid) if pid and pid_matches(int(pid), str(self.config_path)) else None

    @property
    def port(self) -> int | None:
        """The client (PLAINTEXT) port this instance last started on."""
        value = self._state().get("port")
        return int(value) if value else None

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
        cmd = self._java_command(
            java, storage_tool_class(self.jar_dir), *args, f"--cluster-id={new_cluster_id()}"
        )
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
        if proc.returncode != 0:
            raise BrokerStartError(
                f"Formatting the Kafka storage in {self.data_dir} failed "
                f"(exit {proc.returncode}):\n{last_lines(proc.stdout + proc.stderr)}"
            )

    def start(self, timeout: float = 60.0) -> dict[str, Any]:
        """Start the broker (or find it running) and wait until it answers metadata.

        Idempotent: a broker of this instance that is already running is waited for and
        reported, not started twice. Returns :meth:`status`.
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
            if not wait_until(self.is_ready, timeout, interval=0.5, pid=running):
                raise BrokerStartError(
                    f"The broker under {self.home} (pid {running}) runs but does not answer on "
                    f"{LOCALHOST}:{self.port}. Log {self.log_path}:\n{tail(self.log_path)}"
                )
            return self.status()

        java = check_java(self.java)
        resolve_jars(self.jar_dir, mvn=self.mvn)
        port, controller_port = self._choose_ports()
        self.home.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(server_properties(port, controller_port, self.data_dir))
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
                f"Last lines of {self.log_path}:\n{log}"
            )
        state["startup_seconds"] = round(time.monotonic() - started, 2)
        write_json(self.state_path, state)
        return self.status()

    def stop(self, timeout: float = 20.0) -> bool:
        """Stop the broker: SIGTERM, then SIGKILL after ``timeout``. True if one was running."""
        pid = self.pid
        state = self._state()
        if state.get("pid"):
            write_json(self.state_path, state | {"pid": None})
        return stop_pid(pid, timeout=timeout) if pid is not None else False

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
