"""Typed models of the registry, in the seed's vocabulary.

Class names follow the seed where it names them (``StreamingPipeline``,
``StreamingPipelineTopics``, ``StreamingPipelineOutput``...). Every model rejects unknown keys;
the loader turns those rejections into "did you mean" messages. The seed's alternative
spellings (``topic_id``/``id``, ``kafka_topic_id``/``topic_id``,
``consumer_group_id``/``group_id``) are normalised by the loader before validation, so the
models carry one canonical name per property.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tradesignals_dagster.registry.datasets import StreamingDataset
from tradesignals_dagster.registry.files import module_path_problem
from tradesignals_dagster.registry.identifiers import (
    INT16_MAX,
    INT32_MAX,
    INT64_MAX,
    MAX_PARTITIONS,
    SafeId,
    Subject,
    TopicName,
)
from tradesignals_dagster.registry.models_ml import StreamingModel
from tradesignals_dagster.registry.tables import StreamingTable
from tradesignals_dagster.registry.topic_configs import configs_problems

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
Compatibility = Literal[
    "NONE",
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
]
THIRTY_DAYS_MS = 2_592_000_000
UNSET: Any = object()


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, validate_default=True)


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _pairs_to_dict(value: Any) -> Any:
    """The seed describes metadata as key/value pairs; accept a mapping or a list of pairs."""
    if isinstance(value, list) and all(isinstance(p, list | tuple) and len(p) == 2 for p in value):
        return {str(k): v for k, v in value}
    return value


class AvroField(_Model):
    """One field of a record schema, in the seed's notation (``logical_type`` and friends)."""

    name: str = Field(description="Field name; a valid Avro name, unique in its record.")
    type: str | list[Any] | dict[str, Any] = Field(
        description="Avro type: a primitive or named type, a union list, or a full Avro type."
    )
    doc: str | None = Field(None, description="What the field means; shown in Dagster.")
    logical_type: str | None = Field(None, description="Avro logical type, e.g. timestamp-millis or decimal.")
    precision: int | None = Field(None, le=INT32_MAX, description="Decimal precision (total digits).")
    scale: int | None = Field(None, le=INT32_MAX, description="Decimal scale (digits after the point).")
    min_length: int | None = Field(
        None, ge=0, le=INT64_MAX, description="Validation: shortest string allowed."
    )
    max_length: int | None = Field(
        None, ge=0, le=INT64_MAX, description="Validation: longest string allowed."
    )
    default: Any = Field(UNSET, description="Default for readers of older data.")
    aliases: list[str] = Field(default_factory=list, description="Former names of the field.")
    order: Literal["ascending", "descending", "ignore"] | None = Field(None, description="Avro sort order.")

    @property
    def has_default(self) -> bool:
        """Whether the YAML gave a default (``null`` counts as a default)."""
        return self.default is not UNSET


class ValueSchema(_Model):
    """An Avro record schema for a topic's values (the seed's ``value_schema``)."""

    type: Literal["record"] = Field("record", description="Always 'record' for value schemas.")
    name: str = Field(description="Record name, e.g. OptionTrades.")
    namespace: str | None = Field(None, description="Avro namespace of the record.")
    doc: str | None = Field(None, description="What one record means.")
    version: int = Field(1, ge=1, le=INT32_MAX, description="The registry author's version of the schema.")
    subject: Subject | None = Field(
        None,
        description="Schema registry subject; defaults to '<topic>-value'. "
        "Letters, digits, '.', '_', ':', '-'.",
    )
    compatibility: Compatibility | None = Field(
        None, description="Compatibility level for the subject; BACKWARD when unset."
    )
    aliases: list[str] = Field(default_factory=list, description="Former names of the record.")
    fields: list[AvroField] = Field(default_factory=list, description="The record's fields.")

    _upper_compat = field_validator("compatibility", mode="before")(_upper)


