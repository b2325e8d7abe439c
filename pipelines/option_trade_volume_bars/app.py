"""OptionTradeVolumeBars: per-symbol volume bars over option_trades (bar size in config.yaml)."""

from tradesignals_dagster.streaming.entry import main
from tradesignals_dagster.streaming.processors.base import BuildContext
from tradesignals_dagster.streaming.processors.volume_bars import VolumeBarAggregator, VolumeBarsConfig


def build(ctx: BuildContext) -> VolumeBarAggregator:
    """The transform: bar_volume/split_trades from config.yaml, prices at the input's scale."""
    return VolumeBarAggregator(VolumeBarsConfig(**ctx.config), price_scale=ctx.decimal_scale("price"))


if __name__ == "__main__":
    main(build)
