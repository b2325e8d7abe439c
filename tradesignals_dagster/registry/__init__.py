"""The YAML registry: typed models, a line-aware loader and the cross-checks."""

from tradesignals_dagster.registry.errors import Problem, RegistryError
from tradesignals_dagster.registry.loader import LoadResult, load_application, load_registry
from tradesignals_dagster.registry.models import (
    StreamingApplication,
    StreamingPipeline,
    StreamingPipelineInput,
    StreamingPipelineOutput,
    StreamingPipelineTopics,
    StreamingTopic,
    ValueSchema,
)

__all__ = [
    "LoadResult",
    "Problem",
    "RegistryError",
    "StreamingApplication",
    "StreamingPipeline",
    "StreamingPipelineInput",
    "StreamingPipelineOutput",
    "StreamingPipelineTopics",
    "StreamingTopic",
    "ValueSchema",
    "load_application",
    "load_registry",
]
