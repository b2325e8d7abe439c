"""OptionTradeTimeBars: 1-second OHLCV bars per symbol over option_trades (windows in config.yaml)."""

from tradesignals_dagster.streaming.entry import main
from tradesignals_dagster.streaming.processors.base import BuildContext
from tradesignals_dagster.streaming.processors.time_bars import build_time_bars
from tradesignals_dagster.streaming.windows import EventTimeWindows


def build(ctx: BuildContext) -> EventTimeWindows:
    """The transform: event-time windows (size, grace, late policy) from config.yaml, OHLCV per
    window, state keyed by the pipeline's key field (symbol)."""
    return build_time_bars(ctx)


if __name__ == "__main__":
    main(build)
