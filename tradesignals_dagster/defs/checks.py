"""Asset checks: live state still matches the registry (drift), and pipelines are healthy."""

import dagster as dg

from tradesignals_dagster.control.inspect import consumer_lag
from tradesignals_dagster.defs.keys import pipeline_key, schema_key, topic_key
from tradesignals_dagster.defs.resources import TradesignalsResource
from tradesignals_dagster.deploy.compose import compose_file_of, service_drift
from tradesignals_dagster.deploy.health import assess
from tradesignals_dagster.errors import TradesignalsError
from tradesignals_dagster.kafka.replication import replication_health
from tradesignals_dagster.registry.models import StreamingApplication

DEFAULT_MAX_LAG = 10_000


def drift(
    tradesignals: TradesignalsResource, topics: set[str] | None = None, subjects: set[str] | None = None
) -> dg.AssetCheckResult:
    """Passes when planning these topics/subjects finds nothing to change or report."""
    try:
        plan = tradesignals.control().plan(tradesignals.app(), topics=topics, subjects=subjects)
    except TradesignalsError as exc:
        return dg.AssetCheckResult(passed=False, metadata={"error": str(exc)})
    found = [c.summary for c in plan.changes] + [
        n.summary for n in plan.notices if n.kind != "reset_on_start"
    ]
    return dg.AssetCheckResult(passed=not found, metadata={"drift": found})


def _topic_check(topic_id: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=topic_key(topic_id),
        name="matches_registry",
        description="The live topic has the partitions and configs the registry sets.",
    )
    def _check(tradesignals: TradesignalsResource) -> dg.AssetCheckResult:
        return drift(tradesignals, topics={topic_id})

    return _check


def _replication_check(topic_id: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=topic_key(topic_id),
        name="in_sync_replicas",
        description="Every partition has a leader and at least min.insync.replicas in-sync replicas "
        "(otherwise producers with acks=all are refused); under-replication is reported.",
    )
    def _check(tradesignals: TradesignalsResource) -> dg.AssetCheckResult:
        try:
            found = replication_health(tradesignals.control().admin, {topic_id}).get(topic_id)
        except TradesignalsError as exc:
            return dg.AssetCheckResult(passed=False, metadata={"error": str(exc)})
        if found is None:
            return dg.AssetCheckResult(passed=False, metadata={"error": f"topic {topic_id} does not exist"})
        return dg.AssetCheckResult(
            passed=found.writable,
            severity=dg.AssetCheckSeverity.ERROR if found.offline else dg.AssetCheckSeverity.WARN,
            metadata={
                "summary": found.summary(),
                "min_isr": found.min_isr,
                "smallest_isr": found.smallest_isr,
                "under_replicated_partitions": len(found.under_replicated),
                "below_min_isr_partitions": len(found.below_min_isr),
                "offline_partitions": len(found.offline),
                "live_brokers": found.live_brokers,
            },
        )

    return _check


def _schema_check(subject: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=schema_key(subject),
        name="registered_is_registry",
        description="The subject's latest version is the registry's schema.",
    )
    def _check(tradesignals: TradesignalsResource) -> dg.AssetCheckResult:
        return drift(tradesignals, subjects={subject})

    return _check


def _pipeline_check(app: StreamingApplication, key: str) -> dg.AssetChecksDefinition:
    max_lag = int(app.pipelines[key].config.get("max_lag", DEFAULT_MAX_LAG))

    @dg.asset_check(
        asset=pipeline_key(key),
        name="running_and_caught_up",
        description=f"The pipeline runs and its consumer lag is under {max_lag}.",
    )
    def _check(tradesignals: TradesignalsResource) -> dg.AssetCheckResult:
        try:
            status = tradesignals.runtime().status(key)
            lag = consumer_lag(tradesignals.control(), tradesignals.app(), key)
        except TradesignalsError as exc:
            return dg.AssetCheckResult(passed=False, metadata={"error": str(exc)})
        settings = tradesignals.settings()
        metrics = tradesignals.runtime().metrics(key) if status.running else {}
        health = assess(status, lag, metrics, settings.stall_after_s)
        passed = health.state == "running" and (lag is None or lag <= max_lag)
        return dg.AssetCheckResult(
            passed=passed,
            metadata={
                "state": health.state,
                "reason": health.reason,
                "consumer_lag": -1 if lag is None else lag,
                "max_lag": max_lag,
                "detail": status.detail[-500:],
            },
        )

    return _check


def _compose_check(key: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=pipeline_key(key),
        name="compose_service_current",
        description="The committed docker-compose.yaml (beside the registry) runs this pipeline as the "
        "registry says (image, config, limits, replicas); passes when no Compose file is committed.",
    )
    def _check(tradesignals: TradesignalsResource) -> dg.AssetCheckResult:
        settings = tradesignals.settings()
        path = compose_file_of(settings)
        if not path.exists():
            return dg.AssetCheckResult(passed=True, metadata={"compose_file": f"none at {path}"})
        try:
            diff = service_drift(tradesignals.app(), settings, key, path)
        except TradesignalsError as exc:
            return dg.AssetCheckResult(passed=False, metadata={"error": str(exc)})
        return dg.AssetCheckResult(
            passed=not diff,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "compose_file": str(path),
                "diff": dg.MetadataValue.md("```diff\n" + "\n".join(diff) + "\n```") if diff else "matches",
            },
        )

    return _check


def build_checks(app: StreamingApplication) -> list[dg.AssetChecksDefinition]:
    """One drift check per topic and schema, one replication check per topic, one health check
    per pipeline."""
    return (
        [_schema_check(app.subjects[t]) for t in sorted(app.schemas)]
        + [_topic_check(t) for t in sorted(app.topics)]
        + [_replication_check(t) for t in sorted(app.topics)]
        + [_pipeline_check(app, k) for k in sorted(app.pipelines)]
        + [_compose_check(k) for k in sorted(app.pipelines)]
    )
