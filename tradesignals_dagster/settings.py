"""One typed settings object for every component.

Values come from ``TRADESIGNALS_*`` environment variables, then a ``.env`` file in the working
directory, then the connection file that ``tradesignals stack up`` writes under the state
directory, then the defaults below. Nothing is read at import time: call :func:`load_settings`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

STACK_FILE = "stack.json"


class Settings(BaseSettings):
    """Where the registry lives and how to reach Kafka, the schema registry and ClickHouse."""

    model_config = SettingsConfigDict(
        env_prefix="TRADESIGNALS_", env_file=".env", extra="ignore", populate_by_name=True
    )

    registry: Path = Field(Path("registry"), description="Directory holding pipelines.yaml.")
    env: str | None = Field(
        None,
        description="Environment overlay to apply (registry/environments/<env>.yaml); default: the "
        "registry's own `environment`. Its connection settings come from .env.<env> or variables.",
    )
    pipelines_dir: Path = Field(
        Path("pipelines"),
        description=(
            "Directory holding one folder per pipeline id. When not set: <registry>/pipelines if it "
            "exists (the seed's layout), else the pipelines/ directory beside the registry."
        ),
    )
    state_dir: Path = Field(Path(".state"), description="Where the local stack, logs and process state live.")
    bootstrap_servers: str | None = Field(
        None, description="Kafka bootstrap servers; defaults to the local stack's broker."
    )
    security_protocol: str = Field("PLAINTEXT", description="Kafka security.protocol.")
    sasl_mechanism: str | None = Field(None, description="Kafka sasl.mechanism, if any.")
    sasl_username: str | None = Field(None, description="Kafka SASL user name.")
    sasl_password: SecretStr | None = Field(None, description="Kafka SASL password.")
    schema_registry_url: str | None = Field(
        None, description="Confluent-API schema registry URL; defaults to the local stack's."
    )
    schema_registry_basic_auth: SecretStr | None = Field(
        None, description="'user:password' for the schema registry, if it needs it."
    )
    clickhouse_dsn: str | None = Field(
        None, description="Older name of clickhouse_url, still honoured when that is unset."
    )
    clickhouse_url: str | None = Field(
        None, description="ClickHouse HTTP(S) URL, e.g. https://host:8443; defaults to the local stack's."
    )
    clickhouse_user: str = Field("default", description="ClickHouse user.")
    clickhouse_password: SecretStr | None = Field(None, description="ClickHouse password, if any.")
    object_store_url: str | None = Field(
        None, description="s3://bucket/prefix or a local directory for Parquet exports."
    )
    object_store_endpoint: str | None = Field(
        None, description="http(s)://host:port of an S3-compatible server; unset for AWS S3."
    )
    object_store_region: str | None = Field(None, description="S3 region of the bucket, if not the default.")
    runtime: str = Field("process", description="Pipeline runtime: 'process' or 'docker'.")
    base_image: str = Field(
        "tradesignals-base:bookworm",
        description="Base image of pipeline images (needs python3.11 with venv); the default is made "
        "locally with debootstrap when missing, any other is pulled when missing.",
    )
    image_source: Path | None = Field(
        None,
        description="Project checkout pipeline images are built from (pyproject.toml at its root); "
        "default: the checkout this package is installed from.",
    )
    redeploy_interval_s: int = Field(
        5,
        ge=1,
        le=3600,
        description="Seconds between the redeploy sensor's comparisons of desired and running "
        "state (a change waits up to this long before its redeploy starts).",
    )
    stall_after_s: float = Field(
        60.0,
        gt=0,
        description="A running pipeline that processes no batch for this long while its input "
        "waits is reported as stalled and restarted by the health sensor.",
    )
    request_timeout_s: float = Field(
        10.0, description="How long admin calls wait before reporting the service as down."
    )
    _pipelines_explicit: bool = PrivateAttr(default=False)

    @model_validator(mode="after")
    def _one_layout(self) -> Settings:
        """Make every path absolute and derive the pipelines directory by one rule.

        Relative paths are taken against the working directory at the moment the settings are
        built. An unset pipelines directory follows the registry, not the working directory, so
        the CLI, the Dagster definitions and a pipeline process started anywhere agree on it.
        """
        cwd = Path(os.getcwd())
        self._pipelines_explicit = "pipelines_dir" in self.model_fields_set
        self.registry = self.registry if self.registry.is_absolute() else cwd / self.registry
        self.state_dir = self.state_dir if self.state_dir.is_absolute() else cwd / self.state_dir
        if self.pipelines_explicit:
            if not self.pipelines_dir.is_absolute():
                self.pipelines_dir = cwd / self.pipelines_dir
        else:
            home = self.registry if self.registry.is_dir() else self.registry.parent
            inside = home / "pipelines"
            self.pipelines_dir = inside if inside.is_dir() else home.parent / "pipelines"
        return self

    @property
    def pipelines_explicit(self) -> bool:
        """Whether the pipelines directory was given (flag, variable) rather than derived."""
        return self._pipelines_explicit

    def pipelines_to_check(self) -> Path | None:
        """The pipelines directory the registry is loaded with: a given one always (so a missing
        one is reported), a derived one only when it exists (a registry kept apart from code)."""
        if self.pipelines_explicit or self.pipelines_dir.is_dir():
            return self.pipelines_dir
        return None

    def stack_info(self) -> dict[str, Any]:
        """What ``tradesignals stack up`` recorded about the local stack, or ``{}``."""
        path = self.state_dir / STACK_FILE
        if not path.is_file():
            return {}
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def resolved_bootstrap_servers(self) -> str:
        """The configured broker, else the local stack's, else the Kafka default port."""
        if self.bootstrap_servers:
            return self.bootstrap_servers
        return str(self.stack_info().get("bootstrap_servers", "127.0.0.1:9092"))

    def resolved_schema_registry_url(self) -> str:
        """The configured schema registry, else the local stack's."""
        if self.schema_registry_url:
            return self.schema_registry_url
        return str(self.stack_info().get("schema_registry_url", "http://127.0.0.1:8081"))

    def resolved_clickhouse_url(self) -> str:
        """The configured ClickHouse URL (or the older DSN), else the local stack's endpoint."""
        if self.clickhouse_url:
            return self.clickhouse_url
        if self.clickhouse_dsn:
            return self.clickhouse_dsn
        return str(self.stack_info().get("clickhouse_url", "http://127.0.0.1:8123"))

    def resolved_clickhouse_dsn(self) -> str:
        """The configured ClickHouse DSN, else an in-process chdb under the state dir."""
        if self.clickhouse_dsn:
            return self.clickhouse_dsn
        return f"chdb://{(self.state_dir / 'chdb').resolve()}"

    def kafka_config(self) -> dict[str, str]:
        """The confluent-kafka client dict shared by admin, producer and consumer."""
        conf = {
            "bootstrap.servers": self.resolved_bootstrap_servers(),
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            conf["sasl.username"] = self.sasl_username
        if self.sasl_password is not None:
            conf["sasl.password"] = self.sasl_password.get_secret_value()
        return conf

    def schema_registry_config(self) -> dict[str, str]:
        """The confluent-kafka SchemaRegistryClient dict."""
        conf = {"url": self.resolved_schema_registry_url()}
        if self.schema_registry_basic_auth is not None:
            conf["basic.auth.user.info"] = self.schema_registry_basic_auth.get_secret_value()
        return conf


def load_settings(**overrides: Any) -> Settings:
    """Build the settings now, from the environment as it is at the call."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    env = clean.get("env") or os.environ.get("TRADESIGNALS_ENV")
    if env:  # per-environment connection settings: .env.<env> over .env, variables over both
        return Settings(_env_file=(".env", f".env.{env}"), **clean)
    return Settings(**clean)
