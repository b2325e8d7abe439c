"""Evaluation on a time-ordered hold-out against naive baselines.

Rows are never shuffled: the newest ``holdout_fraction`` of rows by bar end time is the test set,
and every training row ends no later than the first test row. Two baselines, both fitted on the
training rows only: the majority class (a constant probability, the training up-rate) and "same
direction as the last bar" (the training up-rate after an up bar, resp. after a flat/down bar).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tradesignals_dagster.ml.errors import InvalidTrainingInput

EPS = 1e-15


def time_split(timestamps: np.ndarray, holdout_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training rows and the hold-out rows: the hold-out is every row strictly
    later than the training cut (ties stay on the training side, so no test row precedes a
    training row). Raises when either side would be empty."""
    n = len(timestamps)
    order = np.argsort(timestamps, kind="stable")
    n_train = max(1, round(n * (1.0 - holdout_fraction)))
    if n < 2 or n_train >= n:
        raise InvalidTrainingInput(
            f"{n} labelled rows are too few to hold out {holdout_fraction:.0%} of them"
        )
    cut = timestamps[order[n_train - 1]]
    train = order[timestamps[order] <= cut]
    test = order[timestamps[order] > cut]
    if len(test) == 0:
        raise InvalidTrainingInput("every labelled row has the same time; no later rows to hold out")
    return train, test


def metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
    """Accuracy (threshold 0.5), log loss and AUC (None when ``y`` holds one class)."""
    from sklearn.metrics import roc_auc_score

    p = np.clip(p.astype(np.float64), EPS, 1 - EPS)
    acc = float(np.mean((p >= 0.5) == (y == 1)))
    loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    auc = float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else None
    return {"accuracy": acc, "log_loss": loss, "auc": auc}


@dataclass
class Evaluation:
    """Hold-out metrics of the model and the baselines, and whether the model beats them."""

    model: dict[str, float | None]
    majority: dict[str, float | None]
    last_direction: dict[str, float | None]
    passed: bool
    reason: str
    rows: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """For the model card."""
        return {
            "model": self.model,
            "baseline_majority": self.majority,
            "baseline_last_direction": self.last_direction,
            "passed": self.passed,
            "reason": self.reason,
            "rows": self.rows,
        }


def evaluate(
    y_train: np.ndarray,
    y_test: np.ndarray,
    p_test: np.ndarray,
    last_train: np.ndarray,
    last_test: np.ndarray,
    min_improvement: float = 0.0,
) -> Evaluation:
    """Compare the model's hold-out probabilities ``p_test`` with both baselines. It passes when
    its accuracy exceeds the best baseline's by more than ``min_improvement`` and its log loss is
    below the majority baseline's (a better-calibrated guess than the up-rate)."""
    rate = float(np.mean(y_train))
    majority = metrics(y_test, np.full(len(y_test), rate))
    up_after_up = y_train[last_train > 0]
    up_after_other = y_train[last_train <= 0]
    p_up = float(np.mean(up_after_up)) if len(up_after_up) else rate
    p_other = float(np.mean(up_after_other)) if len(up_after_other) else rate
    last = metrics(y_test, np.where(last_test > 0, p_up, p_other))
    model = metrics(y_test, p_test)
    best = max(float(majority["accuracy"] or 0), float(last["accuracy"] or 0))
    acc = float(model["accuracy"] or 0)
    if acc <= best + min_improvement:
        passed, reason = (
            False,
            f"accuracy {acc:.4f} does not beat the best baseline {best:.4f} by > {min_improvement}",
        )
    elif float(model["log_loss"] or 0) >= float(majority["log_loss"] or 0):
        passed, reason = (
            False,
            (
                f"log loss {model['log_loss']:.4f} is not below the majority baseline's "
                f"{majority['log_loss']:.4f}"
            ),
        )
    else:
        passed, reason = True, f"accuracy {acc:.4f} > best baseline {best:.4f}; log loss below the baseline's"
    rows = {"train": len(y_train), "holdout": len(y_test)}
    return Evaluation(model, majority, last, passed, reason, rows)
