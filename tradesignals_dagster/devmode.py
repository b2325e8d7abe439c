"""``tradesignals dev`` (``make dev``): the whole product on embedded defaults, one command.

Starts the local stack, materializes every asset of the registry through Dagster (which applies
the schemas and topics and deploys the pipelines, the same code path as the UI), then runs
``dg dev`` (what Dagster 1.13 recommends; ``dagster dev`` now prints that it is superseded) on
127.0.0.1 with a persistent instance under the state directory and the sensors on. Ctrl-C stops
Dagster, the pipelines and the stack, unless ``--keep-running``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg

from tradesignals_dagster.defs.build import build_definitions
from tradesignals_dagster.defs.keys import DATASETS_GROUP, MODELS_GROUP
from tradesignals_dagster.errors import TradesignalsError
from tradesignals_dagster.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INSTANCE_TEMPLATE = Path(__file__).resolve().parent / "dev_instance.yaml"
DEFINITIONS_MODULE = "tradesignals_dagster.definitions"


class DevError(TradesignalsError):
    """The dev environment could not be brought up."""


def dagster_env(settings: Settings, info: dict[str, str]) -> dict[str, str]:
    """Environment for Dagster processes: absolute paths, the stack's addresses, DAGSTER_HOME."""
    home = settings.state_dir.resolve() / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    if INSTANCE_TEMPLATE.is_file() and not (home / "dagster.yaml").is_file():
        shutil.copy(INSTANCE_TEMPLATE, home / "dagster.yaml")
    return {
        **os.environ,
        # dg compares the active venv with the project's; the one running us is the right one.
        "VIRTUAL_ENV": sys.prefix,
        "DAGSTER_HOME": str(home),
        "TRADESIGNALS_REGISTRY": str(settings.registry.resolve()),
        "TRADESIGNALS_PIPELINES_DIR": str(settings.pipelines_dir.resolve()),
        "TRADESIGNALS_STATE_DIR": str(settings.state_dir.resolve()),
        "TRADESIGNALS_BOOTSTRAP_SERVERS": info["bootstrap_servers"],
        "TRADESIGNALS_SCHEMA_REGISTRY_URL": info["schema_registry_url"],
    }


SCHEDULED_GROUPS = frozenset({DATASETS_GROUP, MODELS_GROUP})


def materialize_everything(settings: Settings, env: dict[str, str]) -> list[str]:
    """Materialize the streaming deployment (schemas, topics, pipelines, sinks, tables) into the
    persistent instance; returns the keys."""
    previous = dict(os.environ)
    os.environ.update(env)
    try:
        run_settings = Settings(
            registry=settings.registry.resolve(),
            pipelines_dir=settings.pipelines_dir.resolve(),
            state_dir=settings.state_dir.resolve(),
            bootstrap_servers=env["TRADESIGNALS_BOOTSTRAP_SERVERS"],
            schema_registry_url=env["TRADESIGNALS_SCHEMA_REGISTRY_URL"],
        )
        defs = build_definitions(run_settings)
        graph = defs.resolve_asset_graph()
        # The streaming deployment only: daily datasets and the models trained on them are made
        # by their schedules once data has accumulated (a fresh stack has none to train on), and
        # partitioned assets never run in one unpartitioned run.
        keys = [
            k
            for k in graph.get_all_asset_keys()
            if graph.get(k).is_materializable
            and not graph.get(k).is_partitioned
            and graph.get(k).group_name not in SCHEDULED_GROUPS
        ]
        job = defs.resolve_implicit_global_asset_job_def()
        with dg.DagsterInstance.get() as instance:
            result = job.execute_in_process(instance=instance, asset_selection=keys, raise_on_error=False)
        if not result.success:
            failures = [
                f"{e.step_key}: {e.event_specific_data.error.message.strip()}"  # type: ignore[union-attr]
                for e in result.all_events
                if e.is_step_failure
            ]
            raise DevError("materializing the registry failed:\n" + "\n".join(failures))
        return sorted(k.to_user_string() for k in keys)
    finally:
        os.environ.clear()
        os.environ.update(previous)


def dg_dev_command(port: int, host: str = "127.0.0.1") -> list[str]:
    """``dg dev`` for this project: as a ``dg`` project (code location ``tradesignals``, its
    component YAML checked first) when run from a checkout with ``[tool.dg]`` in pyproject.toml,
    otherwise straight at the definitions module."""
    dg_cli = str(Path(sys.executable).parent / "dg")
    pyproject = PROJECT_ROOT / "pyproject.toml"
    if pyproject.is_file() and "[tool.dg]" in pyproject.read_text(encoding="utf-8"):
        target = ["--target-path", str(PROJECT_ROOT)]
    else:
        target = ["-m", DEFINITIONS_MODULE]
    return [dg_cli, "dev", *target, "-h", host, "-p", str(port)]


def run_dev(settings: Settings, port: int = 3000, keep_running: bool = False, ui: bool = True) -> int:
    """Bring everything up, then run ``dg dev`` until interrupted."""
    from tradesignals_dagster.deploy.operations import runtime_for
    from tradesignals_dagster.stack.stack import stack_down, stack_up

    print("starting the local stack (Kafka, schema registry)...", flush=True)
    info = stack_up(settings)
    leave_up = keep_running or not ui  # --no-ui brings everything up and leaves it running
    try:
        kafka, registry = info["bootstrap_servers"], info["schema_registry_url"]
        print(f"  kafka {kafka}, schema registry {registry}", flush=True)
        env = dagster_env(settings, info)
        print("materializing schemas, topics, pipelines, ClickHouse tables and their sinks...", flush=True)
        for key in materialize_everything(settings, env):
            print(f"  {key}", flush=True)
        if not ui:
            return 0
        print(f"Dagster UI: http://127.0.0.1:{port}  (Ctrl-C stops everything)", flush=True)
        proc = subprocess.Popen(dg_dev_command(port), env=env)
        try:
            return proc.wait()
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
            return 0
    except BaseException:
        leave_up = keep_running  # a failed start leaves nothing running behind it
        raise
    finally:
        if not leave_up:
            runtime = runtime_for(settings)
            for status in runtime.list():
                runtime.stop(status.key)
            stack_down(settings)
