"""Assemble assets, checks, sensors and the resource into one :class:`dagster.Definitions`."""

from __future__ import annotations

import dagster as dg

from tradesignals_dagster.defs.assets import build_assets
from tradesignals_dagster.defs.checks import build_checks
from tradesignals_dagster.defs.datasets import build_datasets
from tradesignals_dagster.defs.models import build_models
from tradesignals_dagster.defs.resources import TradesignalsResource
from tradesignals_dagster.defs.sensors import DEPLOY_JOB, pipeline_health, redeploy_sensor
from tradesignals_dagster.defs.warehouse import build_warehouse
from tradesignals_dagster.registry.application import load_app
from tradesignals_dagster.settings import Settings


def build_definitions(settings: Settings) -> dg.Definitions:
    """Definitions for the registry under ``settings``; a broken registry raises RegistryError
    listing every problem, so the code location shows why it did not load."""
    app = load_app(settings)
    resource = TradesignalsResource(
        registry=str(settings.registry),
        pipelines_dir=str(settings.pipelines_dir) if settings.pipelines_explicit else None,
        state_dir=str(settings.state_dir),
    )
    datasets = build_datasets(app, settings)
    warehouse = build_warehouse(app)
    models = build_models(app)
    return dg.Definitions(
        assets=[*build_assets(app), *warehouse["assets"], *datasets["assets"], *models["assets"]],
        asset_checks=[*build_checks(app), *warehouse["asset_checks"], *datasets["asset_checks"]],
        jobs=[DEPLOY_JOB],
        schedules=[*datasets["schedules"], *models["schedules"]],
        sensors=[redeploy_sensor(settings.redeploy_interval_s), pipeline_health, *warehouse["sensors"]],
        resources={"tradesignals": resource},
    )
