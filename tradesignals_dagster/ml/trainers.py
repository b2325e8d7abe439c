"""Trainers: the interface a framework plugs in through, and the scikit-learn default.

The asset code only sees :class:`Trainer`: fit on a float matrix and 0/1 labels, give the
probability of class 1, and turn a fitted model into bytes and back. A PyTorch trainer is another
class with the same four members, registered in :data:`TRAINERS`.
"""

from __future__ import annotations

import functools
import io
import pickle
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from tradesignals_dagster.ml.errors import CorruptArtifact, InvalidTrainingInput


class Trainer(Protocol):
    """A model framework: ``name`` and ``kind`` (the Dagster asset kind) plus four methods."""

    name: str
    kind: str

    def fit(self, x: np.ndarray, y: np.ndarray, params: dict[str, Any]) -> Any:
        """A model fitted on ``x`` (rows x features) and ``y`` (0/1)."""
        ...

    def predict_up(self, model: Any, x: np.ndarray) -> np.ndarray:
        """The probability of class 1 for each row of ``x``."""
        ...

    def dumps(self, model: Any) -> bytes:
        """The fitted model as bytes (the artifact)."""
        ...

    def loads(self, data: bytes) -> Any:
        """The model back from :meth:`dumps`' bytes; :class:`CorruptArtifact` when they are not one."""
        ...


@functools.cache
def _thread_controller() -> Any:
    """threadpoolctl's controller, made once: making one scans the loaded libraries (~20 ms)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@functools.lru_cache(maxsize=8)
def _tree_predictor(model: Any) -> Callable[[np.ndarray], np.ndarray] | None:
    """``predict_proba(x)[:, 1]`` of a fitted binary HistGradientBoostingClassifier without the
    per-call overhead that dominates small live batches (input validation, the threadpoolctl
    limit): the same steps as scikit-learn's ``_raw_predict`` (baseline, then each tree's values
    added in order, one thread) and its loss's ``predict_proba``, so the same float64 values.
    None for any other model, or when the private attributes it reads are not there (another
    scikit-learn version): the caller then goes through ``predict_proba``. The unit tests compare
    both paths bit for bit."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    if type(model) is not HistGradientBoostingClassifier:
        return None
    try:
        if model.n_trees_per_iteration_ != 1 or model._preprocessor is not None:
            return None
        known_categories, feature_map = model._bin_mapper.make_known_categories_bitsets()
        trees = [iteration[0] for iteration in model._predictors]
        baseline = model._baseline_prediction
        loss = model._loss
    except AttributeError:
        return None

    def predict(x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float64)
        raw = np.zeros((len(x), 1), dtype=baseline.dtype, order="F")
        raw += baseline
        for tree in trees:
            raw[:, 0] += tree.predict(x, known_categories, feature_map, 1)
        return np.asarray(loss.predict_proba(raw)[:, 1], dtype=np.float64)

    return predict


class SklearnTrainer:
    """scikit-learn: ``params.model`` is ``gradient_boosting`` (HistGradientBoostingClassifier, the
    default: fast on millions of rows) or ``logistic`` (scaled logistic regression); the other
    params go to the estimator."""

    name = "sklearn"
    kind = "scikit-learn"

    def _estimator(self, params: dict[str, Any]) -> Any:
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        rest = {k: v for k, v in params.items() if k != "model"}
        kind = params.get("model", "gradient_boosting")
        try:
            if kind == "gradient_boosting":
                defaults = {"max_iter": 100, "learning_rate": 0.1, "max_leaf_nodes": 15, "random_state": 0}
                return HistGradientBoostingClassifier(**{**defaults, **rest})
            if kind == "logistic":
                return make_pipeline(StandardScaler(), LogisticRegression(**{"max_iter": 200, **rest}))
        except TypeError as exc:
            raise InvalidTrainingInput(f"params: {exc}") from exc
        raise InvalidTrainingInput(f"params.model '{kind}' is neither gradient_boosting nor logistic")

    def fit(self, x: np.ndarray, y: np.ndarray, params: dict[str, Any]) -> Any:
        """Fit the estimator ``params`` name; one class only in ``y`` is an input error."""
        if len(np.unique(y)) < 2:
            raise InvalidTrainingInput("the training rows hold one class only; nothing to learn")
        estimator = self._estimator(params)
        try:
            estimator.fit(x, y)
        except (TypeError, ValueError) as exc:
            raise InvalidTrainingInput(f"params rejected by scikit-learn: {exc}") from exc
        return estimator

    def predict_up(self, model: Any, x: np.ndarray) -> np.ndarray:
        """Column 1 of ``predict_proba`` (the same values, through :func:`_tree_predictor` for a
        gradient-boosting model)."""
        if len(x) == 0:
            return np.zeros(0)
        fast = _tree_predictor(model)
        if fast is not None and x.ndim == 2 and x.shape[1] == model.n_features_in_:
            return fast(x)
        # One thread: scoring batches are small, and OpenMP workers spinning on a busy machine
        # cost more than they save (measured: predict 10x slower under load with the default).
        with _thread_controller().limit(limits=1, user_api="openmp"):
            return np.asarray(model.predict_proba(x)[:, 1], dtype=np.float64)

    def dumps(self, model: Any) -> bytes:
        """Pickle (the artifact store is trusted and checksummed; see :mod:`ml.store`)."""
        return pickle.dumps(model, protocol=5)

    def loads(self, data: bytes) -> Any:
        """Unpickle, refusing anything that is not a fitted classifier."""
        try:
            model = pickle.load(io.BytesIO(data))
        except Exception as exc:
            raise CorruptArtifact(f"the artifact cannot be loaded ({type(exc).__name__}: {exc})") from exc
        if not hasattr(model, "predict_proba"):
            raise CorruptArtifact(f"the artifact holds a {type(model).__name__}, not a classifier")
        return model


TRAINERS: dict[str, type[SklearnTrainer]] = {"sklearn": SklearnTrainer}


def trainer_for(name: str) -> Trainer:
    """The trainer registered as ``name``."""
    cls = TRAINERS.get(name)
    if cls is None:
        raise InvalidTrainingInput(f"unknown trainer '{name}' (trainers: {', '.join(TRAINERS)})")
    return cls()
