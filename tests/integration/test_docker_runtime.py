"""The docker runtime against a real Docker engine and the session's real broker.

The flagship pair (synthetic ingest -> trades -> volume bars) runs as containers built offline by
:mod:`tradesignals_dagster.deploy.images`: bars flow; a config change and a code (image) change
each redeploy; a killed container is reported crashed and brought back; stop drains and exits 0.
The engine is the one ``DOCKER_HOST`` names (``scripts/dockerd.sh`` starts a private one; ``.ci/run``
does it for ``make test``). No engine: the tests fail, saying so. Nothing is skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_pipelines_support import PROJECT, PipelineEnv, end_offsets, wait_for, write_env

from tradesignals_dagster.control.apply import ControlPlane
from tradesignals_dagster.deploy.docker import L_PIPELINE, L_VERSION, DockerRuntime, docker_client
from tradesignals_dagster.deploy.errors import DeployError
from tradesignals_dagster.deploy.operations import deploy_pipeline, runtime_for
from tradesignals_dagster.errors import TradesignalsError
from tradesignals_dagster.settings import Settings


@pytest.fixture(scope="module")
def engine() -> Any:
    """A Docker client that answered, or a failure that says how to get one."""
    try:
        return docker_client()
    except TradesignalsError as exc:
        pytest.fail(f"the docker runtime tests need a Docker engine: {exc}", pytrace=False)


@pytest.fixture(scope="module")
def source_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project's source, so images stay the same while others edit the checkout."""
    root = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(PROJECT / name, root / name)
    shutil.copytree(
        PROJECT / "tradesignals_dagster",
        root / "tradesignals_dagster",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return root


@pytest.fixture
def world_readable_root() -> Iterator[Path]:
    """A directory containers (uid 65534) can read: pytest's tmp_path is private to root."""
    root = Path(tempfile.mkdtemp(prefix="ts-docker-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def docker_settings(env: PipelineEnv, password: str, source: Path) -> Settings:
    """The env's settings with the docker runtime and a secret that must never leak."""
    return Settings(
        registry=env.settings.registry,
        pipelines_dir=env.settings.pipelines_dir,
        state_dir=env.settings.state_dir,
        bootstrap_servers=env.settings.bootstrap_servers,
        schema_registry_url=env.settings.schema_registry_url,
        clickhouse_password=password,
        runtime="docker",
        image_source=source,
    )


def produced(env: PipelineEnv, topic: str) -> int:
    return sum(end_offsets(env, topic).values())


def test_flagship_pipelines_as_containers(
    engine: Any, source_snapshot: Path, world_readable_root: Path, stack: Any
) -> None:
    env = write_env(
        world_readable_root / "env",
        stack,
        ingest_input={
            "type": "synthetic",
            "additional_metadata": {"symbols": "10", "seed": "3", "rate": "2000"},
        },
        bars_config={"bar_volume": 500, "runtime": {"checkpoint_interval_s": 1}},
    )
    password = f"pw-{uuid.uuid4().hex}"
    settings = docker_settings(env, password, source_snapshot)
    runtime = runtime_for(settings)
    assert isinstance(runtime, DockerRuntime)
    control = ControlPlane.from_settings(settings)
    try:
        for key in (env.ingest, env.bars_pipeline):
            desired, status = deploy_pipeline(env.app, key, settings, control, runtime)
            assert status.state == "running", status.detail
            assert desired.image and desired.image.endswith(desired.code_version)
            assert not any(str(world_readable_root) in v for v in desired.env.values()), desired.env
        wait_for(lambda: produced(env, env.bars) > 5, 90, what="bars from the containerised pipeline")
        metrics = wait_for(lambda: runtime.metrics(env.bars_pipeline) or None, 30, what="metrics")
        assert metrics["records_in_total"] > 0

        (bars,) = runtime.containers(env.bars_pipeline)
        assert bars.attrs["Config"]["User"] == "65534:65534"
        assert bars.attrs["HostConfig"]["ReadonlyRootfs"] is True
        assert bars.attrs["HostConfig"]["NetworkMode"] == "host"
        assert bars.labels[L_PIPELINE] == env.bars_pipeline
        assert f"TRADESIGNALS_CLICKHOUSE_PASSWORD={password}" in bars.attrs["Config"]["Env"]
        assert password not in str(bars.labels)
        assert password not in (settings.state_dir / "containers" / f"{env.bars_pipeline}.json").read_text()

        # unchanged: nothing restarts
        _, same = deploy_pipeline(env.app, env.bars_pipeline, settings, control, runtime)
        assert same.extra["action"] == "unchanged" and same.runtime_id == bars.short_id

        # a config change: a new container on the same image
        (env.settings.pipelines_dir / env.bars_pipeline / "config.yaml").write_text("bar_volume: 900\n")
        app = env.reload()
        desired, changed = deploy_pipeline(app, env.bars_pipeline, settings, control, runtime)
        assert changed.extra["action"] == "restarted" and changed.runtime_id != bars.short_id
        assert changed.extra["image"] == bars.labels["io.tradesignals.image"]
        (after_config,) = runtime.containers(env.bars_pipeline)
        assert after_config.labels[L_VERSION] == desired.version != bars.labels[L_VERSION]
        before = produced(env, env.bars)
        wait_for(lambda: produced(env, env.bars) > before, 60, what="bars after the config change")

        # a code change: a new image tag, built on demand, and a new container running it
        app_py = env.settings.pipelines_dir / env.bars_pipeline / "app.py"
        app_py.write_text(app_py.read_text() + "\n# changed by the test\n")
        desired, rebuilt = deploy_pipeline(app, env.bars_pipeline, settings, control, runtime)
        assert rebuilt.extra["image"] == desired.image != after_config.labels["io.tradesignals.image"]
        (after_image,) = runtime.containers(env.bars_pipeline)
        assert after_image.attrs["Config"]["Image"] == desired.image

        # killed: crashed with the exit code and log tail, then brought back by a deploy
        after_image.kill()
        crashed = wait_for(
            lambda: (s := runtime.status(env.bars_pipeline)).state == "crashed" and s, 30, what="crash"
        )
        assert crashed.exit_code == 137 and "SIGKILL" in crashed.detail
        _, back = deploy_pipeline(app, env.bars_pipeline, settings, control, runtime)
        assert back.state == "running" and back.restarts == crashed.restarts + 1
        before = produced(env, env.bars)
        wait_for(lambda: produced(env, env.bars) > before, 60, what="bars after the restart")
    finally:
        stopped = {k: runtime.stop(k, timeout=60) for k in (env.ingest, env.bars_pipeline)}
    assert stopped == {env.ingest: True, env.bars_pipeline: True}
    for key in (env.ingest, env.bars_pipeline):
        status = runtime.status(key)
        assert status.state == "stopped"
        (container,) = runtime.containers(key)
        assert container.attrs["State"]["ExitCode"] == 0, runtime.logs(key, 30)  # SIGTERM drained


def test_a_pipeline_that_cannot_start_is_reported_and_nothing_else_changes(
    engine: Any, source_snapshot: Path, world_readable_root: Path, stack: Any
) -> None:
    env = write_env(world_readable_root / "env", stack, bars_config={"bar_volume": -5})
    settings = docker_settings(env, "unused", source_snapshot)
    runtime = runtime_for(settings)
    with pytest.raises(DeployError, match=r"(?s)exited during start-up with 2.*bar_volume"):
        deploy_pipeline(env.app, env.bars_pipeline, settings, ControlPlane.from_settings(settings), runtime)
    assert runtime.status(env.bars_pipeline).state == "crashed"
    runtime.stop(env.bars_pipeline)


def test_a_daemon_that_is_down_is_one_clear_error(world_readable_root: Path) -> None:
    saved = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = f"unix://{world_readable_root}/nothing.sock"
    try:
        with pytest.raises(
            TradesignalsError, match=r"the Docker engine does not answer.*scripts/dockerd\.sh"
        ):
            docker_client()
    finally:
        if saved is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = saved


def test_the_scoring_pipeline_as_a_container_reads_the_promoted_model_from_s3(
    engine: Any,
    source_snapshot: Path,
    world_readable_root: Path,
    stack: Any,
    s3_server: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The model lives on the S3 API server; the container gets the store's URL in its desired
    state and the keys only as secrets, loads the promoted version and scores live bars."""
    from datetime import date

    import pyarrow.parquet as pq
    from test_model_redeploy import BARS, SIGNALS, _produce_bars, _serde, _signals, signals_consumer
    from test_models import DATASET, MODEL, SCORING, _day_bars, _materialize

    from tradesignals_dagster.datasets.store import object_store
    from tradesignals_dagster.defs.resources import TradesignalsResource
    from tradesignals_dagster.ml.store import ModelStore
    from tradesignals_dagster.registry import load_application
    from tradesignals_dagster.stack.s3 import BUCKET

    root = world_readable_root
    shutil.copytree(PROJECT / "registry", root / "registry")
    shutil.copytree(PROJECT / "pipelines", root / "pipelines", ignore=shutil.ignore_patterns("__pycache__"))
    creds = s3_server.credentials()
    env = {
        "TRADESIGNALS_OBJECT_STORE_URL": f"s3://{BUCKET}/models-{uuid.uuid4().hex[:8]}",
        "TRADESIGNALS_OBJECT_STORE_ENDPOINT": str(s3_server.endpoint),
        "TRADESIGNALS_BOOTSTRAP_SERVERS": stack.bootstrap_servers,
        "TRADESIGNALS_SCHEMA_REGISTRY_URL": stack.schema_registry_url,
        "AWS_ACCESS_KEY_ID": creds["access_key"],
        "AWS_SECRET_ACCESS_KEY": creds["secret_key"],
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings(
        registry=root / "registry",
        pipelines_dir=root / "pipelines",
        state_dir=root / "state",
        runtime="docker",
        image_source=source_snapshot,
    )
    store = object_store(settings)
    for k in range(3):
        day = date(2026, 3, 1 + k)
        pq.write_table(
            _day_bars(day, learnable=True, seed=1 + k),
            store.path(DATASET, f"dt={day.isoformat()}", "part-00000.parquet"),
            filesystem=store.filesystem,
        )
    app = load_application(settings.registry, settings.pipelines_dir)
    resource = TradesignalsResource(
        registry=str(settings.registry),
        pipelines_dir=str(settings.pipelines_dir),
        state_dir=str(settings.state_dir),
    )
    assert _materialize({"app": app, "resource": resource}).success
    version = ModelStore(store, MODEL).current()
    assert version is not None

    runtime = runtime_for(settings)
    assert isinstance(runtime, DockerRuntime)
    try:
        desired, status = deploy_pipeline(
            app, SCORING, settings, ControlPlane.from_settings(settings), runtime
        )
        assert status.state == "running", status.detail
        assert desired.env["TRADESIGNALS_MODEL_VERSION"] == version
        assert desired.env["TRADESIGNALS_OBJECT_STORE_URL"] == env["TRADESIGNALS_OBJECT_STORE_URL"]
        assert creds["secret_key"] not in json.dumps(desired.env)
        (container,) = runtime.containers(SCORING)
        assert f"AWS_SECRET_ACCESS_KEY={creds['secret_key']}" in container.attrs["Config"]["Env"]
        assert creds["secret_key"] not in str(container.labels)
        assert creds["secret_key"] not in (settings.state_dir / "containers" / f"{SCORING}.json").read_text()

        symbol = f"D{uuid.uuid4().hex[:10].upper()}"
        bars_serde, signals_serde = _serde(settings, app, BARS), _serde(settings, app, SIGNALS)
        consumer = signals_consumer(settings)
        try:
            _produce_bars(settings, bars_serde, symbol, 0, 25)
            seen: list[dict[str, Any]] = []
            _signals(consumer, signals_serde, symbol, 25, seen)
        finally:
            consumer.close()
        assert [s["sequence"] for s in seen] == list(range(25))
        assert {s["model_version"] for s in seen} == {version}
    finally:
        runtime.stop(SCORING)
