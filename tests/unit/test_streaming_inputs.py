"""The PipelineInput contract: custom inputs from module_path/class_name, the input factory."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from flagship_avro import OPTION_TRADES

from tradesignals_dagster.registry.models import (
    StreamingPipeline,
    StreamingPipelineInput,
    StreamingPipelineOutput,
)
from tradesignals_dagster.streaming.errors import InputError, PipelineConfigError
from tradesignals_dagster.streaming.inputs import (
    InputContext,
    PipelineInput,
    ReplayInput,
    build_input,
    metadata,
)
from tradesignals_dagster.streaming.synthetic import SyntheticInput

CUSTOM = """
from tradesignals_dagster.streaming.inputs import PipelineInput

class Countdown(PipelineInput):
    def open(self):
        self.left = int(self.spec.additional_metadata.get("n", 3))

    def read(self, max_records, timeout_s):
        rows = [{"trade_id": str(i), "symbol": "S", "timestamp": i, "price": "1", "size": 1}
                for i in range(min(max_records, self.left))]
        self.left -= len(rows)
        return rows

    @property
    def exhausted(self):
        return self.left == 0

class NotAnInput:
    pass
"""


def ctx_for(spec: StreamingPipelineInput, base: Path) -> InputContext:
    pipe = StreamingPipeline(key="p", input=spec, output=StreamingPipelineOutput(topic_id="t"))
    return InputContext(pipeline=pipe, schema=OPTION_TRADES, base_dir=base, stop=threading.Event())


def test_custom_input_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "feed.py").write_text(CUSTOM)
    spec = StreamingPipelineInput(
        type="custom", module_path="feed.py", class_name="Countdown", additional_metadata={"n": 5}
    )
    ctx = ctx_for(spec, tmp_path)
    inp = build_input(ctx.pipeline, ctx)
    inp.open()
    assert len(inp.read(3, 0.1)) == 3 and len(inp.read(3, 0.1)) == 2 and inp.exhausted
    assert isinstance(inp, PipelineInput) and not inp.typed


def test_custom_input_from_a_module_in_the_pipeline_dir(tmp_path: Path) -> None:
    (tmp_path / "my_feed_mod.py").write_text(CUSTOM)
    spec = StreamingPipelineInput(type="websocket", module_path="my_feed_mod", class_name="Countdown")
    ctx = ctx_for(spec, tmp_path)
    assert type(build_input(ctx.pipeline, ctx)).__name__ == "Countdown"


@pytest.mark.parametrize(
    ("module", "cls", "message"),
    [
        ("feed.py", "Missing", "has no class 'Missing'"),
        ("feed.py", "NotAnInput", "must subclass"),
        ("no_such_module_xyz", "X", "no such module in"),
    ],
)
def test_custom_input_errors(tmp_path: Path, module: str, cls: str, message: str) -> None:
    (tmp_path / "feed.py").write_text(CUSTOM)
    spec = StreamingPipelineInput(type="custom", module_path=module, class_name=cls)
    ctx = ctx_for(spec, tmp_path)
    with pytest.raises((InputError, PipelineConfigError), match=message):
        build_input(ctx.pipeline, ctx)


@pytest.mark.parametrize("module", ["../outside.py", "/tmp/outside.py", "linked.py", "os"])
def test_custom_input_code_outside_the_pipeline_directory_is_refused(tmp_path: Path, module: str) -> None:
    folder = tmp_path / "pipelines" / "p"
    folder.mkdir(parents=True)
    outside = tmp_path / "pipelines" / "outside.py"
    outside.write_text(CUSTOM)
    (folder / "linked.py").symlink_to(outside)
    # model_construct: the runtime must refuse even what validation would have caught
    spec = StreamingPipelineInput.model_construct(type="custom", module_path=module, class_name="Feed")
    ctx = ctx_for(spec, folder)
    with pytest.raises(PipelineConfigError, match="module_path"):
        build_input(ctx.pipeline, ctx)


def test_factory_picks_builtin_inputs(tmp_path: Path) -> None:
    synthetic = StreamingPipelineInput(type="synthetic")
    assert isinstance(
        build_input(ctx_for(synthetic, tmp_path).pipeline, ctx_for(synthetic, tmp_path)), SyntheticInput
    )
    replay = StreamingPipelineInput(type="replay", path="t.csv")
    assert isinstance(build_input(ctx_for(replay, tmp_path).pipeline, ctx_for(replay, tmp_path)), ReplayInput)
    with pytest.raises(PipelineConfigError, match=r"needs input\.path"):
        no_path = StreamingPipelineInput(type="replay")
        build_input(ctx_for(no_path, tmp_path).pipeline, ctx_for(no_path, tmp_path))
    with pytest.raises(PipelineConfigError, match=r"needs input\.module_path"):
        custom = StreamingPipelineInput(type="custom")
        build_input(ctx_for(custom, tmp_path).pipeline, ctx_for(custom, tmp_path))


def test_metadata_helper() -> None:
    spec = StreamingPipelineInput(type="synthetic", additional_metadata={"n": "4", "flag": "yes", "x": "?"})
    assert metadata(spec, "n", 0, int) == 4 and metadata(spec, "flag", False, bool) is True
    assert metadata(spec, "missing", 1.5, float) == 1.5
    with pytest.raises(PipelineConfigError, match="must be a int"):
        metadata(spec, "x", 0, int)
