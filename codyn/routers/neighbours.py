"""k-nearest-neighbours router (RouterBench's KNN baseline).

A prompt's predicted ranking score per model is the mean target of its k nearest
training prompts (cosine distance between sentence embeddings).
"""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import KNeighborsRegressor

from codyn.errors import InputError
from codyn.routers.base import Router
from codyn.routers.embeddings import MINILM, EmbeddingRouter
from codyn.routing_data import RoutingData


class KnnRouter(EmbeddingRouter, Router):
    type = "knn"
    defaults = {"k": 15, "encoder": MINILM, "weights": "uniform"}

    def _check_data(self, data: RoutingData, where: str) -> None:
        if int(self.params["k"]) < 1:
            raise InputError("k must be >= 1", path=where, field="k")

    def _fit(self, data: RoutingData) -> dict:
        k = min(int(self.params["k"]), len(data))
        self.estimator = KNeighborsRegressor(
            n_neighbors=k, metric="cosine", weights=self.params["weights"]
        )
        x = self._embed(data.prompts)
        self.estimator.fit(x, data.targets)
        train_mse = float(np.mean((self.estimator.predict(x) - data.targets) ** 2))
        return {"k_used": k, "train_mse": train_mse}

    def _predict(self, prompts: list[str]) -> np.ndarray:
        return self.estimator.predict(self._embed(prompts)).reshape(len(prompts), -1)
