"""One router, one cost setting, one dataset -> the evaluation record (JSON).

Inputs: the score matrix (raw scores, per-call dollars, whether answers were
simulated), the router's predictions
``results/predictions/{router}/{setting}/{dataset}.parquet`` (``task_id``, ``split``,
``pred::<model>``; -inf where the router cannot pick a model), and for a training
dataset its ``split.json``. A training dataset is evaluated on its test rows, and the
cost weights that training chose on out-of-fold predictions of its train rows (router.json
``calibration``, carried in the predictions' metadata) are applied to them and reported
per target beside the SBS, with a paired bootstrap interval; a generalisation dataset (A.4; a split
with ``held_out`` true and no train ids, or no split at all) is evaluated on all of
its rows, with the SBS taken over those same rows and no calibration.

Malformed outputs of autoregressive routers (a ``malformed`` predictions column): with
``on_malformed: zero`` (the paper's rule, the default) such a row scores 0 for every
model, so the decision, the swept curve and the calibrated point all count it as a
failure; its cost is the fallback pick's (the model a deployment would call). With
``fallback`` the fallback ranking is scored like any other. The record keeps
``malformed`` (count), ``malformed_share``, ``on_malformed`` and ``decoding``.

The Table 2 decision is the router's argmax at cost weight 0: the cost setting is
already inside the predictions (the router was trained on RS = ES + lambda2 * CS^-1).
Routers with a cost knob are also swept over extra cost weights (see
:mod:`codyn.evaluation.sweep`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from codyn import policy
from codyn.errors import InputError
from codyn.evaluation import calibration, metrics, sweep
from codyn.io import read_json, write_json
from codyn.matrix import Matrix
from codyn.splits import read_split

log = logging.getLogger(__name__)

PRED_PREFIX = "pred::"
MALFORMED = "malformed"
# Router types whose decision moves with a cost weight (the paper's learned routers
# and RoRF); the baselines ignore it.
SWEPT_TYPES = frozenset({"cls", "ar-sft", "ar-grpo", "rorf", "knn", "mlp", "linear"})
BASELINE_TYPES = frozenset({"random", "oracle", "sbs", "cheapest"})


def read_predictions(path: str | Path, models: list[str]) -> pd.DataFrame:
    """Predictions indexed by task_id with columns ``split`` and one per model."""
    path = Path(path)
    if not path.exists():
        raise InputError("file does not exist", path=path)
    try:
        table = pq.read_table(path)
        df = table.to_pandas()
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise InputError(f"not a readable Parquet file ({exc})", path=path) from exc
    for col in ["task_id", "split"] + [PRED_PREFIX + m for m in models]:
        if col not in df.columns:
            raise InputError("missing column", path=path, field=col)
    df["task_id"] = df["task_id"].astype(str)
    dup = df["task_id"][df["task_id"].duplicated()].tolist()
    if dup:
        raise InputError(f"duplicate task ids {dup[:5]}", path=path, field="task_id")
    pred = df[[PRED_PREFIX + m for m in models]].to_numpy(dtype=float)
    # -inf marks a model the router cannot pick; NaN or +inf is a broken prediction.
    bad = np.argwhere(np.isnan(pred) | (pred == np.inf))
    if len(bad):
        i, j = bad[0]
        raise InputError(
            "NaN or +inf prediction",
            path=path,
            record=df["task_id"].iloc[i],
            field=PRED_PREFIX + models[j],
        )
    none = np.flatnonzero(~np.isfinite(pred).any(axis=1))
    if len(none):
        raise InputError(
            "every model is -inf (the router picks nothing)",
            path=path,
            record=df["task_id"].iloc[none[0]],
        )
    out = pd.DataFrame(pred, columns=models, index=df["task_id"].values)
    out.insert(0, "split", df["split"].astype(str).values)
    if MALFORMED in df.columns:
        out.attrs["malformed"] = pd.Series(
            df[MALFORMED].astype(bool).values, index=df["task_id"].values
        )
    raw = (table.schema.metadata or {}).get(b"codyn")
    try:
        out.attrs["meta"] = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        out.attrs["meta"] = {}
    return out


def _rows(pred: pd.DataFrame, ids: list[str], where: str) -> np.ndarray:
    missing = pd.Index(ids).difference(pred.index)
    if len(missing):
        raise InputError(
            f"{len(missing)} task ids have no prediction, e.g. {list(missing[:3])}",
            path=where,
            field="task_id",
        )
    return pred.loc[ids, [c for c in pred.columns if c != "split"]].to_numpy(dtype=float)


def reference_points(scores, costs, usd, models, sbs_index: int) -> dict:
    """Single models, oracle, SBS and cheapest on the evaluated rows."""
    n, m = scores.shape
    out = {"models": {}}
    for j, name in enumerate(models):
        out["models"][name] = metrics.summarise_choice(scores, costs, np.full(n, j), usd, models)
    out["oracle"] = metrics.summarise_choice(
        scores, costs, metrics.oracle_choice(scores, costs), usd, models
    )
    out["sbs"] = {"model": models[sbs_index], **out["models"][models[sbs_index]]}
    k = metrics.cheapest(costs)
    out["cheapest"] = {"model": models[k], **out["models"][models[k]]}
    return out


@dataclass(frozen=True)
class _Evaluated:
    """The evaluated rows of one (dataset, router, setting), as arrays over models."""

    models: list[str]
    cost_vec: np.ndarray
    scores: np.ndarray  # raw: the references (models, oracle, SBS) are scored on these
    router_scores: np.ndarray  # the router's own outcome (malformed rows zeroed if so set)
    usd: np.ndarray
    p_eval: np.ndarray
    sbs_index: int
    bad: np.ndarray  # malformed rows
    has_flags: bool  # the predictions carry a malformed column
    on_malformed: str | None


def _evaluated(
    matrix, all_scores, pred, eval_ids, train_ids, cost_vec, predictions_path
) -> _Evaluated:
    scores = all_scores.loc[eval_ids].to_numpy(dtype=float)
    flags = pred.attrs.get("malformed")
    bad = np.zeros(len(eval_ids), dtype=bool) if flags is None else flags.loc[eval_ids].to_numpy()
    on_malformed = pred.attrs["meta"].get("on_malformed") if flags is not None else None
    router_scores = scores.copy()
    if on_malformed == "zero":
        router_scores[bad, :] = 0.0
    sbs_rows = all_scores.loc[train_ids].to_numpy(dtype=float) if train_ids else scores
    return _Evaluated(
        models=list(matrix.models),
        cost_vec=cost_vec,
        scores=scores,
        router_scores=router_scores,
        usd=matrix.usd().loc[eval_ids].to_numpy(dtype=float),
        p_eval=_rows(pred, eval_ids, str(predictions_path)),
        sbs_index=metrics.single_best(sbs_rows, cost_vec),
        bad=bad,
        has_flags=flags is not None,
        on_malformed=on_malformed,
    )


def evaluate(
    matrix_path: str | Path,
    predictions_path: str | Path,
    *,
    dataset: str | None = None,
    router: str,
    router_type: str,
    setting: str,
    costs: dict[str, float],
    split_path: str | Path | None = None,
    sweep_points: int = 41,
    cpt_levels=(0.5, 0.8),
    bootstrap_resamples: int = 1000,
    bootstrap_seed: int = 0,
) -> dict:
    """The evaluation record of one (dataset, router, setting)."""
    matrix = Matrix.load(matrix_path)
    models = list(matrix.models)
    missing = [mdl for mdl in models if mdl not in costs]
    if missing:
        raise InputError(
            f"no configured cost for models {missing}", path=matrix_path, field="costs"
        )
    cost_vec = np.array([float(costs[mdl]) for mdl in models])
    pred = read_predictions(predictions_path, models)
    all_scores = matrix.scores()
    eval_ids, train_ids, scope = _evaluated_rows(all_scores.index, split_path, matrix_path)
    ev = _evaluated(matrix, all_scores, pred, eval_ids, train_ids, cost_vec, predictions_path)
    pmeta = pred.attrs["meta"]

    refs = reference_points(ev.scores, cost_vec, ev.usd, models, ev.sbs_index)
    choice = policy.choose(ev.p_eval, cost_vec, 0.0)
    record = {
        "dataset": dataset or (str(matrix.frame["dataset"].iloc[0]) if len(matrix.frame) else ""),
        "router": router,
        "router_type": router_type,
        "setting": setting,
        "scope": scope,
        "simulated": bool(matrix.simulated),
        "answers": matrix.meta.get("answers"),
        "matrix_source": matrix.source,
        "models": models,
        "costs": dict(zip(models, cost_vec.tolist(), strict=True)),
        "n_tasks": len(eval_ids),
        "sbs_from": "train split" if train_ids else "evaluated rows",
        # autoregressive routers: outputs that were not a valid ranking, on evaluated rows
        "malformed": int(ev.bad.sum()) if ev.has_flags else None,
        "malformed_share": float(ev.bad.mean()) if ev.has_flags else None,
        "on_malformed": ev.on_malformed,
        "decoding": pmeta.get("decoding"),
        "decision": metrics.summarise_choice(ev.router_scores, cost_vec, choice, ev.usd, models),
        "references": refs,
        "sweep": None,
        "curve": None,
        "calibration": None,
        "inputs": {
            "matrix": str(matrix_path),
            "predictions": str(predictions_path),
            "split": None if split_path is None else str(split_path),
        },
    }
    if router_type not in SWEPT_TYPES:
        return record

    points = sweep.sweep(ev.p_eval, ev.router_scores, cost_vec, sweep_points)
    record["sweep"] = {
        "w_max": points[-1].cost_weight,
        "points": [p.as_dict(models) for p in points],
    }
    record["curve"] = _curve(points, ev, refs, cpt_levels)
    recorded = pmeta.get("calibration")
    if train_ids and recorded and recorded.get("method") == policy.CALIBRATION_METHOD:
        record["calibration"] = _calibrated(recorded, ev, bootstrap_resamples, bootstrap_seed)
    elif train_ids:
        log.warning(
            "%s: the router records no out-of-fold calibration (trained before it existed, or "
            "with calibration_folds 0): no calibrated operating point is reported",
            predictions_path,
        )
    return record


def _evaluated_rows(
    matrix_ids: pd.Index, split_path: str | Path | None, matrix_path: str | Path
) -> tuple[list[str], list[str], str]:
    """(evaluated ids, train ids, scope): a training dataset's test rows, else all rows."""
    if split_path is not None:
        split = read_split(split_path)
        eval_ids, train_ids = [str(t) for t in split["test"]], [str(t) for t in split["train"]]
        # a held-out dataset (A.4) has every id in test and none in train
        scope = "all" if split.get("held_out") or not train_ids else "test"
    else:
        eval_ids, train_ids, scope = [str(t) for t in matrix_ids], [], "all"
    unknown = pd.Index(eval_ids + train_ids).difference(matrix_ids)
    if len(unknown):
        raise InputError(
            f"split task ids not in the matrix: {list(unknown[:3])}",
            path=split_path,
            field="task_id",
        )
    if not eval_ids:
        raise InputError("no rows to evaluate", path=split_path or matrix_path, field="test")
    return eval_ids, train_ids, scope


