"""Deploying a pipeline: the one function the CLI, the Dagster asset and the sensors call.

Before a pipeline starts, the topics it touches (input, output, dead-letter, state) and its
output schema must exist, so deploying runs the control plane's plan/apply for exactly those,
then hands the desired state to the runtime, which restarts only when the version differs.
"""

from __future__ import annotations

from tradesignals_dagster.control.apply import ControlPlane
from tradesignals_dagster.control.topics import state_topic
from tradesignals_dagster.deploy.desired import desired_state
from tradesignals_dagster.deploy.errors import UnknownRuntimeError
from tradesignals_dagster.deploy.runtime import DesiredState, PipelineRuntime, RuntimeStatus
from tradesignals_dagster.registry.models import StreamingApplication
from tradesignals_dagster.settings import Settings


def pipeline_topics(app: StreamingApplication, key: str) -> set[str]:
    """Every topic pipeline ``key`` reads or writes, derived ones included."""
    pipe = app.pipelines[key]
    return {t for t in (pipe.input.kafka_topic_id, pipe.output.topic_id) if t} | {
        pipe.dlq_topic(),
        state_topic(key),
    }


def prepare_pipeline(app: StreamingApplication, key: str, control: ControlPlane) -> None:
    """Create or fix the pipeline's topics and register its topics' schemas (idempotent)."""
    topics = pipeline_topics(app, key)
    subjects = {app.subjects[t] for t in topics if t in app.subjects}
    control.apply(control.plan(app, topics=topics, subjects=subjects or set()))


RUNTIMES = ("process", "docker")


def check_runtime(name: str) -> str:
    """``name`` if it is a runtime this product has, else :class:`UnknownRuntimeError` (exit 2)."""
    if name not in RUNTIMES:
        raise UnknownRuntimeError(
            f"TRADESIGNALS_RUNTIME={name!r} is not a pipeline runtime; use one of: {', '.join(RUNTIMES)}"
        )
    return name


def runtime_for(settings: Settings) -> PipelineRuntime:
    """The runtime the settings choose: local processes (default) or Docker containers."""
    if check_runtime(settings.runtime) == "docker":
        from tradesignals_dagster.deploy.docker import DockerRuntime

        return DockerRuntime.from_settings(settings)
    from tradesignals_dagster.deploy.process import ProcessRuntime

    return ProcessRuntime(settings.state_dir)


def deploy_pipeline(
    app: StreamingApplication,
    key: str,
    settings: Settings,
    control: ControlPlane,
    runtime: PipelineRuntime,
    force: bool = False,
) -> tuple[DesiredState, RuntimeStatus]:
    """Make pipeline ``key`` run as the registry says; a no-op when it already does."""
    prepare_pipeline(app, key, control)
    desired = desired_state(app, key, settings)
    return desired, runtime.deploy(desired, force=force)
