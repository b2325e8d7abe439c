"""Helpers of the docker runtime that need no container: the engine client, secrets as
environment, a free port, metrics scraping and how a container ended."""

from __future__ import annotations

import contextlib
import socket
import urllib.request
from collections.abc import Mapping
from typing import Any

from tradesignals_dagster.deploy.errors import DockerUnavailableError
from tradesignals_dagster.settings import Settings


def docker_client(timeout: float = 120.0) -> Any:
    """A Docker SDK client for ``$DOCKER_HOST`` (or the default socket) that answered a ping."""
    import docker
    import docker.errors

    try:
        client = docker.from_env(timeout=int(timeout))
        client.ping()
    except docker.errors.DockerException as exc:
        raise DockerUnavailableError(
            f"the Docker engine does not answer ({exc}); start it (scripts/dockerd.sh prints the "
            "DOCKER_HOST to export) or set DOCKER_HOST to a running engine"
        ) from exc
    return client


def secret_env(settings: Settings) -> dict[str, str]:
    """Credentials a pipeline needs, as the environment variables it reads them from."""
    out: dict[str, str] = {}
    if settings.sasl_mechanism:
        out["TRADESIGNALS_SASL_MECHANISM"] = settings.sasl_mechanism
    if settings.sasl_username:
        out["TRADESIGNALS_SASL_USERNAME"] = settings.sasl_username
    for name, secret in (
        ("TRADESIGNALS_SASL_PASSWORD", settings.sasl_password),
        ("TRADESIGNALS_SCHEMA_REGISTRY_BASIC_AUTH", settings.schema_registry_basic_auth),
        ("TRADESIGNALS_CLICKHOUSE_PASSWORD", settings.clickhouse_password),
    ):
        if secret is not None:
            out[name] = secret.get_secret_value()
    return out


AWS_SECRET_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
"""The object store's credentials, as the AWS SDK inside a container reads them."""


def object_store_secrets(settings: Settings, environ: Mapping[str, str]) -> dict[str, str]:
    """Credentials for the object store, for containers that read models from it: the AWS
    variables of ``environ`` when set, else (the local stack's S3 server, no URL configured)
    the stack's generated keys, which a container cannot read from the host's 0600 file."""
    passed = {name: environ[name] for name in AWS_SECRET_VARIABLES if environ.get(name)}
    if passed or settings.object_store_url:
        return passed
    from tradesignals_dagster.datasets.store import local_stack_credentials

    local = local_stack_credentials(settings)
    if local is None:
        return {}
    return {"AWS_ACCESS_KEY_ID": local.access_key, "AWS_SECRET_ACCESS_KEY": local.secret_key}


def container_environment(
    desired_env: Mapping[str, str],
    secrets: Mapping[str, str],
    store_secrets: Mapping[str, str],
    *,
    reads_models: bool,
    port: int,
    replica: int,
) -> dict[str, str]:
    """A replica's environment: what the desired state says, the credentials (object-store ones
    only for a pipeline that reads models), its metrics port and replica number."""
    return {
        **desired_env,
        **secrets,
        **(store_secrets if reads_models else {}),
        "TRADESIGNALS_METRICS_PORT": str(port),
        "TRADESIGNALS_INSTANCE": str(replica),
    }


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (containers share the host network)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int, timeout_s: float = 2.0) -> dict[str, float]:
    """The ``tradesignals_*`` series of a metrics endpoint on 127.0.0.1 (``{}`` if it is silent)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout_s) as resp:
            text = resp.read().decode()
    except (OSError, ValueError):
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("tradesignals_") and "_bucket" not in line:
            name, value = line.partition("{")[0].split(" ")[0], line.rsplit(" ", 1)[-1]
            with contextlib.suppress(ValueError):
                out[name.removeprefix("tradesignals_")] = float(value)
    return out


def merge_metrics(per_replica: list[dict[str, float]]) -> dict[str, float]:
    """Counters summed over replicas; ages and timestamps take the worst (largest) replica."""
    out: dict[str, float] = {}
    for metrics in per_replica:
        for name, value in metrics.items():
            if name.startswith(("seconds_since", "last_")):
                out[name] = max(out.get(name, value), value)
            else:
                out[name] = out.get(name, 0.0) + value
    return out


def describe_container_exit(attrs: Mapping[str, Any]) -> str:
    """A sentence about how a container ended, from ``docker inspect``'s State."""
    state = attrs.get("State") or {}
    code = state.get("ExitCode")
    if state.get("OOMKilled"):
        return f"killed for exceeding its memory limit (exit code {code})"
    if code == 137:
        return "killed by SIGKILL (exit code 137)"
    if code == 0:
        return "exited on its own with code 0 (a streaming pipeline should keep running)"
    return f"exited with code {code}" + (f": {state['Error']}" if state.get("Error") else "")
