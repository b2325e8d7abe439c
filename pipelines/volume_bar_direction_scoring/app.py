"""VolumeBarDirectionScoring: the promoted volume_bar_direction model scores each volume bar."""

import os

from tradesignals_dagster.ml.scoring import BarScorer, ScoringConfig, load_promoted
from tradesignals_dagster.settings import load_settings
from tradesignals_dagster.streaming.entry import main
from tradesignals_dagster.streaming.processors.base import BuildContext


def build(ctx: BuildContext) -> BarScorer:
    """The transform: the model named in config.yaml, at the version the deploy pinned
    (TRADESIGNALS_MODEL_VERSION, else the promoted one), prices at the input's scale."""
    config = ScoringConfig(**ctx.config)
    model = load_promoted(config.model_id, load_settings(), os.environ.get("TRADESIGNALS_MODEL_VERSION"))
    return BarScorer(model, price_scale=ctx.decimal_scale("close"))


if __name__ == "__main__":
    main(build)
