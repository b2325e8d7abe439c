"""Fixtures that run the real local stack (Kafka broker + schema registry) for integration tests.

Everything under ``tests/integration`` is marked ``integration``. The broker jars are cached
across runs in :func:`~tradesignals_dagster.stack.jars.shared_jar_cache`
(``$TRADESIGNALS_KAFKA_CACHE`` or ``~/.cache/tradesignals``); each session's broker and
registry get their own temporary state dir and free ports. A stack that cannot start fails
the tests that need it: nothing here skips.
"""

from __future__ import annotations

import signal
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import pytest

from tradesignals_dagster.settings import Settings
from tradesignals_dagster.stack.clickhouse import ClickHouseEndpointService
from tradesignals_dagster.stack.errors import StackError
from tradesignals_dagster.stack.jars import resolve_jars, shared_jar_cache
from tradesignals_dagster.stack.kafka_broker import KafkaBroker
from tradesignals_dagster.stack.kafka_cluster import KafkaCluster
from tradesignals_dagster.stack.s3 import S3ProxyService
from tradesignals_dagster.stack.stack import SchemaRegistryService, stack_down, stack_up

_HERE = Path(__file__).resolve().parent


def _interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt(f"pytest received {signal.Signals(signum).name}")


def pytest_configure(config: pytest.Config) -> None:
    """SIGTERM (``timeout``, CI cancelling a job) ends the run like Ctrl-C does: the session
    fixtures' teardown still stops the brokers and registries this session started."""
    signal.signal(signal.SIGTERM, _interrupt)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test collected from this directory as ``integration``."""
    for item in items:
        if _HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.integration)


@dataclass
class LocalStack:
    """A running local stack: where to reach it and a :class:`Settings` pointing at it."""

    bootstrap_servers: str
    schema_registry_url: str
    state_dir: Path
    settings: Settings
    info: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        """Dict-style access (``stack["bootstrap_servers"]``) for convenience."""
        return getattr(self, key)


def _fail(what: str, exc: Exception) -> NoReturn:
    pytest.fail(f"{what} could not start, so integration tests cannot run:\n{exc}", pytrace=False)


@pytest.fixture(scope="session")
def kafka_jar_dir() -> Path:
    """The broker's classpath, resolved with Maven once and shared by every run."""
    try:
        return resolve_jars(shared_jar_cache())
    except StackError as exc:
        _fail("The Kafka broker jars", exc)


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory, kafka_jar_dir: Path) -> Iterator[KafkaBroker]:
    """A started single-node broker on free ports, stopped at the end of the session."""
    state_dir = tmp_path_factory.mktemp("stack")
    broker = KafkaBroker(state_dir, jar_dir=kafka_jar_dir)
    try:
        broker.start()
    except StackError as exc:
        broker.stop()
        _fail("The Kafka broker", exc)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def stack(kafka_broker: KafkaBroker, kafka_jar_dir: Path) -> Iterator[LocalStack]:
    """The session broker plus a schema registry, recorded in ``<state_dir>/stack.json``.

    ``stack.settings`` is a :class:`Settings` whose state dir, bootstrap servers and schema
    registry URL point at this stack, for code under test that takes settings.
    """
    state_dir = kafka_broker.home.parent
    base = Settings(state_dir=state_dir)
    try:
        info = stack_up(base, kafka_port=kafka_broker.port, jar_dir=kafka_jar_dir)
    except StackError as exc:
        _fail("The local stack (schema registry)", exc)
    settings = Settings(
        state_dir=state_dir,
        bootstrap_servers=info["bootstrap_servers"],
        schema_registry_url=info["schema_registry_url"],
        clickhouse_url=info["clickhouse_url"],
    )
    try:
        yield LocalStack(
            bootstrap_servers=info["bootstrap_servers"],
            schema_registry_url=info["schema_registry_url"],
            state_dir=state_dir,
            settings=settings,
            info=info,
        )
    finally:
        stack_down(base)


@pytest.fixture
def topic_name() -> str:
    """A topic name no other test uses."""
    return f"test-{uuid.uuid4().hex[:12]}"


@dataclass
class ClickHouseEndpoint:
    """A local ClickHouse endpoint process: its URL, its credentials, and settings for it."""

    url: str
    user: str
    password: str
    service: ClickHouseEndpointService
    settings: Settings


