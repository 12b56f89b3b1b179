"""Per-model probabilistic linear router over prompt embeddings (ours, not the paper's).

For every model a logistic regression predicts the expected raw score of that model on
the prompt (scores in [0, 1]; fractional scores such as pass@1 are fitted as weighted
successes and failures). Scores outside [0, 1] (e.g. SVEN with the bias penalty) get a
ridge regression instead. The prediction is ``E[score] + lambda2 * CS^-1``: expected
quality plus the setting's affordability term, in the units of raw scores.

Why: on the real matrices (benchmarks/NOTES.md) regressing per-model standard-scaled
ranking scores inflates weak models' rare successes, and a distance-weighted kNN is
noisy with a few hundred prompts; a calibrated per-model probability on the same
embeddings ranks prompts by predicted advantage far better. ``C`` is the inverse
regularisation strength (scikit-learn's).
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge

from codyn.errors import InputError
from codyn.ranking import affordability
from codyn.routers.base import Router
from codyn.routers.embeddings import MINILM, EmbeddingRouter
from codyn.routing_data import RoutingData


class _Constant:
    """A model whose training scores never vary: predict that value."""

    def __init__(self, value: float):
        self.value = float(value)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.full(len(x), self.value)


class LinearRouter(EmbeddingRouter, Router):
    type = "linear"
    defaults = {"C": 1.0, "alpha": 1.0, "encoder": MINILM, "max_iter": 2000}

    def _check_data(self, data: RoutingData, where: str) -> None:
        if float(self.params["C"]) <= 0:
            raise InputError("C must be > 0", path=where, field="C")

    def _fit_one(self, x: np.ndarray, y: np.ndarray):
        if np.allclose(y, y[0]):
            return _Constant(y[0])
        if y.min() >= 0.0 and y.max() <= 1.0:
            clf = LogisticRegression(
                C=float(self.params["C"]), max_iter=int(self.params["max_iter"])
            )
            # weighted successes and failures: the MLE for fractional scores too
            xx = np.vstack([x, x])
            yy = np.r_[np.ones(len(y)), np.zeros(len(y))]
            ww = np.r_[y, 1.0 - y]
            keep = ww > 0
            clf.fit(xx[keep], yy[keep], sample_weight=ww[keep])
            return clf
        return Ridge(alpha=float(self.params["alpha"])).fit(x, y)

    @staticmethod
    def _expected(model, x: np.ndarray) -> np.ndarray:
        if isinstance(model, LogisticRegression):
            return model.predict_proba(x)[:, list(model.classes_).index(1.0)]
        return model.predict(x)

    def _fit(self, data: RoutingData) -> dict:
        x = self._embed(data.prompts)
        self.estimator = [self._fit_one(x, data.scores[:, j]) for j in range(len(data.models))]
        pred = self._expected_all(x)
        return {"train_mse_raw": float(np.mean((pred - data.scores) ** 2))}

    def _expected_all(self, x: np.ndarray) -> np.ndarray:
        return np.column_stack([self._expected(m, x) for m in self.estimator])

    def _predict(self, prompts: list[str]) -> np.ndarray:
        expected = self._expected_all(self._embed(prompts))
        return expected + self.lambda2 * affordability(self.costs)[None, :]
