"""docs/guide/writing-a-pipeline.md is executed: every bash and python block runs, in order, in a
copy of the registry and pipelines, and each output block must equal what the block before it
printed. Blocks that need the local stack must at least be commands the CLI accepts
(tests/integration/test_guide_on_stack.py runs them too, on the stack)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/guide_blocks.py
from guide_blocks import copy_project, guide_env, walk


def test_the_guide_runs_as_written(tmp_path: Path) -> None:
    copy_project(tmp_path)
    walked = walk(tmp_path, guide_env(tmp_path), with_stack=False)
    assert walked.ran >= 9 and walked.compared >= 8 and walked.parsed_only >= 3