def _curve(points, ev: _Evaluated, refs: dict, cpt_levels) -> dict:
    """The swept curve's metrics between the weak and strong model, and its Pareto points."""
    # weak = cheapest model, strong = SBS of the evaluated rows (module docstring of metrics)
    strong_index = metrics.single_best(ev.scores, ev.cost_vec)
    strong = refs["models"][ev.models[strong_index]]
    weak = refs["cheapest"]
    curve = metrics.curve_metrics(
        [p.cost for p in points],
        [p.effectiveness for p in points],
        e_weak=weak["effectiveness"],
        e_strong=strong["effectiveness"],
        c_weak=weak["cost"],
        c_strong=strong["cost"],
        c_lo=float(ev.cost_vec.min() / ev.cost_vec.max()),
        levels=cpt_levels,
    )
    frontier = policy.pareto_frontier([p.cost for p in points], [p.effectiveness for p in points])
    curve.update(
        weak=weak["model"],
        strong=ev.models[strong_index],
        pareto=[
            {
                "cost": points[i].cost,
                "effectiveness": points[i].effectiveness,
                "cost_weight": points[i].cost_weight,
            }
            for i in frontier
        ],
    )
    return curve


def _calibrated(recorded: dict, ev: _Evaluated, n_resamples: int, seed: int) -> dict:
    """The calibrated operating points on the test rows.

    The weights were chosen at training on out-of-fold predictions of the train rows;
    the test rows are touched here once, to report what they give.
    """
    out = {key: recorded.get(key) for key in ("method", "folds", "fold_seed", "n_rows", "sbs")}
    out["targets"] = calibration.apply_to_test(
        recorded,
        ev.p_eval,
        ev.router_scores,
        ev.cost_vec,
        ev.sbs_index,
        usd=ev.usd,
        models=ev.models,
        n_resamples=n_resamples,
        seed=seed,
    )
    out["most_expensive"] = ev.models[int(np.argmax(ev.cost_vec))]
    return out


def _finite(obj):
    """JSON has no NaN: write null for it."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def run(output: str | Path, **kwargs) -> dict:
    record = evaluate(**kwargs)
    write_json(output, _finite(record))
    d = record["decision"]
    log.info(
        "%s %s %s: E=%.4f C=%.4f on %d tasks (%s answers)",
        record["dataset"],
        kwargs.get("router"),
        kwargs.get("setting"),
        d["effectiveness"],
        d["cost"],
        record["n_tasks"],
        "SIMULATED" if record["simulated"] else "real",
    )
    return record


def load_eval(path: str | Path) -> dict:
    return read_json(path, ("dataset", "router", "setting", "decision", "references"))


def load_evals(paths) -> list[dict]:
    """Evaluation records of several files, checked to share one portfolio."""
    records = [load_eval(p) for p in paths]
    if not records:
        raise InputError("no evaluation records given")
    first = records[0]
    for path, rec in zip(paths, records, strict=True):
        if rec.get("models") != first.get("models"):
            raise InputError(
                f"portfolio {rec.get('models')} differs from {first.get('models')}",
                path=path,
                field="models",
            )
    return records
