"""Secrets come from the environment and stay there: not in desired state, logs or repr."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradesignals_dagster.deploy.desired import desired_state
from tradesignals_dagster.registry.loader import load_application
from tradesignals_dagster.settings import load_settings

ROOT = Path(__file__).parent.parent.parent
SECRET = "s3cr3t-do-not-print"


def test_secrets_reach_the_client_config_but_nothing_else(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADESIGNALS_SASL_USERNAME", "svc")
    monkeypatch.setenv("TRADESIGNALS_SASL_PASSWORD", SECRET)
    monkeypatch.setenv("TRADESIGNALS_SCHEMA_REGISTRY_BASIC_AUTH", f"svc:{SECRET}")
    settings = load_settings(registry=ROOT / "registry", pipelines_dir=ROOT / "pipelines")

    assert settings.kafka_config()["sasl.password"] == SECRET
    assert settings.schema_registry_config()["basic.auth.user.info"] == f"svc:{SECRET}"
    assert SECRET not in repr(settings) and SECRET not in str(settings.model_dump())

    app = load_application(ROOT / "registry", ROOT / "pipelines")
    desired = desired_state(app, "option_trade_volume_bars", settings)
    assert SECRET not in repr(desired)
    assert not any(SECRET in v for v in desired.env.values())
