"""RoRF (paper 6.1.1; Not-Diamond/RoRF), written here so it runs offline.

A random forest over prompt embeddings predicts one of four labels for a model pair
(A, B), with RoRF's own labelling of the raw scores:

    0  A scores higher than B           2  both score the same, above 0 ("both right")
    1  both score 0 ("both wrong")      3  B scores higher than A

As in RoRF's controller, P(A) = p0 + p1 is the empirical share of trees voting for a
label that sends the prompt to A, and the router picks A when P(A) >= threshold.
Model A is the *more expensive* model of the pair (RoRF's routers are named strong
model first, e.g. llama31405b-llama3170b): the cheaper model B takes the prompts it
wins or that both solve. The paper's two settings are pairs 8B-vs-405B and
70B-vs-405B. Scores: P(A) for A, the threshold for B, -inf for every other model,
so ``route`` picks A exactly when P(A) > threshold (ties go to the cheaper B) and a
positive cost weight shifts calls to B.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import RandomForestClassifier

from codyn.errors import InputError
from codyn.routers.base import Router
from codyn.routers.embeddings import MINILM, EmbeddingRouter
from codyn.routing_data import RoutingData

LABELS = (0, 1, 2, 3)


def pair_labels(score_a: np.ndarray, score_b: np.ndarray) -> np.ndarray:
    """RoRF's four labels from two raw score columns."""
    a, b = np.asarray(score_a, dtype=float), np.asarray(score_b, dtype=float)
    labels = np.where(a > b, 0, 3)
    tie = a == b
    labels = np.where(tie & (a == 0), 1, labels)
    labels = np.where(tie & (a != 0), 2, labels)
    return labels


class RorfRouter(EmbeddingRouter, Router):
    type = "rorf"
    defaults = {
        "pair": None,
        "n_estimators": 200,
        "threshold": 0.5,
        "encoder": MINILM,
        "max_depth": None,
    }

    def _check_data(self, data: RoutingData, where: str) -> None:
        pair = self.params.get("pair")
        if not pair or len(pair) != 2 or pair[0] == pair[1]:
            raise InputError(f"needs two distinct models, got {pair!r}", path=where, field="pair")
        for name in pair:
            if name not in data.models:
                raise InputError(
                    f"pair model {name!r} is not in the split's portfolio {data.models}",
                    path=where,
                    field="pair",
                )
        if not 0.0 <= float(self.params["threshold"]) <= 1.0:
            raise InputError("threshold must be in [0, 1]", path=where, field="threshold")

    def _pair_indices(self) -> tuple[int, int]:
        """(A, B): A the more expensive of the pair."""
        i, j = (self.models.index(name) for name in self.params["pair"])
        return (i, j) if self.costs[i] >= self.costs[j] else (j, i)

    def _fit(self, data: RoutingData) -> dict:
        self.models, self.costs = list(data.models), np.asarray(data.costs, dtype=float)
        a, b = self._pair_indices()
        labels = pair_labels(data.scores[:, a], data.scores[:, b])
        self.estimator = RandomForestClassifier(
            n_estimators=int(self.params["n_estimators"]),
            max_depth=self.params["max_depth"],
            random_state=self.seed,
            n_jobs=1,
        )
        self.estimator.fit(self._embed(data.prompts), labels)
        counts = {int(k): int((labels == k).sum()) for k in LABELS}
        return {"label_counts": counts, "model_a": self.models[a], "model_b": self.models[b]}

    def prob_a(self, prompts: list[str]) -> np.ndarray:
        proba = self.estimator.predict_proba(self._embed(prompts))
        full = np.zeros((len(prompts), len(LABELS)))
        for col, label in enumerate(self.estimator.classes_):
            full[:, int(label)] = proba[:, col]
        return full[:, 0] + full[:, 1]

    def _predict(self, prompts: list[str]) -> np.ndarray:
        a, b = self._pair_indices()
        scores = np.full((len(prompts), len(self.models)), -np.inf)
        scores[:, a] = self.prob_a(prompts)
        scores[:, b] = float(self.params["threshold"])
        return scores
