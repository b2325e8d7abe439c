"""``stack up / down / status``: the local Kafka broker, the schema registry service and the
ClickHouse endpoint (:mod:`tradesignals_dagster.stack.clickhouse`).

``stack_up`` starts both as detached processes under ``settings.state_dir`` and writes
``<state_dir>/stack.json``, which :class:`~tradesignals_dagster.settings.Settings` reads to
find them. Every function is idempotent and safe to call from the CLI, Dagster or tests.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tradesignals_dagster
from tradesignals_dagster.settings import STACK_FILE, Settings
from tradesignals_dagster.stack.clickhouse import ClickHouseEndpointService
from tradesignals_dagster.stack.errors import PortInUseError, RegistryStartError, StackError
from tradesignals_dagster.stack.jars import shared_jar_cache
from tradesignals_dagster.stack.kafka_broker import KafkaBroker
from tradesignals_dagster.stack.kafka_cluster import KafkaCluster, kafka_service
from tradesignals_dagster.stack.process import (
    LOCALHOST,
    file_lock,
    find_free_port,
    http_ok,
    port_in_use,
    read_json,
    start_detached,
    stop_pid,
    tail,
    wait_until,
    write_json,
)
from tradesignals_dagster.stack.s3 import S3ProxyService, s3_answers, stack_entries
from tradesignals_dagster.stack.service import LocalService

REGISTRY_MODULE = "tradesignals_dagster.stack.schema_registry"


class SchemaRegistryService(LocalService):
    """The project's Confluent-API schema registry run as a detached process.

    Its database, log and pid live under ``<state_dir>/schema-registry``. ``port`` of None
    means the port used last time if still free, else a free one.
    """

    def __init__(self, state_dir: Path, *, port: int | None = None, python: str | None = None) -> None:
        self.home = Path(state_dir).resolve() / "schema-registry"
        self.db_path = self.home / "registry.db"
        self.log_path = self.home / "registry.log"
        self.state_path = self.home / "registry.json"
        self.python = python or sys.executable
        self._want_port = port

    def identity(self) -> str:
        """The database path, unique to this instance."""
        return str(self.db_path)

    @property
    def url(self) -> str | None:
        """``http://127.0.0.1:<port>``, once started."""
        return f"http://{LOCALHOST}:{self.port}" if self.port else None

    def is_ready(self, timeout: float = 2.0) -> bool:
        """Whether ``GET /subjects`` answers 200."""
        url = self.url
        return url is not None and http_ok(f"{url}/subjects", timeout=timeout)

    def _choose_port(self) -> int:
        if self._want_port:
            if port_in_use(self._want_port):
                raise PortInUseError(self._want_port, "schema registry")
            return self._want_port
        recorded = self._state().get("port")
        if recorded and not port_in_use(int(recorded)):
            return int(recorded)
        return find_free_port()

    def start(self, timeout: float = 30.0) -> dict[str, Any]:
        """Start the registry (or find it running) and wait until it answers.

        Idempotent like :meth:`KafkaBroker.start`. Returns :meth:`status`.
        """
        running = self.pid
        if running is not None:
            if self._want_port and self._want_port != self.port:
                raise StackError(
                    f"The schema registry under {self.home} already runs (pid {running}) on "
                    f"port {self.port}, not {self._want_port}; stop it first to change ports."
                )
            if not wait_until(self.is_ready, timeout, interval=0.25, pid=running):
                raise RegistryStartError(
                    f"The schema registry (pid {running}) runs but {self.url}/subjects does "
                    f"not answer. Log {self.log_path}:\n{tail(self.log_path)}"
                )
            return self.status()

        port = self._choose_port()
        if importlib.util.find_spec(REGISTRY_MODULE) is None:
            raise RegistryStartError(
                f"The schema registry service ({REGISTRY_MODULE}) is not installed in "
                f"{self.python}; reinstall the tradesignals-dagster package."
            )
        self.home.mkdir(parents=True, exist_ok=True)
        if self.log_path.exists():
            self.log_path.replace(self.log_path.with_suffix(".log.1"))
        env = dict(os.environ)
        package_root = str(Path(tradesignals_dagster.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        argv = [self.python, "-m", REGISTRY_MODULE, "--host", LOCALHOST, "--port", str(port)]
        argv += ["--db", str(self.db_path)]
        started = time.monotonic()
        pid = start_detached(argv, self.log_path, cwd=self.home, env=env)
        state: dict[str, Any] = {"pid": pid, "port": port}
        write_json(self.state_path, state)
        if not wait_until(self.is_ready, timeout, interval=0.2, pid=pid):
            died = not stop_pid(pid, timeout=10.0)
            why = "its process exited" if died else f"no answer within {timeout:.0f}s"
            raise RegistryStartError(
                f"The schema registry failed to start ({why}): GET {self.url}/subjects did not "
                f"answer 200. Last lines of {self.log_path}:\n{tail(self.log_path)}"
            )
        state["startup_seconds"] = round(time.monotonic() - started, 2)
        write_json(self.state_path, state)
        return self.status()

    def status(self) -> dict[str, Any]:
        """Whether the registry runs and answers, with its pid, port, URL, log and db."""
        pid = self.pid
        return {
            "running": pid is not None,
            "ready": pid is not None and self.is_ready(),
            "pid": pid,
            "port": self.port,
            "url": self.url,
            "log": str(self.log_path),
            "db": str(self.db_path),
            "startup_seconds": self._state().get("startup_seconds"),
        }


def _jar_dir(jar_dir: Path | None) -> Path | None:
    """The explicit jar dir, else the per-version cache shared with every other checkout."""
    return jar_dir if jar_dir is not None else shared_jar_cache()


def _stack_file(settings: Settings) -> Path:
    return Path(settings.state_dir).resolve() / STACK_FILE


def _stack_info(
    state_dir: Path, kafka: dict[str, Any], registry: dict[str, Any], clickhouse: dict[str, Any]
) -> dict[str, Any]:
    """The content of ``stack.json`` from the three components' status."""
    return {
        "bootstrap_servers": kafka["bootstrap_servers"],
        "schema_registry_url": registry["url"],
        "clickhouse_url": clickhouse["url"],
        "state_dir": str(state_dir),
        "kafka": {k: kafka[k] for k in ("pid", "port", "controller_port", "version", "log")}
        | {"data_dir": kafka["data_dir"], "brokers": kafka.get("brokers", 1)},
        "schema_registry": {k: registry[k] for k in ("pid", "port", "url", "log", "db")},
        "clickhouse": {k: clickhouse[k] for k in ("pid", "port", "url", "log", "data_dir")},
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _answers(
    info: dict[str, Any],
    broker: KafkaBroker | KafkaCluster,
    registry: SchemaRegistryService,
    clickhouse: ClickHouseEndpointService,
) -> bool:
    """Whether ``stack.json`` describes the running broker, registry and ClickHouse endpoint."""
    kafka = info.get("kafka") or {}
    reg = info.get("schema_registry") or {}
    ch = info.get("clickhouse") or {}
    return (
        clickhouse.pid is not None
        and clickhouse.pid == ch.get("pid")
        and info.get("clickhouse_url") == clickhouse.url
        and clickhouse.is_ready()
        and broker.pid is not None
        and broker.pid == kafka.get("pid")
        and registry.pid is not None
        and registry.pid == reg.get("pid")
        and info.get("bootstrap_servers") == broker.bootstrap_servers
        and info.get("schema_registry_url") == registry.url
        and broker.is_ready()
        and registry.is_ready()
    )


def stack_up(
    settings: Settings,
    kafka_port: int | None = None,
    registry_port: int | None = None,
    *,
    jar_dir: Path | None = None,
    timeout: float = 60.0,
    clickhouse_port: int | None = None,
    brokers: int | None = None,
) -> dict[str, Any]:
    """Start the local Kafka broker, schema registry and ClickHouse endpoint; record them in
    ``stack.json``.

    Idempotent: when ``stack.json`` describes a running stack that answers, it is returned
    unchanged; a component that is down is started again. Ports of None reuse the previous
    ports when free, else free ones. ``jar_dir`` is where the broker's jars are cached
    (default: ``$TRADESIGNALS_KAFKA_CACHE`` if set, else ``<state_dir>/kafka/lib``). If the
    registry fails after this call started the broker, the broker is stopped again.
    """
    state_dir = Path(settings.state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    broker = kafka_service(state_dir, brokers, port=kafka_port, jar_dir=_jar_dir(jar_dir))
    registry = SchemaRegistryService(state_dir, port=registry_port)
    password = settings.clickhouse_password
    clickhouse = ClickHouseEndpointService(
        state_dir,
        port=clickhouse_port,
        user=settings.clickhouse_user,
        password=password.get_secret_value() if password else None,
    )
    with file_lock(state_dir / "stack.lock"):
        info = read_json(_stack_file(settings))
        ports_match = (
            kafka_port in (None, broker.port)
            and registry_port in (None, registry.port)
            and clickhouse_port in (None, clickhouse.port)
        )
        s3 = S3ProxyService(state_dir)
        if info and ports_match and _answers(info, broker, registry, clickhouse) and s3_answers(info, s3):
            return info
        broker_was_running = broker.pid is not None
        owned = {
            broker.port: broker_was_running,
            registry.port: registry.pid is not None,
            clickhouse.port: clickhouse.pid is not None,
        }
        for port, what in (
            (kafka_port, "Kafka broker listener"),
            (registry_port, "schema registry"),
            (clickhouse_port, "ClickHouse endpoint"),
        ):
            if port and not owned.get(port) and port_in_use(port):
                raise PortInUseError(port, what)
        kafka = broker.start(timeout=timeout)
        try:
            reg = registry.start(timeout=min(timeout, 30.0))
            ch = clickhouse.start(timeout=timeout)
            s3_status = s3.start(timeout=max(timeout, 90.0))
        except Exception:
            if not broker_was_running:
                broker.stop()
            raise
        info = _stack_info(state_dir, kafka, reg, ch) | stack_entries(s3_status)
        write_json(_stack_file(settings), info)
        return info


def stack_down(settings: Settings, timeout: float = 20.0) -> dict[str, bool]:
    """Stop the schema registry and the broker and remove ``stack.json``.

    Data (topics, registered schemas) stays under the state dir for the next ``stack_up``.
    Returns which components were running and have been stopped.
    """
    state_dir = Path(settings.state_dir).resolve()
    with file_lock(state_dir / "stack.lock"):
        stopped = {
            "clickhouse": ClickHouseEndpointService(state_dir).stop(timeout=timeout),
            "schema_registry": SchemaRegistryService(state_dir).stop(timeout=timeout),
            "s3": S3ProxyService(state_dir).stop(timeout=timeout),
            "kafka": any([KafkaBroker(state_dir).stop(timeout=timeout), KafkaCluster.stop_any(state_dir)]),
        }
        _stack_file(settings).unlink(missing_ok=True)
        return stopped


def stack_status(settings: Settings) -> dict[str, Any]:
    """Whether the local broker and schema registry run and answer, with their details."""
    state_dir = Path(settings.state_dir).resolve()
    kafka = kafka_service(state_dir).status()
    registry = SchemaRegistryService(state_dir).status()
    clickhouse = ClickHouseEndpointService(state_dir).status()
    s3 = S3ProxyService(state_dir).status()
    path = _stack_file(settings)
    return {
        "running": bool(kafka["ready"] and registry["ready"] and clickhouse["ready"] and s3["ready"]),
        "s3": s3,
        "object_store_url": s3["object_store_url"] if s3["running"] else None,
        "state_dir": str(state_dir),
        "stack_file": str(path) if path.is_file() else None,
        "bootstrap_servers": kafka["bootstrap_servers"],
        "schema_registry_url": registry["url"],
        "clickhouse_url": clickhouse["url"],
        "kafka": kafka,
        "schema_registry": registry,
        "clickhouse": clickhouse,
    }
