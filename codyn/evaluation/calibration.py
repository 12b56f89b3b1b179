"""Operating points a deployer can trust: the cost weight chosen on out-of-fold predictions.

A router's decision at cost weight ``w`` is the argmax of ``pred + w * CS^-1``
(:func:`codyn.policy.choose`). Choosing ``w`` on the rows the router was fitted on
flatters memorising routers (kNN predicts its own training rows almost perfectly), and
choosing it on test rows is choosing on the future. So ``w`` is chosen on *out-of-fold*
(OOF) predictions of the training split: the train rows are cut into ``K`` folds
(seeded), a fresh router is fitted on ``K - 1`` folds and predicts the held-out one,
until every train row has a prediction from a router that never saw it. The router
saved for use is fitted on all of train; the weights chosen on its OOF predictions go
into its ``router.json`` (``calibration``) and the OOF predictions themselves into
``oof_predictions.parquet`` beside it, so any other target can be chosen later the same
way (``codyn route --target-share``).

Targets (:class:`Target`), each the cheapest operating point meeting a stated goal on
the OOF rows:

- ``share-P``: the smallest ``w`` sending at most a share ``P`` of calls to the most
  expensive model;
- ``budget-B``: the smallest ``w`` whose Eq. 2 cost is at most ``B`` times the SBS's;
- ``parity``: the cheapest swept ``w`` whose effectiveness reaches the SBS's minus a
  tolerance (``reached: false`` and the most effective point when none does).

The SBS of an OOF row is the single best model of the folds it was held out from
(chosen like the router is fitted: without that row), so router and SBS are compared
on equal terms. Evaluation then applies each chosen ``w`` once to the test rows and
reports the result beside the SBS's, with a paired bootstrap interval
(:func:`apply_to_test`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from codyn import policy
from codyn.errors import InputError
from codyn.evaluation import metrics
from codyn.io import atomic_path

log = logging.getLogger(__name__)

OOF_FILE = "oof_predictions.parquet"
TARGET_KINDS = ("share", "budget", "parity")
# Points of policy.weight_grid searched for the parity target (effectiveness is not
# monotone in w, so it is searched on a grid rather than bisected).
PARITY_GRID = 201


@dataclass(frozen=True)
class Target:
    """One named goal for the cost weight (module docstring)."""

    kind: str
    value: float

    def __post_init__(self):
        if self.kind not in TARGET_KINDS:
            raise InputError(f"target kind must be one of {TARGET_KINDS}, not {self.kind!r}")
        if self.kind == "share" and not 0.0 <= self.value <= 1.0:
            raise InputError(f"a share target must lie in [0, 1], got {self.value}")
        if self.kind == "budget" and not self.value > 0:
            raise InputError(
                f"a cost budget must be > 0 (fraction of the SBS cost), got {self.value}"
            )
        if self.kind == "parity" and self.value < 0:
            raise InputError(f"the parity tolerance must be >= 0, got {self.value}")

    @property
    def name(self) -> str:
        return "parity" if self.kind == "parity" else f"{self.kind}-{self.value:g}"


def targets_from_config(evaluation: dict) -> list[Target]:
    """The targets of config ``evaluation``: parity, the cost budgets, the share target."""
    out = [Target("parity", float(evaluation.get("parity_tolerance", 0.0)))]
    out += [Target("budget", float(b)) for b in evaluation.get("cost_budgets", [0.25, 0.5, 0.75])]
    out.append(Target("share", float(evaluation.get("target_share", 0.2))))
    return out


def fold_ids(n: int, folds: int, seed: int) -> np.ndarray:
    """Fold index per row: ``folds`` shuffled, near-equal folds (scikit-learn's KFold)."""
    from sklearn.model_selection import KFold

    if not 2 <= folds <= n:
        raise InputError(
            f"cross-fitting needs 2 <= folds <= rows, got {folds} folds for {n} rows",
            field="evaluation.calibration_folds",
        )
    out = np.empty(n, dtype=int)
    for f, (_, held) in enumerate(
        KFold(folds, shuffle=True, random_state=seed).split(np.arange(n))
    ):
        out[held] = f
    return out


@dataclass
class OutOfFold:
    """Predictions of every train row by a router that was not fitted on it."""

    pred: np.ndarray  # (n, m) predicted scores (-inf: a model the fold's router cannot pick)
    scores: np.ndarray  # (n, m) raw scores of those rows
    costs: np.ndarray  # (m,)
    folds: np.ndarray  # (n,) fold index
    sbs: np.ndarray  # (n,) index of the SBS of the other folds
    task_ids: list[str]
    models: list[str]
    seed: int
    fit_seconds: float = 0.0

    @property
    def n_folds(self) -> int:
        return int(self.folds.max()) + 1 if len(self.folds) else 0


def cross_fit(make_router: Callable[[], object], data, folds: int, seed: int) -> OutOfFold:
    """Fit ``make_router()`` on K-1 folds of ``data`` and predict the held-out fold, K times."""
    n, m = len(data), len(data.models)
    ids = fold_ids(n, folds, seed)
    pred = np.full((n, m), np.nan)
    sbs = np.empty(n, dtype=int)
    costs = np.asarray(data.costs, dtype=float)
    started = time.perf_counter()
    for f in range(folds):
        held = ids == f
        fitted = data.take(~held)
        router = make_router().fit(fitted)
        pred[held] = router.predict_scores([data.prompts[i] for i in np.flatnonzero(held)])
        sbs[held] = metrics.single_best(fitted.scores, costs)
    seconds = time.perf_counter() - started
    log.info("out-of-fold predictions: %d folds over %d rows in %.1fs", folds, n, seconds)
    return OutOfFold(
        pred=pred,
        scores=np.asarray(data.scores, dtype=float),
        costs=costs,
        folds=ids,
        sbs=sbs,
        task_ids=list(data.task_ids),
        models=list(data.models),
        seed=int(seed),
        fit_seconds=round(seconds, 3),
    )


def _at(pred, scores, costs, w: float) -> dict:
    idx = policy.choose(pred, costs, w)
    share = metrics.shares(idx, len(costs))
    return {
        "effectiveness": metrics.effectiveness(scores, idx),
        "cost": metrics.eq2_cost(share, costs),
        "share_most_expensive": float(share[int(np.argmax(costs))]),
    }


def reference(scores, costs, sbs_choice) -> dict:
    """Effectiveness and Eq. 2 cost of the (per-row) SBS choice."""
    s, c = np.asarray(scores, dtype=float), np.asarray(costs, dtype=float)
    idx = np.asarray(sbs_choice, dtype=int)
    return {
        "effectiveness": metrics.effectiveness(s, idx),
        "cost": metrics.eq2_cost(metrics.shares(idx, len(c)), c),
    }


def choose_weight(pred, scores, costs, target: Target, sbs_choice) -> dict:
    """The cost weight meeting ``target`` on these rows, and what it gives there."""
    # -inf (a model the router cannot pick) stays: the sweep treats it as unreachable
    p, s, c = (
        np.asarray(pred, dtype=float),
        np.asarray(scores, dtype=float),
        np.asarray(costs, dtype=float),
    )
    ref = reference(s, c, sbs_choice)
    if target.kind == "share":
        w = policy.calibrate(p, c, target.value)
        reached = _at(p, s, c, w)["share_most_expensive"] <= target.value + 1e-12
    elif target.kind == "budget":
        limit = target.value * ref["cost"]
        w = policy.smallest_weight(p, c, lambda x: _at(p, s, c, x)["cost"], limit)
        reached = _at(p, s, c, w)["cost"] <= limit + 1e-12
    else:
        grid = policy.weight_grid(p, c, PARITY_GRID)
        pts = [_at(p, s, c, float(w)) for w in grid]
        eff = np.array([q["effectiveness"] for q in pts])
        cost = np.array([q["cost"] for q in pts])
        ok = eff >= ref["effectiveness"] - target.value - 1e-12
        reached = bool(ok.any())
        # np.lexsort sorts by its LAST key first: the cheapest point at parity (then the more
        # effective); when none reaches it, the most effective (then the cheapest)
        keys = (cost, -eff) if not reached else (-eff, np.where(ok, cost, np.inf))
        best = int(np.lexsort(keys)[0])
        w = float(grid[best])
    at = _at(p, s, c, float(w))
    return {
        "target": target.kind,
        "value": target.value,
        "cost_weight": float(w),
        "reached": bool(reached),
        **at,
        "effectiveness_minus_sbs": at["effectiveness"] - ref["effectiveness"],
        "cost_over_sbs": at["cost"] / ref["cost"] if ref["cost"] > 0 else float("nan"),
    }


def choose_weights(oof: OutOfFold, targets: Iterable[Target]) -> dict:
    """The ``calibration`` block of router.json: every target chosen on ``oof``."""
    ref = reference(oof.scores, oof.costs, oof.sbs)
    sbs_models = sorted({oof.models[i] for i in np.unique(oof.sbs)})
    return {
        "method": policy.CALIBRATION_METHOD,
        "folds": oof.n_folds,
        "fold_seed": oof.seed,
        "n_rows": len(oof.task_ids),
        "fit_seconds": oof.fit_seconds,
        "sbs": {"models": sbs_models, **ref},
        "targets": {
            t.name: choose_weight(oof.pred, oof.scores, oof.costs, t, oof.sbs) for t in targets
        },
    }


# --- the OOF predictions beside the router -----------------------------------------------


def save_oof(oof: OutOfFold, directory: str | Path) -> Path:
    """``oof_predictions.parquet``: task_id, fold, sbs, pred::m and score::m per model."""
    frame = pd.DataFrame({"task_id": oof.task_ids, "fold": oof.folds, "sbs": oof.sbs})
    for j, m in enumerate(oof.models):
        frame[f"pred::{m}"] = oof.pred[:, j]
    for j, m in enumerate(oof.models):
        frame[f"score::{m}"] = oof.scores[:, j]
    path = Path(directory) / OOF_FILE
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
    return path


def load_oof(directory: str | Path, meta: dict) -> OutOfFold | None:
    """The OOF predictions saved with a router (None when the folder has none)."""
    path = Path(directory) / OOF_FILE
    if not path.is_file():
        return None
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise InputError(f"not a readable Parquet file ({exc})", path=path) from exc
    models = list(meta["models"])
    for col in ["task_id", "fold", "sbs"] + [
        f"{k}::{m}" for k in ("pred", "score") for m in models
    ]:
        if col not in frame.columns:
            raise InputError("missing column", path=path, field=col)
    cal = meta.get("calibration") or {}
    return OutOfFold(
        pred=frame[[f"pred::{m}" for m in models]].to_numpy(dtype=float),
        scores=frame[[f"score::{m}" for m in models]].to_numpy(dtype=float),
        costs=np.asarray(meta["costs"], dtype=float),
        folds=frame["fold"].to_numpy(dtype=int),
        sbs=frame["sbs"].to_numpy(dtype=int),
        task_ids=frame["task_id"].astype(str).tolist(),
        models=models,
        seed=int(cal.get("fold_seed", 0)),
        fit_seconds=float(cal.get("fit_seconds", 0.0)),
    )


# --- applying the chosen weights to test rows --------------------------------------------


def apply_to_test(
    calibration: dict,
    pred,
    scores,
    costs,
    sbs_index: int,
    *,
    usd=None,
    models=None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict:
    """Per recorded target: the test outcome of its OOF-chosen weight beside the SBS's, with
    a paired bootstrap interval of the effectiveness difference on the same test rows."""
    # -inf (a model the router cannot pick) stays: the sweep treats it as unreachable
    p, s, c = (
        np.asarray(pred, dtype=float),
        np.asarray(scores, dtype=float),
        np.asarray(costs, dtype=float),
    )
    sbs_row = s[:, sbs_index]
    sbs_cost = metrics.eq2_cost(np.eye(len(c))[sbs_index], c)
    out = {}
    for name, entry in (calibration.get("targets") or {}).items():
        w = float(entry["cost_weight"])
        idx = policy.choose(p, c, w)
        test = metrics.summarise_choice(s, c, idx, usd, models)
        diff = s[np.arange(len(idx)), idx] - sbs_row
        out[name] = {
            "target": entry["target"],
            "value": entry["value"],
            "cost_weight": w,
            "oof": {
                k: entry[k] for k in ("effectiveness", "cost", "share_most_expensive", "reached")
            },
            "test": test,
            "test_effectiveness_minus_sbs": metrics.paired_bootstrap(diff, n_resamples, seed),
            "test_cost_over_sbs": test["cost"] / sbs_cost if sbs_cost > 0 else float("nan"),
        }
    return out
