"""The docker runtime: each pipeline replica a container, through the Docker Engine API.

Containers run on the host network as uid 65534 with a read-only root file system (state on a
``/tmp`` tmpfs), the registry and pipelines directory mounted read-only at the fixed paths of
:mod:`tradesignals_dagster.deploy.container`, and labels saying which pipeline, replica and desired
version they are (never a secret). Secrets (SASL, schema-registry and ClickHouse credentials) are
passed as environment when a container is created and are written nowhere else.

Docker's restart policy is off: like processes, a container that dies is reported *crashed* (exit
code, OOM flag and log tail) and the health sensor brings it back with backoff. ``stop`` gives
each container its SIGTERM drain (``stop_timeout``, longer than a checkpoint) before Docker kills
it; stopped containers are kept (their logs stay readable) and removed by the next deploy.

The runtime's own bookkeeping - intent (running or stopped on purpose), start counts and crash
history - is one JSON file per pipeline under ``<state_dir>/containers/``.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from tradesignals_dagster.deploy.container import CONTAINER_PIPELINES, CONTAINER_REGISTRY
from tradesignals_dagster.deploy.docker_support import (
    container_environment,
    describe_container_exit,
    docker_client,
    free_port,
    merge_metrics,
    object_store_secrets,
    scrape,
    secret_env,
)
from tradesignals_dagster.deploy.errors import DeployError, PipelineStartError, UnknownPipelineError
from tradesignals_dagster.deploy.runtime import DesiredState, RuntimeStatus
from tradesignals_dagster.ml.deploy import VERSION_ENV
from tradesignals_dagster.settings import Settings
from tradesignals_dagster.stack.process import file_lock, read_json, write_json

LABEL = "io.tradesignals"
L_PIPELINE, L_VERSION, L_REPLICA = f"{LABEL}.pipeline", f"{LABEL}.version", f"{LABEL}.replica"
L_REPLICAS, L_METRICS, L_DEPLOYMENT = f"{LABEL}.replicas", f"{LABEL}.metrics-port", f"{LABEL}.deployment"
L_CONFIG, L_CODE, L_IMAGE = f"{LABEL}.config-hash", f"{LABEL}.code-version", f"{LABEL}.image"
CONTAINER_USER = "65534:65534"
MAX_CRASHES = 50
Builder = Callable[[DesiredState], None]


class DockerRuntime:
    """Runs pipelines as containers; see the module doc."""

    name = "docker"

    def __init__(
        self,
        client_factory: Callable[[], Any],
        state_dir: Path,
        registry_dir: Path,
        pipelines_dir: Path,
        *,
        secrets: Mapping[str, str] | None = None,
        store_secrets: Mapping[str, str] | None = None,
        builder: Builder | None = None,
        startup_wait: float = 30.0,
        stop_timeout: float = 60.0,
    ) -> None:
        self._client_factory = client_factory
        self._client: Any = None
        self.root = Path(state_dir).resolve() / "containers"
        self.registry_dir = Path(registry_dir).resolve()
        self.pipelines_dir = Path(pipelines_dir).resolve()
        self.secrets = dict(secrets or {})
        self.store_secrets = dict(store_secrets or {})
        self.builder = builder
        self.startup_wait = startup_wait
        self.stop_timeout = stop_timeout

    @classmethod
    def from_settings(
        cls, settings: Settings, progress: Callable[[str], None] | None = None
    ) -> DockerRuntime:
        """The runtime for ``settings``: images built on demand, secrets from the settings."""

        def build(desired: DesiredState) -> None:
            from tradesignals_dagster.deploy.images import build_pipeline_image
            from tradesignals_dagster.registry.application import load_app

            build_pipeline_image(runtime.client, load_app(settings), desired.key, settings, progress or _log)

        runtime = cls(
            docker_client,
            settings.state_dir,
            settings.registry if settings.registry.is_dir() else settings.registry.parent,
            settings.pipelines_dir,
            secrets=secret_env(settings),
            store_secrets=object_store_secrets(settings, os.environ),
            builder=build,
        )
        return runtime

    @property
    def client(self) -> Any:
        """The engine client, connected on first use (a daemon that is down fails here)."""
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    # -- bookkeeping ---------------------------------------------------------------------------

    def _state_path(self, key: str) -> Path:
        if not key or not all(c.isalnum() or c in "_.-" for c in key):
            raise UnknownPipelineError(f"'{key}' is not a valid pipeline id")
        return self.root / f"{key}.json"

    def containers(self, key: str | None = None) -> list[Any]:
        """Containers of pipeline ``key`` (every pipeline's if None), running or not, by replica."""
        import docker.errors

        label = f"{L_PIPELINE}={key}" if key else L_PIPELINE
        try:
            found = self.client.containers.list(all=True, filters={"label": label})
        except docker.errors.APIError as exc:
            raise DeployError(f"cannot list containers: {exc.explanation or exc}") from exc
        return sorted(found, key=lambda c: (c.labels.get(L_DEPLOYMENT, ""), int(c.labels.get(L_REPLICA, 0))))

    def _record_crashes(self, state: dict[str, Any], dead: list[Any]) -> bool:
        """Add each dead container of the current deployment to the crash history, once."""
        crashes = state.setdefault("crashes", [])
        seen = {c.get("container") for c in crashes}
        added = False
        for c in dead:
            if c.labels.get(L_DEPLOYMENT) != state.get("deployment") or c.id in seen:
                continue
            attrs = c.attrs.get("State") or {}
            crashes.append(
                {
                    "at": time.time(),
                    "exit_code": attrs.get("ExitCode"),
                    "container": c.id,
                    "detail": describe_container_exit(c.attrs),
                }
            )
            state["last_exit_code"] = attrs.get("ExitCode")
            added = True
        del crashes[:-MAX_CRASHES]
        return added

    # -- the interface -------------------------------------------------------------------------

    def deploy(self, desired: DesiredState, force: bool = False) -> RuntimeStatus:
        """Start ``desired``'s replicas, replace them when its version differs (or ``force``).

        The image is built first when missing; a failed build (or a missing base image, or a
        daemon that is down) raises before anything running is touched.
        """
        key = desired.key
        path = self._state_path(key)
        with file_lock(path.with_suffix(".lock")):
            state = read_json(path)
            existing = self.containers(key)
            running = [c for c in existing if c.status == "running"]
            current = len(running) == desired.replicas == len(existing) and all(
                c.labels.get(L_VERSION) == desired.version for c in running
            )
            if current and not force and state.get("intent") == "running":
                return self._status(key, state, existing, action="unchanged")
            if state.get("intent") == "running" and self._record_crashes(
                state, [c for c in existing if c.status != "running"]
            ):
                write_json(path, state)
            self._ensure_image(desired)
            self._remove(existing, self.stop_timeout)
            deployment = uuid.uuid4().hex[:10]
            starts = int(state.get("starts", 0))
            state.update(
                key=key, intent="running", deployment=deployment, version=desired.version,
                image=desired.image, replicas=desired.replicas, started_at=time.time(), stopped_at=None,
                starts=starts + 1, restarts=int(state.get("restarts", 0)) + (1 if starts else 0),
            )  # fmt: skip
            write_json(path, state)
            started = [self._create(desired, deployment, i) for i in range(desired.replicas)]
            self._check_started(key, state, started)
            return self._status(
                key, state, self.containers(key), action="restarted" if running else "started"
            )

    def _ensure_image(self, desired: DesiredState) -> None:
        from tradesignals_dagster.deploy.images import image_exists

        if not desired.image:
            raise DeployError(
                f"pipeline '{desired.key}': the docker runtime needs an image in its desired state"
            )
        if image_exists(self.client, desired.image):
            return
        if self.builder is None:
            raise DeployError(
                f"image {desired.image} is not built: run `tradesignals images build {desired.key}`"
            )
        self.builder(desired)

    def _create(self, desired: DesiredState, deployment: str, replica: int) -> Any:
        """Create and start one replica's container."""
        import docker.errors
        from docker.types import LogConfig, Mount

        api = self.client.api
        port = free_port()
        labels = {
            L_PIPELINE: desired.key, L_VERSION: desired.version, L_REPLICA: str(replica),
            L_REPLICAS: str(desired.replicas), L_METRICS: str(port), L_DEPLOYMENT: deployment,
            L_CONFIG: desired.config_hash, L_CODE: desired.code_version, L_IMAGE: desired.image or "",
        }  # fmt: skip
        env = container_environment(
            desired.env,
            self.secrets,
            self.store_secrets,
            reads_models=VERSION_ENV in desired.env or "TRADESIGNALS_OBJECT_STORE_URL" in desired.env,
            port=port,
            replica=replica,
        )
        limits: dict[str, Any] = {}
        if "cpus" in desired.limits:
            limits["nano_cpus"] = int(float(desired.limits["cpus"]) * 1e9)
        if "memory" in desired.limits:
            limits["mem_limit"] = desired.limits["memory"]
        host_config = api.create_host_config(
            network_mode="host",
            read_only=True,
            tmpfs={"/tmp": "rw,nosuid,nodev,size=256m"},
            mounts=[
                Mount(CONTAINER_REGISTRY, str(self.registry_dir), type="bind", read_only=True),
                Mount(CONTAINER_PIPELINES, str(self.pipelines_dir), type="bind", read_only=True),
            ],
            restart_policy={"Name": "no"},
            log_config=LogConfig(type="json-file", config={"max-size": "50m", "max-file": "3"}),
            **limits,
        )
        try:
            created = api.create_container(
                desired.image,
                command=list(desired.command),
                name=f"ts-{desired.key}-{replica}-{deployment}",
                environment=env,
                labels=labels,
                working_dir=desired.workdir,
                user=CONTAINER_USER,
                stop_signal="SIGTERM",
                stop_timeout=int(self.stop_timeout),
                host_config=host_config,
            )
            api.start(created["Id"])
        except docker.errors.APIError as exc:
            raise DeployError(
                f"pipeline '{desired.key}': cannot start a container: {exc.explanation or exc}"
            ) from exc
        return self.client.containers.get(created["Id"])

    def _check_started(self, key: str, state: dict[str, Any], started: list[Any]) -> None:
        """Wait until every replica's metrics endpoint answers (it got through start-up) or
        ``startup_wait`` passes; raise :class:`PipelineStartError` when one exits meanwhile."""
        deadline = time.monotonic() + self.startup_wait
        pending = list(started)
        while pending and time.monotonic() < deadline:
            for c in list(pending):
                c.reload()
                if c.status in ("exited", "dead"):
                    self._record_crashes(state, [c])
                    write_json(self._state_path(key), state)
                    code = (c.attrs.get("State") or {}).get("ExitCode")
                    raise PipelineStartError(key, code, self._container_logs(c, 30), f"docker logs {c.name}")
                port = c.labels.get(L_METRICS, "")
                if port.isdigit() and scrape(int(port), timeout_s=0.5):
                    pending.remove(c)
            time.sleep(0.2)

    def _remove(self, containers: list[Any], timeout: float) -> None:
        """Stop (SIGTERM, then SIGKILL after ``timeout``) and remove ``containers``."""
        import docker.errors

        for c in containers:
            try:
                if c.status == "running":
                    c.stop(timeout=int(timeout))
                c.remove(force=True)
            except docker.errors.NotFound:
                continue
            except docker.errors.APIError as exc:
                raise DeployError(f"cannot stop container {c.name}: {exc.explanation or exc}") from exc

    def stop(self, key: str, timeout: float | None = None) -> bool:
        """Stop every replica gracefully (kept for their logs); False if none was running."""
        import docker.errors

        path = self._state_path(key)
        with file_lock(path.with_suffix(".lock")):
            state = read_json(path)
            existing = self.containers(key)
            running = [c for c in existing if c.status == "running"]
            if state.get("intent") == "running":
                self._record_crashes(state, [c for c in existing if c.status != "running"])
            if state:
                state.update(intent="stopped", stopped_at=time.time())
                write_json(path, state)
            for c in running:
                try:
                    c.stop(timeout=int(self.stop_timeout if timeout is None else timeout))
                except docker.errors.APIError as exc:
                    raise DeployError(f"cannot stop container {c.name}: {exc.explanation or exc}") from exc
            return bool(running)

    def status(self, key: str) -> RuntimeStatus:
        """The pipeline's state from its containers and intent; a new crash is recorded."""
        path = self._state_path(key)
        state = read_json(path)
        existing = self.containers(key)
        if state.get("intent") == "running" and any(c.status != "running" for c in existing):
            with file_lock(path.with_suffix(".lock"), blocking=False) as held:
                if held and self._record_crashes(state, [c for c in existing if c.status != "running"]):
                    write_json(path, state)
        return self._status(key, state, existing)

    def _status(
        self, key: str, state: Mapping[str, Any], existing: list[Any], action: str = ""
    ) -> RuntimeStatus:
        if not state and not existing:
            return RuntimeStatus(key=key, state="missing", runtime=self.name, detail="never deployed")
        running = [c for c in existing if c.status == "running"]
        dead = [c for c in existing if c.status != "running"]
        want = int(state.get("replicas") or len(existing) or 1)
        code, detail = None, ""
        if state.get("intent") == "stopped" and not running:
            run_state, code, detail = "stopped", state.get("last_exit_code"), "stopped on purpose"
        elif running and len(running) >= want:
            run_state = "running"
        else:
            run_state = "crashed"
            if dead:
                code = (dead[0].attrs.get("State") or {}).get("ExitCode")
                why = describe_container_exit(dead[0].attrs)
                detail = f"{dead[0].name} {why}\n{self._container_logs(dead[0], 20)}"
            else:
                detail = f"{len(running)} of {want} replica(s) running; the others' containers are gone"
        first = (running or existing or [None])[0]
        labels = first.labels if first is not None else {}
        crashes = state.get("crashes", [])
        extra = {
            "containers": ",".join(c.short_id for c in existing),
            "container_names": ",".join(c.name for c in existing),
            "image": str(labels.get(L_IMAGE) or state.get("image") or ""),
            "replicas": f"{len(running)}/{want}",
            "metrics_ports": ",".join(c.labels.get(L_METRICS, "") for c in running),
            "config_hash": str(labels.get(L_CONFIG, "")),
            "code_version": str(labels.get(L_CODE, "")),
            "log": f"docker logs {first.name}" if first is not None else "",
            "crashes_last_hour": str(sum(1 for c in crashes if c["at"] > time.time() - 3600)),
        }
        if action:
            extra["action"] = action
        return RuntimeStatus(
            key=key,
            state=run_state,  # type: ignore[arg-type]
            runtime=self.name,
            runtime_id=running[0].short_id if running else None,
            version=labels.get(L_VERSION) or state.get("version"),
            started_at=state.get("started_at"),
            restarts=int(state.get("restarts", 0)),
            exit_code=code,
            detail=detail.rstrip(),
            extra=extra,
        )

    def list(self) -> list[RuntimeStatus]:
        """Every pipeline with containers or bookkeeping here, by id."""
        keys = {c.labels[L_PIPELINE] for c in self.containers()}
        if self.root.is_dir():
            keys |= {p.stem for p in self.root.glob("*.json")}
        return [self.status(k) for k in sorted(keys)]

    @staticmethod
    def _container_logs(container: Any, lines: int) -> str:
        import docker.errors

        try:
            data: bytes = container.logs(tail=max(lines, 0), stdout=True, stderr=True)
        except docker.errors.APIError:
            return ""
        return data.decode(errors="replace").rstrip("\n") if lines > 0 else ""

    def logs(self, key: str, lines: int = 100) -> str:
        """The last ``lines`` lines of each replica's output (prefixed by replica when several)."""
        existing = self.containers(key)
        if len(existing) == 1:
            return self._container_logs(existing[0], lines)
        parts = []
        for c in existing:
            text = self._container_logs(c, lines)
            parts += [f"[replica {c.labels.get(L_REPLICA)}] {line}" for line in text.splitlines()]
        return "\n".join(parts)

    def follow_logs(
        self, key: str, poll: float = 0.5, should_stop: Callable[[], bool] | None = None
    ) -> Iterator[str]:
        """Output of the first running replica from now on, until it stops or ``should_stop``."""
        running = [c for c in self.containers(key) if c.status == "running"]
        if not running:
            return
        for chunk in running[0].logs(stream=True, follow=True, since=int(time.time())):
            yield chunk.decode(errors="replace")
            if should_stop is not None and should_stop():
                return

    def metrics(self, key: str) -> dict[str, float]:
        """Every running replica's metrics endpoint scraped now, counters summed."""
        ports = [c.labels.get(L_METRICS) for c in self.containers(key) if c.status == "running"]
        return merge_metrics([scrape(int(p)) for p in ports if p and p.isdigit()])


def _log(line: str) -> None:
    """Image build progress, to the module's logger."""
    import logging

    logging.getLogger(__name__).info(line)