@pytest.fixture(scope="session")
def clickhouse_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseEndpoint]:
    """The ClickHouse endpoint as a real subprocess on a free port, with a temporary database
    and a password, started once per session and ready (``/ping`` answered) when yielded."""
    state_dir = tmp_path_factory.mktemp("clickhouse")
    password = uuid.uuid4().hex
    service = ClickHouseEndpointService(state_dir, user="default", password=password)
    try:
        status = service.start(timeout=60.0)
    except StackError as exc:
        service.stop()
        _fail("The ClickHouse endpoint", exc)
    settings = Settings(state_dir=state_dir, clickhouse_url=status["url"], clickhouse_password=password)
    try:
        yield ClickHouseEndpoint(status["url"], "default", password, service, settings)
    finally:
        service.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3ProxyService]:
    """The local S3 API server (s3proxy, jars resolved once into the shared cache) on a free
    port with its own data dir and generated credentials, stopped at the end of the session."""
    service = S3ProxyService(tmp_path_factory.mktemp("s3"))
    try:
        service.start(timeout=120.0)
    except StackError as exc:
        service.stop()
        _fail("The local S3 server (s3proxy)", exc)
    try:
        yield service
    finally:
        service.stop()


class ClusterStack:
    """The three-broker stack as the pipeline helpers expect it, with handles for fault drills:
    its nodes (``cluster``), its schema registry process and, on the disk-full drill's cluster,
    the tmpfs that holds one node's log dir."""

    def __init__(
        self,
        info: dict[str, Any],
        cluster: KafkaCluster,
        registry: SchemaRegistryService,
        log_dir: Path | None = None,
    ) -> None:
        self.bootstrap_servers: str = info["bootstrap_servers"]
        self.schema_registry_url: str = info["schema_registry_url"]
        self.info = info
        self.cluster = cluster
        self.registry = registry
        self.log_dir = log_dir


@pytest.fixture(scope="session")
def cluster_stack(tmp_path_factory: pytest.TempPathFactory, kafka_jar_dir: Path) -> Iterator[ClusterStack]:
    state = tmp_path_factory.mktemp("cluster")
    settings = Settings(state_dir=state)
    info = stack_up(settings, jar_dir=kafka_jar_dir, brokers=3, timeout=180)
    try:
        yield ClusterStack(info, KafkaCluster(state, 3, jar_dir=kafka_jar_dir), SchemaRegistryService(state))
    finally:
        stack_down(settings)


TMPFS_NODE = 3
TMPFS_MIB = 128


def _umount(path: Path) -> None:
    """Unmount ``path``; lazily when something still holds it (never leave a mount behind)."""
    if subprocess.run(["umount", str(path)], capture_output=True, check=False).returncode != 0:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


@pytest.fixture
def tmpfs_cluster(tmp_path_factory: pytest.TempPathFactory, kafka_jar_dir: Path) -> Iterator[ClusterStack]:
    """A three-broker cluster of its own (with its own schema registry) whose node
    :data:`TMPFS_NODE` keeps its only log dir, KRaft metadata included, on a
    :data:`TMPFS_MIB` MiB tmpfs, for the disk-full drill. Mounting needs root (CI and the dev
    machine run as root); when it fails the drill fails and says why, it is never skipped."""
    state = tmp_path_factory.mktemp("tmpfs-cluster")
    cluster = KafkaCluster(state, 3, jar_dir=kafka_jar_dir)
    log_dir = cluster.node(TMPFS_NODE).data_dir
    log_dir.mkdir(parents=True)
    mount = ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_MIB}m,mode=0755", "tmpfs", str(log_dir)]
    try:
        proc = subprocess.run(mount, capture_output=True, text=True, check=False)
        why = (proc.stderr or proc.stdout).strip() or f"exit {proc.returncode}"
    except OSError as exc:
        proc, why = None, str(exc)
    if proc is None or proc.returncode != 0:
        pytest.fail(
            f"The disk-full drill needs a {TMPFS_MIB} MiB tmpfs as one broker's log.dirs, but "
            f"`{' '.join(mount)}` failed: {why}. Mounting needs root or CAP_SYS_ADMIN (CI and the "
            "dev machine run as root).",
            pytrace=False,
        )
    registry = SchemaRegistryService(state)
    try:
        try:
            cluster.start(timeout=180)
            registry.start(timeout=60)
        except StackError as exc:
            _fail("The disk-full drill's three-broker cluster", exc)
        info = {"bootstrap_servers": cluster.bootstrap_servers, "schema_registry_url": registry.url}
        yield ClusterStack(info, cluster, registry, log_dir=log_dir)
    finally:
        registry.stop()
        cluster.stop()
        _umount(log_dir)
