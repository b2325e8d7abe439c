"""The container desired state, image content tags and the generated Compose file (no engine)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tradesignals_dagster.defs.checks import build_checks
from tradesignals_dagster.deploy.compose import (
    compose_diff,
    compose_document,
    compose_file_of,
    render_compose,
    service_drift,
)
from tradesignals_dagster.deploy.desired import desired_state
from tradesignals_dagster.deploy.errors import UnknownRuntimeError
from tradesignals_dagster.deploy.images import pipeline_image_ref, runtime_image_ref
from tradesignals_dagster.deploy.operations import runtime_for
from tradesignals_dagster.registry.loader import load_application
from tradesignals_dagster.registry.models import StreamingApplication
from tradesignals_dagster.settings import Settings

PROJECT = Path(__file__).resolve().parents[2]
BARS, INGEST = "option_trade_volume_bars", "option_trades_ingest"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the flagship registry, pipelines and project source (images hash the source)."""
    shutil.copytree(PROJECT / "registry", tmp_path / "registry")
    shutil.copytree(
        PROJECT / "pipelines", tmp_path / "pipelines", ignore=shutil.ignore_patterns("__pycache__")
    )
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(PROJECT / name, src / name)
    shutil.copytree(
        PROJECT / "tradesignals_dagster",
        src / "tradesignals_dagster",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return tmp_path


def settings_for(tree: Path, **extra: object) -> Settings:
    return Settings(
        registry=tree / "registry",
        pipelines_dir=tree / "pipelines",
        state_dir=tree / "state",
        bootstrap_servers="127.0.0.1:1",
        schema_registry_url="http://127.0.0.1:2",
        runtime="docker",
        image_source=tree / "src",
        **extra,  # type: ignore[arg-type]
    )


def load(tree: Path) -> StreamingApplication:
    return load_application(tree / "registry", tree / "pipelines")


def test_container_desired_state_has_no_host_paths_and_a_content_tag(tree: Path) -> None:
    settings = settings_for(tree)
    desired = desired_state(load(tree), BARS, settings)
    assert desired.image is not None and desired.image.startswith("tradesignals/option_trade_volume_bars:")
    assert desired.code_version == desired.image.rsplit(":", 1)[1]
    text = " ".join([*desired.command, *desired.env.values(), desired.workdir or ""])
    assert str(tree) not in text and "/work" not in text
    assert desired.env["TRADESIGNALS_REGISTRY"] == "/etc/tradesignals/registry"
    # the process runtime's state is untouched by this: host paths, host python
    process = desired_state(load(tree), BARS, settings_for(tree).model_copy(update={"runtime": "process"}))
    assert str(tree) in process.env["TRADESIGNALS_REGISTRY"]


def test_config_change_changes_the_version_but_not_the_image(tree: Path) -> None:
    settings = settings_for(tree)
    before = desired_state(load(tree), BARS, settings)
    (tree / "pipelines" / BARS / "config.yaml").write_text("bar_volume: 1234\n")
    after = desired_state(load(tree), BARS, settings)
    assert after.image == before.image
    assert after.config_hash != before.config_hash and after.version != before.version


def test_code_change_changes_the_image_of_that_pipeline_only(tree: Path) -> None:
    settings = settings_for(tree)
    app = load(tree)
    bars, ingest = pipeline_image_ref(app, BARS, settings), pipeline_image_ref(app, INGEST, settings)
    with (tree / "pipelines" / BARS / "app.py").open("a") as fh:
        fh.write("\n# changed\n")
    assert pipeline_image_ref(app, BARS, settings) != bars
    assert pipeline_image_ref(app, INGEST, settings) == ingest


def test_project_source_or_base_change_changes_every_image(tree: Path) -> None:
    settings = settings_for(tree)
    app = load(tree)
    refs = {k: pipeline_image_ref(app, k, settings) for k in (BARS, INGEST)}
    runtime = runtime_image_ref(settings.base_image, tree / "src")
    with (tree / "src" / "tradesignals_dagster" / "errors.py").open("a") as fh:
        fh.write("\n# changed\n")
    assert runtime_image_ref(settings.base_image, tree / "src") != runtime
    assert all(pipeline_image_ref(app, k, settings) != v for k, v in refs.items())
    other_base = settings_for(tree, base_image="python:3.11-slim")
    assert runtime_image_ref("python:3.11-slim", tree / "src") != runtime_image_ref(
        settings.base_image, tree / "src"
    )
    assert pipeline_image_ref(app, BARS, other_base) != pipeline_image_ref(app, BARS, settings)


def test_unchanged_inputs_give_the_same_tag(tree: Path) -> None:
    settings = settings_for(tree)
    assert desired_state(load(tree), BARS, settings) == desired_state(load(tree), BARS, settings)


def test_replicas_and_limits_come_from_the_docker_section(tree: Path) -> None:
    path = tree / "registry" / "pipelines.yaml"
    text = path.read_text().replace(
        "        image: tradesignals/option_trade_volume_bars:latest",
        "        image: tradesignals/option_trade_volume_bars:latest\n        cpus: 1.5\n        memory: 512m\n        replicas: 3",
    )
    path.write_text(text)
    desired = desired_state(load(tree), BARS, settings_for(tree))
    assert desired.replicas == 3 and desired.limits == {"cpus": "1.5", "memory": "512m"}
    service = compose_document(load(tree), settings_for(tree), base=tree)["services"][
        "option-trade-volume-bars"
    ]
    assert service["scale"] == 3 and service["cpus"] == 1.5 and service["mem_limit"] == "512m"


def test_an_unknown_runtime_is_a_usage_error(tree: Path) -> None:
    settings = settings_for(tree).model_copy(update={"runtime": "kubernetes"})
    with pytest.raises(
        UnknownRuntimeError, match=r"'kubernetes' is not a pipeline runtime.*process, docker"
    ) as info:
        runtime_for(settings)
    assert info.value.exit_code == 2
    with pytest.raises(UnknownRuntimeError):
        desired_state(load(tree), BARS, settings)


def test_compose_has_one_service_per_pipeline_and_no_secret_values(tree: Path) -> None:
    secret = "hunter2-not-in-compose"
    settings = settings_for(tree, sasl_password=secret, clickhouse_password=secret)
    text = render_compose(load(tree), settings, env="staging")
    assert secret not in text
    doc = yaml.safe_load(text)
    assert sorted(doc["services"]) == [
        "option-trade-time-bars",
        "option-trade-volume-bars",
        "option-trades-ingest",
        "volume-bar-direction-scoring",
    ]
    bars = doc["services"]["option-trade-volume-bars"]
    assert bars["image"] == desired_state(load(tree), BARS, settings).image
    assert bars["user"] == "65534:65534" and bars["read_only"] is True and bars["network_mode"] == "host"
    assert bars["restart"] == "unless-stopped" and bars["labels"]["io.tradesignals.environment"] == "staging"
    assert bars["environment"]["TRADESIGNALS_SASL_PASSWORD"] is None  # passed through, never written
    assert all(v.endswith(":ro") for v in bars["volumes"])


def test_compose_check_reports_a_stale_file(tree: Path) -> None:
    settings = settings_for(tree)
    target = tree / "docker-compose.yaml"
    target.write_text(render_compose(load(tree), settings))
    assert compose_diff(target, render_compose(load(tree), settings)) == []
    (tree / "pipelines" / BARS / "config.yaml").write_text("bar_volume: 4321\n")
    diff = compose_diff(target, render_compose(load(tree), settings))
    assert any(line.startswith("+") and "io.tradesignals.version" in line for line in diff)
    assert compose_diff(tree / "missing.yaml", "x")[0].startswith("cannot read")


def test_docker_compose_accepts_the_file(tree: Path) -> None:
    target = tree / "docker-compose.yaml"
    target.write_text(render_compose(load(tree), settings_for(tree)))
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose (Compose v1, apt-get install docker-compose) is needed for this test"
    done = subprocess.run([exe, "-f", str(target), "config", "-q"], capture_output=True, text=True, cwd=tree)
    assert done.returncode == 0, done.stderr


def test_service_drift_names_the_pipeline_whose_committed_service_is_stale(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(tree)
    target = compose_file_of(settings)
    assert target == tree / "docker-compose.yaml"
    monkeypatch.chdir(tree)  # as a user runs `tradesignals compose > docker-compose.yaml`
    target.write_text(render_compose(load(tree), settings))
    assert service_drift(load(tree), settings, BARS, target) == []
    (tree / "pipelines" / BARS / "config.yaml").write_text("bar_volume: 4321\n")
    monkeypatch.chdir(PROJECT)  # Dagster's working directory is not the project's: paths still match
    diff = service_drift(load(tree), settings, BARS, target)
    assert any(line.startswith("+") and "io.tradesignals.version" in line for line in diff), diff
    assert service_drift(load(tree), settings, INGEST, target) == [], "only the changed pipeline drifts"
    target.write_text("services: {}\n")
    assert "has no service 'option-trade-volume-bars'" in service_drift(load(tree), settings, BARS, target)[0]


def test_every_pipeline_asset_has_a_compose_check(tree: Path) -> None:
    checks = {(c.asset_key.to_user_string(), c.name) for d in build_checks(load(tree)) for c in d.check_specs}
    assert {(f"pipelines/{k}", "compose_service_current") for k in (BARS, INGEST)} <= checks


SCORING = "volume_bar_direction_scoring"


def test_a_model_reading_container_is_told_where_the_object_store_is_but_not_its_keys(tree: Path) -> None:
    settings = settings_for(
        tree, object_store_url="s3://models-bucket/prod", object_store_endpoint="http://127.0.0.1:9"
    )
    app = load(tree)
    scoring = desired_state(app, SCORING, settings)
    assert scoring.env["TRADESIGNALS_OBJECT_STORE_URL"] == "s3://models-bucket/prod"
    assert scoring.env["TRADESIGNALS_OBJECT_STORE_ENDPOINT"] == "http://127.0.0.1:9"
    assert not any(k.startswith("AWS_") for k in scoring.env), scoring.env
    # a pipeline that reads no model is not given the store
    assert "TRADESIGNALS_OBJECT_STORE_URL" not in desired_state(app, BARS, settings).env
    # a host directory cannot be read from a container: no URL that would point nowhere
    local = desired_state(app, SCORING, settings_for(tree, object_store_url=(tree / "store").as_uri()))
    assert "TRADESIGNALS_OBJECT_STORE_URL" not in local.env
    # compose passes the store's credentials through from the environment, for that service only
    services = compose_document(app, settings, base=tree)["services"]
    assert services[SCORING.replace("_", "-")]["environment"]["AWS_SECRET_ACCESS_KEY"] is None
    assert "AWS_SECRET_ACCESS_KEY" not in services[BARS.replace("_", "-")]["environment"]


def test_object_store_keys_reach_only_containers_that_read_models(tree: Path) -> None:
    from tradesignals_dagster.deploy.docker_support import container_environment, object_store_secrets

    keys = {"AWS_ACCESS_KEY_ID": "AKIA-test", "AWS_SECRET_ACCESS_KEY": "s3cr3t"}
    settings = settings_for(tree, object_store_url="s3://b/p")
    assert object_store_secrets(settings, {**keys, "HOME": "/root"}) == keys
    assert object_store_secrets(settings, {"HOME": "/root"}) == {}
    env = {"TRADESIGNALS_PIPELINE": SCORING}
    reading = container_environment(env, {}, keys, reads_models=True, port=9100, replica=0)
    assert reading["AWS_SECRET_ACCESS_KEY"] == "s3cr3t" and reading["TRADESIGNALS_METRICS_PORT"] == "9100"
    other = container_environment(env, {}, keys, reads_models=False, port=9101, replica=1)
    assert not any(k.startswith("AWS_") for k in other) and other["TRADESIGNALS_INSTANCE"] == "1"


def test_the_local_stacks_s3_keys_are_handed_to_model_reading_containers(tree: Path) -> None:
    import json

    from tradesignals_dagster.deploy.docker_support import object_store_secrets

    state = tree / "state"
    state.mkdir()
    creds = state / "s3-credentials.json"
    creds.write_text(json.dumps({"access_key": "local-ak", "secret_key": "local-sk"}))
    (state / "stack.json").write_text(json.dumps({"s3": {"credentials_file": str(creds)}}))
    got = object_store_secrets(settings_for(tree), {})
    assert got == {"AWS_ACCESS_KEY_ID": "local-ak", "AWS_SECRET_ACCESS_KEY": "local-sk"}
