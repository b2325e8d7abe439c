"""The registry as a Dagster Component yields the same graph as the definitions module."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from tradesignals_dagster.components import TradesignalsRegistry
from tradesignals_dagster.defs.build import build_definitions
from tradesignals_dagster.settings import Settings

ROOT = Path(__file__).parent.parent.parent


def _keys(defs):  # type: ignore[no-untyped-def]
    return sorted(k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys())


def test_component_from_yaml_attributes_matches_definitions(tmp_path: Path) -> None:
    component = TradesignalsRegistry.model_validate(
        {"registry": "../registry", "pipelines_dir": "../pipelines", "state_dir": str(tmp_path)}
    )
    defs = component.build_defs(SimpleNamespace(path=ROOT / "tests"))  # paths relative to defs.yaml's folder
    expected = build_definitions(
        Settings(registry=ROOT / "registry", pipelines_dir=ROOT / "pipelines", state_dir=tmp_path)
    )
    assert _keys(defs) == _keys(expected)
    assert "pipelines/option_trade_volume_bars" in _keys(defs)
