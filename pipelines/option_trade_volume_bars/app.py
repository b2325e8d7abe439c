"""OptionTradeVolumeBars: per-symbol volume bars over option_trades (bar size in config.yaml)."""

from tradesignals_dagster.streaming.entry import main
from tradesignals_dagster.streaming.processors.base import BuildContext
from tradesignals_dagster.streaming.processors.volume_bars import VolumeBarAggregator, VolumeBarsConfig


def build(ctx: BuildContext) -> VolumeBarAggregator:
    """The transform: bar_volume/split_trades from config.yaml, prices at the input's scale, state
    keyed by the pipeline's key field (runtime.key_field, default symbol)."""
    key_field = ctx.key_field or "symbol"
    ctx.require_field(key_field, "runtime.key_field")
    config = VolumeBarsConfig(**ctx.config)
    return VolumeBarAggregator(config, price_scale=ctx.decimal_scale("price"), key_field=key_field)


if __name__ == "__main__":
    main(build)
