"""Custom code is loaded only from inside the pipeline's own directory.

``validate`` refuses a ``module_path`` or pipeline id that could point elsewhere; the runtime
checks again where it loads the code, since a link or a file created after validation could
still lead out: the file is resolved (links followed) and must be a regular file inside
``pipelines/<id>/``.
"""

from __future__ import annotations

import stat
from pathlib import Path

from tradesignals_dagster.registry.files import module_files, module_path_problem
from tradesignals_dagster.registry.identifiers import safe_id_problem
from tradesignals_dagster.streaming.errors import PipelineConfigError


def pipeline_folder(pipelines_dir: Path, key: str) -> Path:
    """``pipelines_dir/key``, refusing a key that is not a safe pipeline id (``../x``, ``/x``)."""
    problem = safe_id_problem(key)
    if problem is not None:
        raise PipelineConfigError(f"pipeline id {key!r}: {problem}")
    return pipelines_dir / key


def confined_file(path: Path, folder: Path, what: str) -> Path | None:
    """``path`` resolved, if it exists; a PipelineConfigError if it leads out of ``folder`` or
    is not a regular file; None if there is no such file."""
    try:
        real = path.resolve(strict=True)
    except FileNotFoundError:
        return None
    except (OSError, RuntimeError) as exc:
        raise PipelineConfigError(f"{what} {path}: cannot be resolved ({exc})") from None
    home = folder.resolve()
    if home not in real.parents:
        raise PipelineConfigError(f"{what} {path} leads outside the pipeline's directory {folder}; refused")
    if not stat.S_ISREG(real.stat().st_mode):
        raise PipelineConfigError(f"{what} {path} is not a regular file")
    return real


def custom_module_file(module_path: str, folder: Path) -> Path:
    """The file of a custom input's ``module_path`` inside the pipeline's directory."""
    problem = module_path_problem(module_path)
    if problem is not None:
        raise PipelineConfigError(f"input.module_path {module_path!r}: {problem}")
    for candidate in module_files(module_path, folder):
        found = confined_file(candidate, folder, "input.module_path")
        if found is not None:
            return found
    raise PipelineConfigError(
        f"input.module_path {module_path!r}: no such module in {folder} (custom input code lives in the "
        "pipeline's own directory)"
    )
