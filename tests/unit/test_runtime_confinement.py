"""The runtime loads a pipeline's app.py only from inside pipelines/<id>/, for any id."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradesignals_dagster.streaming.config import load_factory
from tradesignals_dagster.streaming.errors import PipelineConfigError

APP = "def build(ctx):\n    raise SystemExit('this code must never run')\n"


@pytest.mark.parametrize("key", ["../x", "/tmp/x", "..", "a/b"])
def test_unsafe_pipeline_ids_are_refused_before_any_path_is_joined(tmp_path: Path, key: str) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "app.py").write_text(APP)
    with pytest.raises(PipelineConfigError, match="pipeline id"):
        load_factory(tmp_path / "pipelines", key)


def test_an_app_py_linking_out_of_the_pipeline_directory_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "evil.py"
    outside.write_text(APP)
    folder = tmp_path / "pipelines" / "p"
    folder.mkdir(parents=True)
    (folder / "app.py").symlink_to(outside)
    with pytest.raises(PipelineConfigError, match="leads outside the pipeline's directory"):
        load_factory(tmp_path / "pipelines", "p")


def test_an_app_py_inside_is_loaded(tmp_path: Path) -> None:
    folder = tmp_path / "pipelines" / "p"
    folder.mkdir(parents=True)
    (folder / "app.py").write_text("def build(ctx):\n    return 'built'\n")
    assert load_factory(tmp_path / "pipelines", "p")(None) == "built"  # type: ignore[arg-type]
