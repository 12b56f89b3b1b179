"""Routers: read only the prompt, score every portfolio model (paper section 5).

All share :class:`codyn.routers.base.Router` (fit / predict_scores / route / save / load).
Types: cls, ar-sft, ar-grpo, rorf, knn, mlp, linear, random, oracle, sbs, cheapest.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from codyn.errors import InputError
from codyn.routers.base import Router, read_router_json
from codyn.routers.params import param_problems

# type -> (module, class); modules import lazily so baselines never pay for torch.
ROUTER_TYPES = {
    "cls": ("codyn.routers.cls", "ClsRouter"),
    "ar-sft": ("codyn.routers.autoregressive", "ArSftRouter"),
    "ar-grpo": ("codyn.routers.autoregressive", "ArGrpoRouter"),
    "rorf": ("codyn.routers.rorf", "RorfRouter"),
    "knn": ("codyn.routers.neighbours", "KnnRouter"),
    "mlp": ("codyn.routers.mlp", "MlpRouter"),
    "linear": ("codyn.routers.linear", "LinearRouter"),
    "random": ("codyn.routers.baselines", "RandomRouter"),
    "oracle": ("codyn.routers.baselines", "OracleRouter"),
    "sbs": ("codyn.routers.baselines", "SbsRouter"),
    "cheapest": ("codyn.routers.baselines", "CheapestRouter"),
}
# Config keys that say how to run a job, not what the router is (calibration_folds: how
# many folds the training job cross-fits to choose the cost weight, codyn.evaluation.calibration).
RUN_KEYS = ("gpu", "mem_mb", "runtime", "calibration_folds")


def router_class(router_type: str) -> type[Router]:
    if router_type not in ROUTER_TYPES:
        raise InputError(
            f"unknown router type {router_type!r} (allowed: {sorted(ROUTER_TYPES)})", field="type"
        )
    module, name = ROUTER_TYPES[router_type]
    return getattr(importlib.import_module(module), name)


def make_router(router_type: str, params: dict | None = None, seed: int = 0) -> Router:
    """A fresh router of ``router_type``; ``params`` is its config entry (``type`` optional)."""
    cls = router_class(router_type)
    params = {k: v for k, v in (params or {}).items() if k not in RUN_KEYS}
    params.pop("type", None)
    problems = param_problems(router_type, params)
    if problems:
        raise InputError(problems[0][1], field=problems[0][0])
    return cls(params, seed=seed)


def load_router(directory: str | Path, models: list[str] | None = None) -> Router:
    """Load any router checkpoint folder, dispatching on router.json's ``type``."""
    meta = read_router_json(directory)
    return router_class(meta["type"]).load(directory, models=models)


__all__ = ["ROUTER_TYPES", "Router", "load_router", "make_router", "router_class"]
