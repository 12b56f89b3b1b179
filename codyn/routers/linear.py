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

``header`` (auto | true | false): also use the metadata of a ``key: value | ...`` first
line (codyn.routers.header) as features next to the embedding; ``auto`` uses it when the
training prompts carry one. The header columns are multiplied by ``header_weight`` so a
few metadata columns are not regularised away next to 384 embedding dimensions.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge

from codyn.errors import InputError
from codyn.ranking import ranking_score
from codyn.routers.base import Router
from codyn.routers.embeddings import MINILM, EmbeddingRouter
from codyn.routers.header import HeaderFeatures
from codyn.routing_data import RoutingData


class _Constant:
    """A model whose training scores never vary: predict that value."""

    def __init__(self, value: float):
        self.value = float(value)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.full(len(x), self.value)


class LinearRouter(EmbeddingRouter, Router):
    type = "linear"
    defaults = {
        "C": 1.0,
        "alpha": 1.0,
        "encoder": MINILM,
        "max_iter": 2000,
        "header": "auto",
        "header_weight": 3.0,
    }

    def _check_data(self, data: RoutingData, where: str) -> None:
        if float(self.params["C"]) <= 0:
            raise InputError("C must be > 0", path=where, field="C")
        if str(self.params["header"]).lower() not in ("auto", "true", "false"):
            raise InputError(
                f"header must be auto, true or false, not {self.params['header']!r}",
                path=where,
                field="header",
            )

    def _features(self, prompts: list[str]) -> np.ndarray:
        x = self._embed(prompts)
        header = self.estimator.get("header")
        if header is None:
            return x
        weight = float(self.params["header_weight"])
        return np.hstack([x, weight * header.transform(prompts)])

    def _fit(self, data: RoutingData) -> dict:
        use = str(self.params["header"]).lower()
        header = None
        if use != "false":
            header = HeaderFeatures().fit(data.prompts)
            if header.n_features == 0:
                if use == "true":
                    raise InputError(
                        "header: true, but the training prompts have no 'key: value | ...' "
                        "first line",
                        field="header",
                    )
                header = None
        self.estimator = {"header": header, "per_model": []}
        x = self._features(data.prompts)
        self.estimator["per_model"] = [
            fit_expected_score(x, data.scores[:, j], C=float(self.params["C"]),
                               alpha=float(self.params["alpha"]),
                               max_iter=int(self.params["max_iter"]))
            for j in range(len(data.models))
        ]  # fmt: skip
        pred = expected_scores(self.estimator["per_model"], x)
        return {
            "train_mse_raw": float(np.mean((pred - data.scores) ** 2)),
            "header_features": header.describe() if header else None,
        }

    def _load_weights(self, directory) -> None:
        super()._load_weights(directory)
        if not isinstance(self.estimator, dict) or "per_model" not in self.estimator:
            raise InputError(
                "not a linear router's weights (saved by an older codyn?)",
                path=directory / self.WEIGHTS,
            )

    def _predict(self, prompts: list[str]) -> np.ndarray:
        expected = expected_scores(self.estimator["per_model"], self._features(prompts))
        return ranking_score(expected, self.costs, lambda2=self.lambda2)


def fit_expected_score(
    x: np.ndarray,
    y: np.ndarray,
    C: float,
    alpha: float,
    max_iter: int,
    fit_intercept: bool = True,
):
    """A model of one LLM's expected raw score on a prompt's features.

    Scores in [0, 1]: logistic regression, fitted on weighted successes and failures
    (the MLE for fractional scores such as pass@1 too). Other ranges: ridge regression.
    Constant scores: that constant.
    """
    if np.allclose(y, y[0]):
        return _Constant(y[0])
    if y.min() >= 0.0 and y.max() <= 1.0:
        clf = LogisticRegression(C=C, max_iter=max_iter, fit_intercept=fit_intercept)
        xx = np.vstack([x, x])
        yy = np.r_[np.ones(len(y)), np.zeros(len(y))]
        ww = np.r_[y, 1.0 - y]
        keep = ww > 0
        clf.fit(xx[keep], yy[keep], sample_weight=ww[keep])
        return clf
    return Ridge(alpha=alpha, fit_intercept=fit_intercept).fit(x, y)


def expected_scores(models: list, x: np.ndarray) -> np.ndarray:
    """(n, m) expected score of every model from :func:`fit_expected_score`."""
    cols = []
    for model in models:
        if isinstance(model, LogisticRegression):
            cols.append(model.predict_proba(x)[:, list(model.classes_).index(1.0)])
        else:
            cols.append(model.predict(x))
    return np.column_stack(cols)
