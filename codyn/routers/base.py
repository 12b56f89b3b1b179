"""The one router interface (scikit-learn-like) and its checkpoint folder.

A router reads only the prompt and scores every portfolio model (higher is better);
``route`` turns the scores into a model name with :func:`codyn.policy.choose`, adding
``cost_weight * CS^-1`` on top of what the router learnt (the knob of cost sweeps).

``candidates`` (any learned router's params): which models it may pick -- ``all``
(default); ``pareto``, the models on the training set's cost / mean-score Pareto front;
``sbs-pair``, the single best model on the training set and the best model costing at
most ``pair_max_cost_ratio`` (default 0.1) of it; or a list of model names. Fewer
candidates means fewer noisy per-model predictions to get wrong: on RouterBench MBPP a
router choosing between GPT-4 and GPT-3.5 reaches GPT-4's quality at a lower cost than
one choosing among all eleven models (benchmarks/NOTES.md). Resolved at fit time and
recorded in router.json; the others score -inf.

Checkpoint folder (like Hugging Face ``save_pretrained``)::

    router.json      what it is: type, params, models, costs, setting, lambda2,
                     trained_on (files + sha256), metrics, codyn version, simulated,
                     calibration (cost weights chosen out-of-fold; see
                     codyn.evaluation.calibration)
    oof_predictions.parquet   the out-of-fold predictions those weights were chosen on
    <weights>        model.safetensors / an HF folder / model.joblib, per type

``router.json`` is written last, so a folder without it is an unfinished save. It ends
with ``integrity``: the sha256 of every other file in the folder and one digest over
those and the fields that give the weights their meaning (type, params, models and their
order, candidates, costs, state). :meth:`Router.load` recomputes both, so a ``models``
list reordered by hand (which would silently relabel every score), an edited cost or a
replaced or truncated weights file is an InputError naming the field or file, not a
wrong answer. Folders saved before this check (no ``integrity``) load with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from codyn import __version__
from codyn.errors import InputError
from codyn.io import read_json, sha256_file, write_json
from codyn.policy import choose, pareto_frontier
from codyn.routing_data import RoutingData

ROUTER_JSON = "router.json"
FORMAT_VERSION = 1

log = logging.getLogger(__name__)


class Router:
    """Base class. Subclasses set ``type`` and implement ``_fit`` and ``_predict``.

    Parameters live in ``params`` (the router's config entry); constructors do no work.
    """

    type: ClassVar[str] = ""
    # Per-type defaults, merged under the given params (so router.json records all of them).
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, params: dict | None = None, seed: int = 0):
        params = dict(params or {})
        given_type = params.pop("type", self.type)
        if given_type != self.type:
            raise InputError(
                f"params say type {given_type!r}, this is a {self.type!r} router", field="type"
            )
        self.params = {**self.defaults, **params}
        self.seed = int(seed)
        self.models: list[str] | None = None
        self.costs: np.ndarray | None = None
        self.setting: str | None = None
        self.lambda2: float | None = None
        self.simulated = False
        self.trained_on: list[dict] = []
        self.metrics: dict[str, Any] = {}
        self.candidates: list[str] | None = None  # None: every model
        # Cost weights chosen on out-of-fold predictions (codyn.evaluation.calibration);
        # set by the training pipeline, None when none were chosen.
        self.calibration: dict | None = None

    # ---- the interface ------------------------------------------------------
    def fit(self, data: RoutingData, portfolio: list[str] | None = None) -> Router:
        """Train on ``data``; every input check runs before any training work."""
        where = ", ".join(data.meta.get("sources", [])) or "routing data"
        data.check(where)
        if portfolio is not None and list(portfolio) != list(data.models):
            missing = sorted(set(portfolio) - set(data.models))
            extra = sorted(set(data.models) - set(portfolio))
            raise InputError(
                f"split portfolio {data.models} is not the configured one {list(portfolio)}"
                f" (missing: {missing}, unexpected: {extra})",
                path=where,
                field="models",
            )
        self._check_data(data, where)
        candidates = resolve_candidates(
            self.params.get("candidates", "all"),
            list(data.models),
            data.scores,
            np.asarray(data.costs, dtype=float),
            float(self.params.get("pair_max_cost_ratio", 0.1)),
            where,
        )
        self.models = list(data.models)
        self.candidates = candidates
        self.costs = np.asarray(data.costs, dtype=float)
        self.setting = data.setting
        self.lambda2 = float(data.lambda2)
        self.simulated = bool(data.simulated)
        self.trained_on = describe_sources(data.meta.get("sources", []))
        started = time.perf_counter()
        metrics = self._fit(data) or {}
        self.metrics = {
            **metrics,
            "fit_seconds": round(time.perf_counter() - started, 3),
            "n_train": len(data),
        }
        return self

    def predict_scores(self, prompts: list[str]) -> np.ndarray:
        """(n, m) predicted ranking scores; -inf for models this router cannot pick."""
        self._require_fitted()
        prompts = _as_prompts(prompts)
        if not prompts:
            return np.zeros((0, len(self.models)))
        scores = np.asarray(self._predict(prompts), dtype=float)
        if scores.shape != (len(prompts), len(self.models)):
            raise RuntimeError(f"{self.type}: predicted shape {scores.shape}")
        if self.candidates is not None:
            scores[:, [m not in self.candidates for m in self.models]] = -np.inf
        return scores

    def route(self, prompts: list[str], cost_weight: float = 0.0) -> list[str]:
        return self.route_scores(self.predict_scores(prompts), cost_weight)

    def route_scores(self, scores: np.ndarray, cost_weight: float = 0.0) -> list[str]:
        """Model names for already predicted scores (so sweeps predict once)."""
        self._require_fitted()
        if len(scores) == 0:
            return []
        return [self.models[i] for i in choose(scores, self.costs, cost_weight)]

    # ---- persistence --------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        self._require_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        stale = directory / ROUTER_JSON
        if stale.exists():
            stale.unlink()  # the folder is unfinished until the new router.json lands
        self._save_weights(directory)
        meta = self.describe()
        files = weight_digests(directory)
        meta["integrity"] = {"files": files, "sha256": meaning_digest(meta, files)}
        write_json(directory / ROUTER_JSON, meta)
        return directory

    def describe(self) -> dict:
        return {
            "format": FORMAT_VERSION,
            "type": self.type,
            "params": self.params,
            "seed": self.seed,
            "models": self.models,
            "candidates": self.candidates,
            "costs": [float(c) for c in self.costs],
            "setting": self.setting,
            "lambda2": self.lambda2,
            "trained_on": self.trained_on,
            "metrics": self.metrics,
            "calibration": self.calibration,
            "state": self._state(),
            "codyn_version": __version__,
            "simulated": self.simulated,
        }

    @classmethod
    def load(cls, directory: str | Path, models: list[str] | None = None) -> Router:
        """Load a folder written by :meth:`save`.

        ``models``: the portfolio the caller expects; a different one is an InputError.
        """
        directory = Path(directory)
        meta = read_router_json(directory)
        if cls.type and meta["type"] != cls.type:
            raise InputError(
                f"checkpoint holds a {meta['type']!r} router, not {cls.type!r}",
                path=directory / ROUTER_JSON,
                field="type",
            )
        if models is not None and list(models) != list(meta["models"]):
            raise InputError(
                f"checkpoint was trained for portfolio {meta['models']}, expected {list(models)}",
                path=directory / ROUTER_JSON,
                field="models",
            )
        check_integrity(directory, meta)
        router = cls(meta["params"], seed=meta.get("seed", 0))
        router.models = list(meta["models"])
        router.candidates = meta.get("candidates")
        router.costs = np.asarray(meta["costs"], dtype=float)
        router.setting = meta.get("setting")
        router.lambda2 = meta.get("lambda2")
        router.simulated = bool(meta.get("simulated", False))
        router.trained_on = meta.get("trained_on", [])
        router.metrics = meta.get("metrics", {})
        router.calibration = meta.get("calibration")
        try:
            router._load_state(meta.get("state") or {})
            router._load_weights(directory)
        except (InputError, ModuleNotFoundError):  # not damage: a missing extra (codyn.cli)
            raise
        except Exception as exc:  # torch, safetensors, joblib: each fails its own way
            raise InputError(
                f"damaged {meta['type']} checkpoint, cannot load its weights "
                f"({type(exc).__name__}: {str(exc)[:300]})",
                path=directory,
            ) from None
        return router

    # ---- for subclasses -----------------------------------------------------
    def _check_data(self, data: RoutingData, where: str) -> None:
        """Type-specific input checks (before training)."""

    def _fit(self, data: RoutingData) -> dict | None:
        raise NotImplementedError

    def _predict(self, prompts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def _state(self) -> dict:
        """Small JSON-able state kept in router.json (e.g. a constant score vector)."""
        return {}

    def _load_state(self, state: dict) -> None:
        pass

    def _save_weights(self, directory: Path) -> None:
        pass

    def _load_weights(self, directory: Path) -> None:
        pass

    def _require_fitted(self) -> None:
        if self.models is None:
            raise RuntimeError(f"{self.type} router is not fitted (call fit or load)")


CANDIDATE_RULES = ("all", "pareto", "sbs-pair")


def resolve_candidates(
    spec, models: list[str], scores: np.ndarray, costs: np.ndarray, pair_ratio: float, where: str
) -> list[str] | None:
    """The models a router may pick (None = all); see the module docstring."""
    if isinstance(spec, (list, tuple)):
        names = [str(m) for m in spec]
        unknown = [m for m in names if m not in models]
        if unknown or not names:
            raise InputError(
                f"candidates {unknown or names} are not in the split's portfolio {models}",
                path=where,
                field="candidates",
            )
        return [m for m in models if m in names]
    if spec not in CANDIDATE_RULES:
        raise InputError(
            f"candidates must be a list of models or one of {', '.join(CANDIDATE_RULES)},"
            f" not {spec!r}",
            path=where,
            field="candidates",
        )
    if spec == "all":
        return None
    mean = np.nanmean(np.asarray(scores, dtype=float), axis=0)
    if spec == "pareto":
        keep = set(pareto_frontier(costs, mean).tolist())
        return [m for j, m in enumerate(models) if j in keep]
    if not 0 < pair_ratio <= 1:
        raise InputError(
            "pair_max_cost_ratio must be in (0, 1]", path=where, field="pair_max_cost_ratio"
        )
    best = int(choose(mean[None, :], costs, cost_weight=0.0)[0])
    cheap = [j for j in range(len(models)) if costs[j] <= pair_ratio * costs[best] and j != best]
    if not cheap:
        cheap = [int(np.argmin(costs))]
    weak = max(cheap, key=lambda j: (mean[j], -costs[j]))
    return [m for j, m in enumerate(models) if j in (best, weak)]


def read_router_json(directory: str | Path) -> dict:
    directory = Path(directory)
    path = directory / ROUTER_JSON
    if not path.is_file():
        raise InputError("not a router checkpoint (router.json missing)", path=directory)
    return read_json(path, ("type", "params", "models", "costs"))


# The router.json fields that decide what the weights' outputs mean.
MEANING_KEYS = ("format", "type", "params", "seed", "models", "candidates", "costs", "state")


def weight_digests(directory: Path) -> dict[str, str]:
    """sha256 of every file in a checkpoint folder but router.json, by relative path."""
    return {
        p.relative_to(directory).as_posix(): sha256_file(p)
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.relative_to(directory).as_posix() != ROUTER_JSON
    }


def meaning_digest(meta: dict, files: dict[str, str]) -> str:
    part = {k: meta.get(k) for k in MEANING_KEYS}
    part["files"] = files
    # Canonical form of what router.json will hold once written and read back.
    canonical = json.dumps(
        json.loads(json.dumps(part, sort_keys=True, default=str)), sort_keys=True
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def check_integrity(directory: Path, meta: dict) -> None:
    """router.json against its weights (see the module docstring)."""
    where = directory / ROUTER_JSON
    models, costs = meta["models"], meta["costs"]
    if (
        not isinstance(models, list)
        or not models
        or not all(isinstance(m, str) and m for m in models)
        or len(set(models)) != len(models)
    ):
        raise InputError("expected a list of distinct model names", path=where, field="models")
    if (
        not isinstance(costs, list)
        or len(costs) != len(models)
        or not all(
            isinstance(c, int | float) and not isinstance(c, bool) and math.isfinite(c) and c >= 0
            for c in costs
        )
    ):
        raise InputError(
            f"expected {len(models)} finite costs >= 0, one per model", path=where, field="costs"
        )
    integrity = meta.get("integrity")
    if integrity is None:
        log.warning("%s has no integrity record (saved by an older codyn); not checked", where)
        return
    if not isinstance(integrity, dict) or not isinstance(integrity.get("files"), dict):
        raise InputError("malformed integrity record", path=where, field="integrity")
    files = weight_digests(directory)
    for name, digest in integrity["files"].items():
        if name not in files:
            raise InputError("weights file listed in router.json is missing", path=directory / name)
        if files[name] != digest:
            raise InputError(
                "weights file changed since the router was saved (sha256 differs); "
                "damaged or replaced",
                path=directory / name,
            )
    if meaning_digest(meta, integrity["files"]) != integrity.get("sha256"):
        raise InputError(
            "router.json was edited after the router was saved: its models (or their order), "
            "costs, candidates, params or state no longer match the weights (digest differs)",
            path=where,
            field="integrity",
        )


def describe_sources(paths) -> list[dict]:
    out = []
    for p in paths:
        p = Path(p)
        out.append({"path": str(p), "sha256": sha256_file(p) if p.is_file() else None})
    return out


def _as_prompts(prompts) -> list[str]:
    if isinstance(prompts, str):
        raise TypeError("prompts must be a list of strings, not one string")
    prompts = list(prompts)
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise InputError(f"prompt is {type(p).__name__}, not str", record=i, field="prompt")
    return prompts


def resolve_device(name: str = "auto") -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


class ProgressLog:
    """Logs step, loss and ETA at most every ``every`` seconds (and at the end)."""

    def __init__(self, total_steps: int, what: str, every: float = 5.0, logger=None):
        self.total = max(int(total_steps), 1)
        self.what = what
        self.every = every
        self.log = logger or log
        self.started = time.perf_counter()
        self.last = -math.inf

    def step(self, step: int, loss: float | None = None, **extra) -> None:
        now = time.perf_counter()
        if now - self.last < self.every and step < self.total:
            return
        self.last = now
        elapsed = now - self.started
        eta = elapsed / max(step, 1) * (self.total - step)
        parts = [f"{self.what}: step {step}/{self.total}"]
        if loss is not None:
            parts.append(f"loss {loss:.4f}")
        parts += [f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in extra.items()]
        parts.append(f"elapsed {elapsed:.1f}s ETA {eta:.1f}s")
        self.log.info(", ".join(parts))
