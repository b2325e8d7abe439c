"""The one way to load the application: settings in, validated registry out.

The CLI, the Dagster definitions and resource, the pipeline entry point and replay all call
these two functions, so they read the same registry with the same pipelines directory (and so
the same merged ``config.yaml``), and agree on every desired-state hash whichever working
directory they were started from. Where the pipelines directory is comes from one rule, in
:class:`~tradesignals_dagster.settings.Settings`.
"""

from __future__ import annotations

from tradesignals_dagster.registry.loader import LoadResult, load_registry
from tradesignals_dagster.registry.models import StreamingApplication
from tradesignals_dagster.registry.overlays import known_environments
from tradesignals_dagster.settings import Settings


def check_app(settings: Settings) -> LoadResult:
    """Load and check the registry ``settings`` name, in the environment they name; every
    problem is in the result."""
    return load_registry(settings.registry, settings.pipelines_to_check(), settings.env)


def check_every_environment(settings: Settings) -> tuple[LoadResult, list[str]]:
    """The registry checked as written and with each overlay under ``environments/``: the
    result of ``settings``' own environment, with every other environment's problems added
    (each reported once). Returns the result and the environments checked."""
    result = check_app(settings)
    home = settings.registry if settings.registry.is_dir() else settings.registry.parent
    envs = known_environments(home)
    seen = {(p.file, p.line, p.path, p.message) for p in result.problems}
    for env in envs:
        if env == settings.env:
            continue
        other = load_registry(settings.registry, settings.pipelines_to_check(), env)
        for problem in other.problems:
            key = (problem.file, problem.line, problem.path, problem.message)
            if key not in seen:
                seen.add(key)
                result.problems.append(problem)
    return result, envs


def load_app(settings: Settings) -> StreamingApplication:
    """The validated application, or a RegistryError (exit 2) listing every problem."""
    return check_app(settings).require()
