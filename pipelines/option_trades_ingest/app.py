"""OptionTradesIngest: the market feed (registry input: websocket, replay or synthetic) to option_trades."""

from tradesignals_dagster.streaming.entry import main
from tradesignals_dagster.streaming.processors.base import BuildContext
from tradesignals_dagster.streaming.processors.passthrough import PassthroughProcessor


def build(ctx: BuildContext) -> PassthroughProcessor:
    """The runtime already turns feed messages into option_trades records: pass them on."""
    return PassthroughProcessor()


if __name__ == "__main__":
    main(build)
