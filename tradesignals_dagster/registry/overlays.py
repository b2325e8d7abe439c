"""Environment overlays: one registry, and per environment only what differs.

``<registry>/environments/<env>.yaml`` overrides sizing and tuning of entries the registry
declares - partitions, replication, min ISR, retention, table TTLs, images and resources,
pipeline config values - and nothing structural: an overlay cannot add a topic, a pipeline or a
table, rewire an input or an output, or change a schema. Every problem names the overlay's
file, line and key. Connection settings (brokers, URLs, credentials) never live here: they come
from the environment (``.env.<env>`` or variables), see :mod:`tradesignals_dagster.settings`.

Example ``environments/production.yaml``::

    Topics:
      option_trades: {num_partitions: 12, replication_factor: 3, min_insync_replicas: 2}
    Pipelines:
      option_trade_volume_bars:
        config: {bar_volume: 1000}
        docker: {image: tradesignals/volume_bars:1.4.2, cpus: 1, replicas: 2}
    Tables:
      option_trades_aggs: {ttl_days: 730}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from tradesignals_dagster.registry.context import LoadContext, Located, kind_of
from tradesignals_dagster.registry.normalise import suggest
from tradesignals_dagster.registry.yamlsource import YamlDoc, read_yaml

OVERLAY_DIR = "environments"

#: what an overlay may set, per section; everything else is structure and stays in the registry
OVERRIDABLE: dict[str, frozenset[str]] = {
    "Topics": frozenset(
        {
            "num_partitions",
            "replication_factor",
            "min_insync_replicas",
            "retention_ms",
            "retention_bytes",
            "configs",
        }
    ),
    "Pipelines": frozenset({"config", "docker", "log_level"}),
    "Tables": frozenset({"ttl_days", "freshness_s", "engine", "sink"}),
}
_KIND = {"Topics": "topic", "Pipelines": "pipeline", "Tables": "table"}


def known_environments(base_dir: Path) -> list[str]:
    """The environments that have an overlay file under ``<registry>/environments/``."""
    folder = base_dir / OVERLAY_DIR
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.yaml") if p.is_file())


def apply_overlay(
    base_dir: Path, env: str, default_env: str, entries: dict[str, dict[str, BaseModel]], ctx: LoadContext
) -> None:
    """Replace the models in ``entries`` (by section) with the overlay of ``env`` applied.

    No overlay file is fine for the registry's own ``environment`` (the registry is that
    environment as written); for any other name it is an error listing the known ones.
    """
    path = base_dir / OVERLAY_DIR / f"{env}.yaml"
    known = known_environments(base_dir)
    if env not in known:
        if env != default_env:
            choices = ", ".join(sorted({*known, default_env}))
            ctx.add(
                f"{base_dir.name}/{OVERLAY_DIR}",
                (),
                f"unknown environment '{env}' (known: {choices}){suggest(env, known)}",
            )
        return
    doc = read_yaml(path, ctx.problems, base_dir)
    if doc is None:
        return
    if not isinstance(doc.data, dict):
        ctx.add(doc, (), f"an overlay must be a mapping of Topics/Pipelines/Tables, got {kind_of(doc.data)}")
        return
    for section, value in doc.data.items():
        if section not in OVERRIDABLE:
            ctx.add(
                doc,
                (section,),
                f"unknown section '{section}' in an overlay (allowed: {', '.join(OVERRIDABLE)})"
                + suggest(section, list(OVERRIDABLE)),
            )
            continue
        if value is None:
            continue
        if not isinstance(value, dict):
            ctx.add(doc, (section,), f"must map {_KIND[section]} ids to overrides, got {kind_of(value)}")
            continue
        for key, overrides in value.items():
            _override(doc, section, str(key), overrides, entries.setdefault(section, {}), ctx)


def _override(
    doc: YamlDoc, section: str, key: str, overrides: Any, models: dict[str, BaseModel], ctx: LoadContext
) -> None:
    kind, at = _KIND[section], (section, key)
    if key not in models:
        ctx.add(
            doc,
            at,
            f"the overlay names {kind} '{key}', which the registry does not declare; an overlay can only "
            f"change what the registry has{suggest(key, list(models))}",
        )
        return
    if not isinstance(overrides, dict):
        ctx.add(doc, at, f"overrides of {kind} '{key}' must be a mapping, got {kind_of(overrides)}")
        return
    allowed = OVERRIDABLE[section]
    bad = [k for k in overrides if k not in allowed]
    for name in bad:
        ctx.add(
            doc,
            (*at, name),
            f"'{name}' cannot be set per environment (an overlay may set: {', '.join(sorted(allowed))})"
            + suggest(name, sorted(allowed)),
        )
    if bad:
        return
    model = models[key]
    data = model.model_dump()
    for name, value in overrides.items():
        if name == "config" and isinstance(value, dict):
            data["config"] = _merge(data.get("config") or {}, value)
        elif isinstance(value, dict) and isinstance(data.get(name), dict):
            data[name] = {**data[name], **value}
        else:
            data[name] = value
    try:
        models[key] = type(model).model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(str(p) for p in error["loc"])
            ctx.add(doc, (*at, *loc), str(error["msg"]))
        return
    ctx.places[f"{kind}:{key}"] = Located(doc, at)


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``, one level deep for nested sections such as ``runtime``."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out
