"""Answer sources for the generate stage (DESIGN.md section 5).

``make_backend(name, model_cfg, generation_cfg, seed=...)`` builds the backend that
one ``models`` entry of the config names. ``seed`` (config ``seed``) only matters
for the simulated backend; pass it wherever answers must match the pipeline's.
"""

from __future__ import annotations

from codyn.backends.base import (
    Backend,
    BackendError,
    Completion,
    dollar_cost,
    effective_params,
)
from codyn.errors import ConfigError

BACKENDS = ("bedrock", "openai", "hf", "replay", "simulated")

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendError",
    "Completion",
    "dollar_cost",
    "effective_params",
    "make_backend",
]


def make_backend(
    model_name: str, model_cfg: dict, generation_cfg: dict, *, seed: int = 0
) -> Backend:
    backend = model_cfg.get("backend")
    if backend == "bedrock":
        from codyn.backends.bedrock import BedrockBackend

        return BedrockBackend(model_name, model_cfg, generation_cfg)
    if backend == "openai":
        from codyn.backends.openai_compat import OpenAICompatBackend

        return OpenAICompatBackend(model_name, model_cfg, generation_cfg)
    if backend == "hf":
        from codyn.backends.hf import HFBackend

        return HFBackend(model_name, model_cfg, generation_cfg, seed=seed)
    if backend == "replay":
        from codyn.backends.replay import ReplayBackend

        return ReplayBackend(model_name, model_cfg, generation_cfg)
    if backend == "simulated":
        from codyn.backends.simulated import SimulatedBackend

        return SimulatedBackend(model_name, model_cfg, generation_cfg, seed=seed)
    if backend == "import":
        raise ConfigError(
            f"models.{model_name}.backend", "imported models have no answers to generate"
        )
    raise ConfigError(
        f"models.{model_name}.backend", f"unknown backend {backend!r}", allowed=BACKENDS
    )