class StreamingTopic(_Model):
    """One Kafka topic (the seed's topic configuration dictionary)."""

    id: TopicName = Field(
        description="Topic name in Kafka: at most 249 characters from letters, digits, '.', '_', '-' "
        "(not '.' or '..'), Kafka's own rule."
    )
    num_partitions: int = Field(4, ge=1, le=MAX_PARTITIONS, description="Number of partitions (1 to 10000).")
    replication_factor: int = Field(3, ge=1, le=INT16_MAX, description="Replication factor (1 to 32767).")
    min_insync_replicas: int = Field(2, ge=1, le=INT16_MAX, description="min.insync.replicas.")
    retention_ms: int = Field(
        THIRTY_DAYS_MS, ge=-1, le=INT64_MAX, description="retention.ms; -1 keeps data forever."
    )
    retention_bytes: int = Field(-1, ge=-1, le=INT64_MAX, description="retention.bytes; -1 is unlimited.")
    cleanup_policy: Literal["delete", "compact", "compact,delete", "delete,compact"] = Field(
        "delete", description="cleanup.policy."
    )
    key_serializer: Literal["string", "int", "long", "double"] = Field(
        "string", description="How message keys are serialized."
    )
    value_serializer: Literal["avro", "json", "protobuf"] = Field(
        "avro", description="How message values are serialized."
    )
    value_schema_id: TopicName | None = Field(
        None, description="Id of a schema in the Schemas section or registry/schemas/ (a file name there)."
    )
    value_schema: ValueSchema | None = Field(None, description="Inline Avro value schema.")
    reset_topic_on_start: bool = Field(
        False, description="Delete and recreate the topic when the application starts (apply --on-start)."
    )
    compatibility: Compatibility | None = Field(
        None, description="Schema compatibility level for this topic's subject."
    )
    configs: dict[str, str] = Field(
        default_factory=dict,
        description="Other Kafka topic configs (known topic-level keys, single values), passed verbatim. "
        "retention.ms, retention.bytes, cleanup.policy and min.insync.replicas are refused here: "
        "set retention_ms, retention_bytes, cleanup_policy, min_insync_replicas instead.",
    )
    doc: str | None = Field(None, description="What the topic carries.")

    _upper_compat = field_validator("compatibility", mode="before")(_upper)

    @field_validator("configs", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> Any:
        problems = configs_problems(value)
        if problems:
            raise ValueError("; ".join(problems))
        if isinstance(value, dict):
            return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}
        return value


class StreamingPipelineTopics(_Model):
    """The root of ``topics.yaml``: a list of topic configurations."""

    topics: list[StreamingTopic] = Field(description="The topics.")


class StreamingPipelineInput(_Model):
    """Where a pipeline reads from (the seed's ``pipeline.input``)."""

    type: Literal["websocket", "kafka", "replay", "synthetic", "custom"] = Field(
        "websocket", description="Input kind."
    )
    kafka_topic_id: TopicName | None = Field(None, description="Topic read by a kafka input.")
    group_id: TopicName | None = Field(
        None, description="Consumer group; defaults to the pipeline id so no two pipelines share."
    )
    module_path: str | None = Field(
        None,
        description="Module of a custom PipelineInput, inside the pipeline's directory pipelines/<id>/: "
        "a dotted module name (feeds.my_feed -> feeds/my_feed.py) or a relative .py path.",
    )
    class_name: str | None = Field(
        None,
        description="Class of a custom PipelineInput, defined in module_path (checked without importing).",
    )
    url: str | None = Field(None, description="Websocket URL of a websocket input.")
    subscribe: dict[str, Any] | None = Field(
        None, description="Message a websocket input sends after connecting."
    )
    path: str | None = Field(None, description="File a replay input reads.")
    speed: float | None = Field(
        None,
        gt=0,
        le=1e6,
        allow_inf_nan=False,
        description="Replay speed multiple; unset replays as fast as possible.",
    )
    additional_metadata: dict[str, Any] = Field(
        default_factory=dict, description="Key/value pairs passed to the input."
    )

    _pairs = field_validator("additional_metadata", mode="before")(_pairs_to_dict)

    @field_validator("module_path")
    @classmethod
    def _module_in_pipeline_dir(cls, value: str | None) -> str | None:
        reason = module_path_problem(value) if value is not None else None
        if reason is not None:
            raise ValueError(reason)
        return value

    @field_validator("class_name")
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        if value is not None and not value.isidentifier():
            raise ValueError("class_name must be a Python class name")
        return value


class StreamingPipelineOutput(_Model):
    """Where a pipeline writes (the seed's ``pipeline.output``)."""

    type: Literal["kafka"] = Field("kafka", description="Output kind.")
    topic_id: TopicName | None = Field(None, description="Topic written.")
    publisher_id: str | None = Field(None, description="Id of the data source.")
    dataset_id: SafeId | None = Field(None, description="Id of the dataset (a safe identifier).")
    entitlements: list[str] = Field(
        default_factory=list, description="Entitlements a reader needs; sent as a header."
    )
    additional_metadata: dict[str, Any] = Field(
        default_factory=dict, description="Key/value pairs sent as message headers."
    )

    _pairs = field_validator("additional_metadata", mode="before")(_pairs_to_dict)


