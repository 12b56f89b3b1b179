"""Multi-layer perceptron router (RouterBench's MLP baseline).

Regresses the ranking score of every model from the prompt's sentence embedding
(one network, one output per model, squared error).
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPRegressor

from codyn.routers.base import Router
from codyn.routers.embeddings import MINILM, EmbeddingRouter
from codyn.routing_data import RoutingData


class MlpRouter(EmbeddingRouter, Router):
    type = "mlp"
    defaults = {"hidden": 128, "encoder": MINILM, "max_iter": 300, "alpha": 1e-3, "lr": 1e-3}

    def _fit(self, data: RoutingData) -> dict:
        hidden = self.params["hidden"]
        layers = tuple(hidden) if isinstance(hidden, list | tuple) else (int(hidden),)
        self.estimator = MLPRegressor(
            hidden_layer_sizes=layers,
            alpha=float(self.params["alpha"]),
            learning_rate_init=float(self.params["lr"]),
            max_iter=int(self.params["max_iter"]),
            random_state=self.seed,
        )
        x = self._embed(data.prompts)
        with warnings.catch_warnings():
            # Small training sets stop at max_iter; the loss below says how far it got.
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.estimator.fit(x, data.targets)
        return {
            "train_loss": float(self.estimator.loss_),
            "iterations": int(self.estimator.n_iter_),
            "train_mse": float(np.mean((self._out(x) - data.targets) ** 2)),
        }

    def _out(self, x: np.ndarray) -> np.ndarray:
        return self.estimator.predict(x).reshape(len(x), -1)

    def _predict(self, prompts: list[str]) -> np.ndarray:
        return self._out(self._embed(prompts))
