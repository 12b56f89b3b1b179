"""Reference routers that learn nothing from the prompt text.

- ``random``: seeded uniform scores, derived per prompt from sha256(seed, prompt), so a
  prompt gets the same pick whatever the batch it comes in.
- ``oracle``: the true ranking scores of the prompts (an upper bound). It cannot score
  from prompts alone: use :meth:`OracleRouter.predict_from_targets`.
- ``sbs``: the single best solver, the mean train target per model for every prompt.
- ``cheapest``: affordability CS^-1, so the cheapest model always wins.
"""

from __future__ import annotations

import numpy as np

from codyn.errors import InputError
from codyn.io import sha256_text
from codyn.ranking import affordability
from codyn.routers.base import Router
from codyn.routing_data import RoutingData


class RandomRouter(Router):
    type = "random"

    def _fit(self, data: RoutingData) -> dict:
        return {}

    def _predict(self, prompts: list[str]) -> np.ndarray:
        rows = []
        for prompt in prompts:
            seed = int(sha256_text(f"{self.seed}|{prompt}")[:16], 16)
            rows.append(np.random.default_rng(seed).random(len(self.models)))
        return np.vstack(rows)


class ConstantRouter(Router):
    """Scores every prompt with the same vector (kept in router.json)."""

    vector: np.ndarray | None = None

    def _predict(self, prompts: list[str]) -> np.ndarray:
        return np.tile(self.vector, (len(prompts), 1))

    def _state(self) -> dict:
        return {"vector": [float(v) for v in self.vector]}

    def _load_state(self, state: dict) -> None:
        if "vector" not in state:
            raise InputError("constant router without a score vector", field="state.vector")
        self.vector = np.asarray(state["vector"], dtype=float)


class SbsRouter(ConstantRouter):
    type = "sbs"

    def _fit(self, data: RoutingData) -> dict:
        # Raw scores, not the targets: per-model standard scaling gives every train column
        # mean 0, which would make every model tie (and the cheapest win).
        self.vector = data.scores.mean(axis=0) + data.lambda2 * affordability(data.costs)
        return {"best": data.models[int(np.argmax(self.vector))]}


class CheapestRouter(ConstantRouter):
    type = "cheapest"

    def _fit(self, data: RoutingData) -> dict:
        self.vector = affordability(data.costs)
        return {"cheapest": data.models[int(np.argmax(self.vector))]}


class OracleRouter(Router):
    type = "oracle"

    def _fit(self, data: RoutingData) -> dict:
        return {}

    def _predict(self, prompts: list[str]) -> np.ndarray:
        raise InputError(
            "the oracle needs the true targets: call predict_from_targets(targets)", field="targets"
        )

    def predict_from_targets(self, targets) -> np.ndarray:
        self._require_fitted()
        targets = np.asarray(targets, dtype=float)
        if targets.ndim != 2 or targets.shape[1] != len(self.models):
            raise InputError(
                f"targets have shape {targets.shape}, expected (n, {len(self.models)})",
                field="targets",
            )
        return targets