class DockerConfig(_Model):
    """How the pipeline's container is built and run (the seed's ``pipeline.docker``)."""

    image: str = Field(
        description="Image repository (and seed-style tag), e.g. tradesignals/volume_bars:1.4.2; "
        "`tradesignals images build` tags it by content, so the tag written here is informational."
    )
    cpus: float | None = Field(None, gt=0, description="CPU limit of each replica (e.g. 0.5), none if unset.")
    memory: str | None = Field(
        None,
        pattern=r"^[0-9]+[bkmgBKMG]?$",
        description="Memory limit of each replica in Docker's notation (e.g. 512m, 2g), none if unset.",
    )
    replicas: int = Field(
        1, ge=1, le=64, description="Containers to run; they join one consumer group (kafka inputs)."
    )


class StreamingPipeline(_Model):
    """One long-running pipeline (the seed's ``pipeline``).

    The mapping key in ``Pipelines`` is the pipeline id: the directory name under
    ``pipelines/``, the consumer group default and the Dagster asset key. The seed also puts an
    ``id`` inside (``OptionTradeVolumeBars``); that is kept as :attr:`name`.
    """

    key: SafeId = Field(
        description="Pipeline id (the mapping key): starts with a letter, then letters, digits, '_', '-'."
    )
    name: str | None = Field(None, description="Display name (the seed's inner id).")
    log_level: LogLevel = Field("INFO", description="Log level of the pipeline process.")
    input: StreamingPipelineInput = Field(description="Where the pipeline reads.")
    output: StreamingPipelineOutput = Field(description="Where the pipeline writes.")
    docker: DockerConfig | None = Field(None, description="Container settings.")
    delivery: Literal["at_least_once", "exactly_once"] = Field(
        "at_least_once", description="Delivery guarantee."
    )
    dead_letter_topic: TopicName | None = Field(
        None, description="Topic for records that cannot be processed; '<input>.dlq' if unset."
    )
    doc: str | None = Field(None, description="What the pipeline does.")
    owners: list[str] = Field(default_factory=list, description="Who to call.")
    config: dict[str, Any] = Field(
        default_factory=dict, description="Transform parameters, from pipelines/<id>/config.yaml."
    )
    column_lineage: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Output field -> the input fields it is computed from (shown as column lineage).",
    )

    _upper_level = field_validator("log_level", mode="before")(_upper)

    def consumer_group(self) -> str:
        """The consumer group a kafka input uses."""
        return self.input.group_id or self.key

    def dlq_topic(self) -> str:
        """Where undecodable or invalid records go."""
        if self.dead_letter_topic:
            return self.dead_letter_topic
        base = self.input.kafka_topic_id or self.output.topic_id or self.key
        return f"{base}.dlq"


class StreamingApplication(_Model):
    """The whole application: the seed's ``StreamingApplication`` root and its sections."""

    id: str = Field(description="Application id.")
    environment: str = Field("development", description="Environment the registry describes.")
    log_level: LogLevel = Field("INFO", description="Default log level.")
    reset_topics_on_start: bool = Field(
        False, description="Delete and recreate every topic when the application starts (apply --on-start)."
    )
    topics: dict[str, StreamingTopic] = Field(default_factory=dict, description="By topic id.")
    pipelines: dict[str, StreamingPipeline] = Field(default_factory=dict, description="By pipeline id.")
    tables: dict[str, StreamingTable] = Field(
        default_factory=dict, description="ClickHouse tables by table id."
    )
    datasets: dict[str, StreamingDataset] = Field(
        default_factory=dict, description="Parquet datasets exported from tables, by dataset id."
    )
    models: dict[str, StreamingModel] = Field(
        default_factory=dict, description="ML models trained on datasets, by model id."
    )
    schemas: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Resolved Avro schemas by topic id (Avro JSON)."
    )
    subjects: dict[str, str] = Field(default_factory=dict, description="Schema registry subject by topic id.")

    _upper_level = field_validator("log_level", mode="before")(_upper)

    def topic_compatibility(self, topic_id: str) -> Compatibility:
        """The compatibility level the topic's subject is held to."""
        topic = self.topics[topic_id]
        if topic.compatibility:
            return topic.compatibility
        if topic.value_schema and topic.value_schema.compatibility:
            return topic.value_schema.compatibility
        return "BACKWARD"

    def writers_of(self, topic_id: str) -> list[str]:
        """Pipelines that write ``topic_id``."""
        return [k for k, p in self.pipelines.items() if p.output.topic_id == topic_id]

    def readers_of(self, topic_id: str) -> list[str]:
        """Pipelines that read ``topic_id``."""
        return [
            k
            for k, p in self.pipelines.items()
            if p.input.type == "kafka" and p.input.kafka_topic_id == topic_id
        ]
