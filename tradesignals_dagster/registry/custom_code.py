"""Custom code of a pipeline stays in its directory, and is checked without being run.

A pipeline's ``app.py`` and a ``custom`` input's ``module_path`` are the only Python the registry
makes the runtime import. Both must be files inside ``pipelines/<id>/`` (after following links),
so a registry change can never make ``pipelines start`` or ``replay`` import a module elsewhere
on the machine. ``validate`` reads them as text and parses them with :mod:`ast`: syntax errors,
a missing ``build`` function or a missing input class are reported without executing anything.

``module_path`` is either a dotted module name resolved in the pipeline's directory
(``feeds.my_feed`` -> ``feeds/my_feed.py`` or ``feeds/my_feed/__init__.py``) or a relative
path to a ``.py`` file there (``feeds/my_feed.py``);
:func:`~tradesignals_dagster.registry.files.module_files` is the one rule.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

from tradesignals_dagster.registry.context import LoadContext, Located
from tradesignals_dagster.registry.errors import Problem, UnreadableFileError, display_path
from tradesignals_dagster.registry.files import module_files, module_path_problem, read_confined
from tradesignals_dagster.registry.models import StreamingPipeline


def check_custom_code(folder: Path, pipeline: StreamingPipeline, place: Located, ctx: LoadContext) -> None:
    """Report a broken ``app.py``, and a ``module_path`` or ``class_name`` not found in ``folder``."""
    app_py = folder / "app.py"
    if os.path.lexists(app_py):
        tree = _parse(app_py, folder, ctx)
        if tree is not None and "build" not in _top_level(tree, functions=True):
            ctx.problems.append(
                Problem(display_path(app_py), None, "", "app.py must define build(ctx) at the top level")
            )
    spec = pipeline.input
    if spec.type != "custom" or not spec.module_path or not spec.class_name:
        return
    if module_path_problem(spec.module_path) is not None:
        return  # reported by the model
    found = next((f for f in module_files(spec.module_path, folder) if os.path.lexists(f)), None)
    shown = display_path(folder)
    if found is None:
        ctx.add(
            place.doc,
            (*place.path, "input", "module_path"),
            f"module '{spec.module_path}' is not in {shown}/ "
            "(custom inputs live in the pipeline's directory)",
        )
        return
    tree = _parse(found, folder, ctx)
    if tree is not None and spec.class_name not in _top_level(tree, functions=False):
        ctx.add(
            place.doc,
            (*place.path, "input", "class_name"),
            f"{display_path(found)} defines no class '{spec.class_name}' at the top level",
        )


def _parse(path: Path, folder: Path, ctx: LoadContext) -> ast.Module | None:
    shown = display_path(path)
    try:
        source = read_confined(path, folder)
    except UnreadableFileError as exc:
        ctx.problems.append(Problem(shown, None, "", exc.reason))
        return None
    try:
        return ast.parse(source, filename=shown)
    except SyntaxError as exc:
        ctx.problems.append(Problem(shown, exc.lineno, "", f"Python syntax error: {exc.msg}"))
    except (ValueError, RecursionError, MemoryError) as exc:  # NUL bytes, absurd nesting
        ctx.problems.append(Problem(shown, None, "", f"cannot parse: {type(exc).__name__}"))
    return None


def _top_level(tree: ast.Module, *, functions: bool) -> set[str]:
    kinds: tuple[type[ast.AST], ...] = (
        (ast.FunctionDef, ast.AsyncFunctionDef) if functions else (ast.ClassDef,)
    )
    return {node.name for node in tree.body if isinstance(node, kinds)}  # type: ignore[attr-defined]
