"""The seed's own example registry: the validator names exactly what is wrong with it."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from tradesignals_dagster.registry import load_registry

SEED = Path(__file__).parent.parent / "fixtures" / "seed"


def test_seed_example_has_exactly_one_error_the_empty_record() -> None:
    result = load_registry(SEED)
    assert [(p.line, p.path, p.message) for p in result.errors] == [
        (
            21,
            "StreamingApplication.Topics.option_trades.value_schema.fields",
            "record 'OptionTrades' has no fields; a value schema needs at least one field",
        )
    ]
    assert result.errors[0].file.endswith("seed/pipelines.yaml")


def test_seed_example_warns_that_decimal_2_2_holds_only_fractions() -> None:
    result = load_registry(SEED)
    assert [p.path for p in result.warnings] == [
        "StreamingApplication.Topics.option_trades_aggs.value_schema.fields[3].scale"
    ]
    assert "below 1" in result.warnings[0].message


def test_seed_example_is_accepted_once_the_record_has_fields(tmp_path: Path) -> None:
    shutil.copy(SEED / "pipelines.yaml", tmp_path / "pipelines.yaml")
    data = yaml.safe_load((tmp_path / "pipelines.yaml").read_text())
    schema = data["StreamingApplication"]["Topics"]["option_trades"]["value_schema"]
    schema["fields"] = [{"name": "symbol", "type": "string"}, {"name": "size", "type": "int"}]
    (tmp_path / "pipelines.yaml").write_text(yaml.safe_dump(data))

    result = load_registry(tmp_path)

    assert result.errors == []
    app = result.require()
    assert set(app.topics) == {"option_trades", "option_trades_aggs"}
    pipe = app.pipelines["option_trade_volume_bars"]
    assert pipe.name == "OptionTradeVolumeBars"
    assert pipe.input.group_id == "option_volume_aggs_consumer"
    assert pipe.output.topic_id == "option_trades_aggs"
    assert app.subjects["option_trades_aggs"] == "option_trades_aggs-value"
    price = app.schemas["option_trades_aggs"]["fields"][3]
    assert price["type"] == {"type": "bytes", "logicalType": "decimal", "precision": 2, "scale": 2}
