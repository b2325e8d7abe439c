"""The volume-bars job written with Quix Streams, for the framework comparison.

* input: the same pre-loaded ``option_trades`` topic, its own consumer group;
* decode/encode, two variants: ``product`` = custom Quix (de)serializers wrapping the
  product's fastavro-based :class:`~tradesignals_dagster.kafka.serde.AvroSerde` (Confluent
  wire format, scaled-int decimals), so both sides pay exactly the same Avro cost and the
  comparison is the framework alone (per-message loop, state store, checkpointing);
  ``quix`` = Quix's own ``AvroDeserializer``/``AvroSerializer`` on the schema registry
  (Confluent's serde over fastavro: ``Decimal`` prices, ``datetime`` times), converted to
  exact integers for the bar logic and back, i.e. the job as a Quix user would write it;
* bars: a stateful ``apply`` using Quix's own state (RocksDB + changelog topic, one JSON
  document per symbol = message key), implementing the processor's default convention
  (``split_trades: false``: the crossing trade closes the bar whole); the bar count is checked
  against the product's for the same trades;
* output: Avro bars keyed by symbol to a bench topic.

Client settings are aligned with the runtime where Quix allows it (fetch sizes, lz4, linger
5 ms, idempotent acks=all producer); Quix keeps its own commit schedule (a checkpoint every
5 s: producer flush + offset commit + state flush), its default.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.streaming_kafka import BARS, BARS_PIPELINE, TRADES, Bench


def quix_settings() -> tuple[dict[str, Any], dict[str, Any]]:
    """Consumer and producer settings given to Quix (the runtime's, where they apply)."""
    consumer = {
        "queued.min.messages": 500_000,
        "max.partition.fetch.bytes": 8 * 1024 * 1024,
        "fetch.max.bytes": 64 * 1024 * 1024,
        "fetch.wait.max.ms": 50,
    }
    producer = {
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        "batch.num.messages": 10_000,
    }
    return consumer, producer


def bar_function(bar_volume: int, price_scale: int) -> Callable[[dict[str, Any], Any], list[dict[str, Any]]]:
    """The stateful Quix callback: one trade in, the bars it closed out (0 or 1)."""
    factor = 10**price_scale

    def bars(trade: dict[str, Any], state: Any) -> list[dict[str, Any]]:
        st = state.get("bar")
        if st is None:
            st = {"seq": 0, "count": 0, "volume": 0, "notional": 0}
        price, size, ts = trade["price"], trade["size"], trade["timestamp"]
        if size < 0:
            raise ValueError(f"size {size} is negative")
        volume = st["volume"] + size
        if st["count"]:
            if price > st["high"]:
                st["high"] = price
            elif price < st["low"]:
                st["low"] = price
            st["notional"] += price * size
            st["count"] += 1
        else:
            st["start_ts"] = ts
            st["open"] = st["high"] = st["low"] = price
            st["notional"] = price * size
            st["count"] = 1
        st["volume"] = volume
        st["close"] = price
        st["ts"] = ts
        st["oi"] = trade["oi"]
        out = []
        if volume >= bar_volume:
            out.append(
                {
                    "symbol": trade["symbol"],
                    "sequence": st["seq"],
                    "start_timestamp": st["start_ts"],
                    "timestamp": ts,
                    "open": st["open"],
                    "high": st["high"],
                    "low": st["low"],
                    "close": price,
                    "volume": volume,
                    "vwap": st["notional"] / (volume * factor),
                    "trade_count": st["count"],
                    "oi": st["oi"],
                    "price": price,
                }
            )
            st["seq"] += 1
            st["count"] = st["volume"] = st["notional"] = 0
        state.set("bar", st)
        return out

    return bars


def _product_serdes(bench: Bench) -> tuple[Any, Any]:
    """Quix (de)serializers wrapping the product's AvroSerde (scaled-int decimals, int times)."""
    from quixstreams.models.serializers import Deserializer, Serializer

    in_serde, out_serde = bench.serde(TRADES), bench.serde(BARS)

    class TradeDeserializer(Deserializer):
        def __call__(self, value: bytes, ctx: Any) -> Any:
            return in_serde.decode(value)

    class BarSerializer(Serializer):
        def __call__(self, value: Any, ctx: Any) -> bytes:
            return out_serde.encode(value)

    return TradeDeserializer(), BarSerializer()


def _quix_serdes(bench: Bench) -> tuple[Any, Any]:
    """Quix's own Avro (de)serializers on the schema registry (Confluent's, over fastavro):
    decimals come as ``Decimal`` and timestamps as ``datetime``, bars go out the same way."""
    from quixstreams.models.serializers.avro import AvroDeserializer, AvroSerializer
    from quixstreams.models.serializers.schema_registry import (
        SchemaRegistryClientConfig,
        SchemaRegistrySerializationConfig,
    )

    client = SchemaRegistryClientConfig(url=bench.settings.resolved_schema_registry_url())
    subject = bench.app.subjects[BARS]  # the bars' registered schema, whatever the bench topic
    ser_conf = SchemaRegistrySerializationConfig(
        auto_register_schemas=False,
        use_latest_version=True,
        subject_name_strategy=lambda ctx, record_name: subject,
    )
    return (
        AvroDeserializer(bench.app.schemas[TRADES], schema_registry_client_config=client),
        AvroSerializer(
            bench.app.schemas[BARS],
            schema_registry_client_config=client,
            schema_registry_serialization_config=ser_conf,
        ),
    )


def _to_exact(scale: int) -> tuple[Callable[[dict[str, Any]], dict[str, Any]], Callable[..., Any]]:
    """For Quix's own Avro serde: trades to scaled-int prices and epoch-ms times (exact sums,
    JSON-serializable state), and bars back to ``Decimal`` prices."""
    import datetime as dt
    import decimal

    epoch, ms = dt.datetime(1970, 1, 1, tzinfo=dt.UTC), dt.timedelta(milliseconds=1)
    dec = decimal.Decimal

    def trade_in(trade: dict[str, Any]) -> dict[str, Any]:
        trade["price"] = int(trade["price"].scaleb(scale))
        trade["timestamp"] = (trade["timestamp"] - epoch) // ms
        return trade

    def bar_out(bar: dict[str, Any]) -> dict[str, Any]:
        for name in ("open", "high", "low", "close", "price"):
            bar[name] = dec(bar[name]).scaleb(-scale)
        return bar

    return trade_in, bar_out


def run_quix(
    bench: Bench,
    count: int,
    out_topic: str,
    *,
    serde: str = "product",
    warmup: int = 10_000,
) -> dict[str, Any]:
    """Run the Quix job over the first ``count`` trades; rate excludes the first ``warmup``.

    ``serde`` is ``product`` (the product's AvroSerde inside Quix (de)serializers, the
    framework-only comparison) or ``quix`` (Quix's own schema-registry Avro serde, plus the
    conversions to exact integers the bar logic needs).

    Timing: from the moment the ``warmup``-th message was processed to the end of the final
    forced checkpoint (bars flushed, offsets committed), the same span the product's figure
    covers (its first checkpoint left out, its last commit included).
    """
    from quixstreams import Application

    deserializer, serializer = _product_serdes(bench) if serde == "product" else _quix_serdes(bench)

    consumer_conf, producer_conf = quix_settings()
    processed = 0
    marks: dict[str, float] = {}
    app: Any = None

    def on_processed(topic: str, partition: int, offset: int) -> None:
        nonlocal processed
        processed += 1
        if processed == warmup:
            marks["warm"] = time.perf_counter()
        if processed >= count:
            marks["last"] = time.perf_counter()
            app.stop()

    bars_out = 0

    def count_bars(bar: dict[str, Any]) -> None:
        nonlocal bars_out
        bars_out += 1

    app = Application(
        broker_address=bench.settings.resolved_bootstrap_servers(),
        consumer_group=f"bench-quix-{serde}",
        auto_offset_reset="earliest",
        state_dir=str(Path(bench.tmp) / f"quix-state-{serde}"),
        consumer_extra_config=consumer_conf,
        producer_extra_config=producer_conf,
        on_message_processed=on_processed,
        loglevel=logging.WARNING,
    )
    ctx = app._processing_context  # instrumentation only: time the final checkpoint
    original_commit = ctx.commit_checkpoint

    def timed_commit(force: bool = False, revoking: bool = False) -> None:
        original_commit(force=force, revoking=revoking)
        if force and "last" in marks and "end" not in marks:
            marks["end"] = time.perf_counter()

    ctx.commit_checkpoint = timed_commit
    config = bench.app.pipelines[BARS_PIPELINE].config
    scale = next(
        int(f["type"].get("scale", 0))
        for f in bench.app.schemas[TRADES]["fields"]
        if f["name"] == "price" and isinstance(f["type"], dict)
    )
    trades = app.topic(TRADES, value_deserializer=deserializer, key_deserializer="bytes")
    bars = app.topic(out_topic, value_serializer=serializer, key_serializer="bytes")
    sdf = app.dataframe(trades)
    trade_in, bar_out = _to_exact(scale)
    if serde != "product":
        sdf = sdf.apply(trade_in)
    sdf = sdf.apply(bar_function(int(config["bar_volume"]), scale), stateful=True, expand=True)
    sdf = sdf.update(count_bars)
    if serde != "product":
        sdf = sdf.apply(bar_out)
    sdf.to_topic(bars)
    started = time.perf_counter()
    app.run()
    returned = time.perf_counter()
    end = marks.get("end", returned)
    return {
        "rate": (count - warmup) / (end - marks["warm"]),
        "seconds": end - marks["warm"],
        "processed": processed,
        "bars": bars_out,
        "total_seconds": returned - started,
    }
