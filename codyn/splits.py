"""Train/test splits, normalisation and ranking-score targets (paper 6.1.3, A.7).

Two files per dataset, both written down so every router and setting reads the same:

``results/splits/{dataset}/split.json``
    ``{dataset, seed, derived_seed, test_size, held_out, n, n_train, n_test, rounding,
    train: [ids], test: [ids]}``. The task ids are sorted, then permuted with a numpy
    generator seeded by sha256("{seed}:{dataset}"); the first ``n_test`` go to test.
    ``n_test = floor(n * test_size)`` (at least 1 and at most n - 1 when n >= 2): the
    rounding that reproduces every column of the paper's Table 3 (e.g. 1526 -> 381
    test). Splitting each dataset on its own stratifies the union by dataset.
    A generalisation dataset (config ``generalisation``, paper A.4) is ``held_out``:
    every id is test.

``results/splits/{dataset}/targets.parquet``
    The format of :mod:`codyn.routing_data`: ``task_id, dataset, kind, prompt, split``,
    per model ``score::m`` (raw), ``norm::m`` (standard-scaled: mean and population std
    fitted on the train rows only; a constant column gets std 1 so it maps to 0, as
    scikit-learn's StandardScaler does), and per cost setting ``rs::s::m`` =
    lambda1 * norm + lambda2 * CS^-1 (codyn.ranking). A held-out dataset has no train
    rows; its scaler is fitted on all its rows (its targets are never trained on).
    Metadata ``codyn``: models, costs, settings {name: lambda2}, lambda1,
    scaler {m: {mean, std}}, scaler_fit, normalisation, simulated, dataset.

Normalisation (config ``splits.normalisation``):
    ``per_model`` (default; the paper's A.7 and DESIGN.md): each model column scaled on
    its own. It changes which model is best on a row: a weak model's rare success gets a
    large z-score, so the argmax of ``norm`` is not the raw-score oracle.
    ``per_dataset``: one mean and std over all of the dataset's train scores, shared by
    every model; it brings datasets to one scale without reordering models in a row.
    ``none``: raw scores. See benchmarks/NOTES.md for what each does to router quality.

The SVEN bias penalty (A.7; config ``splits.sven_penalty``): the scoring stage folds a
per-model constant P_m into every SVEN score (codyn.scoring.classify), and the matrix
keeps it as ``meta["score_penalty"]`` (signed: -P_m when subtracted). A per-model
constant is exactly what per-model standard scaling removes, so with ``before_scaling``
the penalty never reaches a training target. ``after_scaling`` (default; the paper adds
the penalty "for fine-tuning", so it must reach the targets): the scaler is fitted on
the scores without the penalty and the signed penalty is added to the scaled score,
``norm = (raw - penalty - mean) / std + penalty``: a model that answers "vulnerable"
to everything loses P_m standard deviations against models that do not. The raw
``score::m`` columns (what evaluation reads) keep the penalty either way.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from codyn.errors import InputError
from codyn.io import atomic_path, read_json, write_json
from codyn.matrix import SCORE_PREFIX, Matrix
from codyn.ranking import ranking_score

ROUNDING = "n_test = floor(n * test_size), clipped to [1, n - 1] when n >= 2 (paper Table 3)"


def derived_seed(seed: int, dataset: str) -> int:
    return int(hashlib.sha256(f"{seed}:{dataset}".encode()).hexdigest()[:16], 16)


def n_test_for(n: int, test_size: float) -> int:
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    if n < 2:
        return n
    return min(max(math.floor(n * test_size + 1e-9), 1), n - 1)


def make_split(
    task_ids, *, dataset: str, seed: int, test_size: float, held_out: bool = False
) -> dict:
    ids = sorted(str(t) for t in task_ids)
    if len(set(ids)) != len(ids):
        raise InputError("duplicate task ids", field="task_id")
    if not ids:
        raise InputError(f"dataset {dataset!r} has no tasks to split")
    rng_seed = derived_seed(seed, dataset)
    order = np.random.default_rng(rng_seed).permutation(len(ids))
    shuffled = [ids[i] for i in order]
    n_test = len(ids) if held_out else n_test_for(len(ids), test_size)
    test, train = sorted(shuffled[:n_test]), sorted(shuffled[n_test:])
    return {
        "dataset": dataset,
        "seed": int(seed),
        "derived_seed": rng_seed,
        "test_size": float(test_size),
        "held_out": bool(held_out),
        "rounding": "held out: every task is test" if held_out else ROUNDING,
        "n": len(ids),
        "n_train": len(train),
        "n_test": len(test),
        "train": train,
        "test": test,
    }


def write_split(
    matrix_path, split_path, *, dataset: str, seed: int, test_size: float, held_out: bool
) -> dict:
    matrix = Matrix.load(matrix_path)
    split = make_split(
        matrix.task_ids, dataset=dataset, seed=seed, test_size=test_size, held_out=held_out
    )
    write_json(split_path, split)
    return split


def read_split(path, task_ids=None) -> dict:
    """A split.json, checked: train and test disjoint and (given task_ids) covering them exactly."""
    path = Path(path)
    split = read_json(path)
    for key in ("train", "test"):
        if not isinstance(split.get(key), list):
            raise InputError("missing list", path=path, field=key)
    both = set(split["train"]) & set(split["test"])
    if both:
        raise InputError(f"ids in train and test: {sorted(both)[:5]}", path=path, field="test")
    if task_ids is not None:
        listed = set(split["train"]) | set(split["test"])
        ids = set(map(str, task_ids))
        if listed != ids:
            extra, missing = sorted(listed - ids)[:5], sorted(ids - listed)[:5]
            raise InputError(
                f"split does not match the matrix (not in matrix: {extra}; not in split: {missing})",
                path=path,
            )
    return split


NORMALISATIONS = ("per_model", "per_dataset", "none")
PENALTY_STAGES = ("after_scaling", "before_scaling")


def fit_scaler(
    scores: pd.DataFrame, normalisation: str = "per_model"
) -> dict[str, dict[str, float]]:
    """Mean and population std per model column (``per_model``), shared by all columns
    (``per_dataset``), or the identity (``none``); a constant column gets std 1."""
    if normalisation not in NORMALISATIONS:
        raise InputError(
            f"unknown normalisation {normalisation!r} (allowed: {', '.join(NORMALISATIONS)})",
            field="splits.normalisation",
        )
    if normalisation == "none":
        return {m: {"mean": 0.0, "std": 1.0} for m in scores.columns}
    if normalisation == "per_dataset":
        flat = scores.to_numpy(dtype=float).ravel()
        mean, std = (float(flat.mean()), float(flat.std(ddof=0))) if flat.size else (0.0, 1.0)
        return {m: {"mean": mean, "std": std if std > 1e-12 else 1.0} for m in scores.columns}
    out = {}
    for m in scores.columns:
        col = scores[m].to_numpy(dtype=float)
        mean, std = float(col.mean()), float(col.std(ddof=0))
        out[m] = {"mean": mean, "std": std if std > 1e-12 else 1.0}
    return out


def build_targets(
    matrix: Matrix,
    split: dict,
    *,
    settings: dict[str, float],
    lambda1: float = 1.0,
    normalisation: str = "per_model",
    sven_penalty: str = "after_scaling",
) -> tuple[pd.DataFrame, dict]:
    """The targets frame and metadata (see module docstring)."""
    if sven_penalty not in PENALTY_STAGES:
        raise InputError(
            f"unknown sven_penalty {sven_penalty!r} (allowed: {', '.join(PENALTY_STAGES)})",
            field="splits.sven_penalty",
        )
    ids = matrix.frame["task_id"].astype(str)
    test = set(split["test"])
    part = np.where(ids.isin(test), "test", "train")
    raw = matrix.scores()
    penalty = {m: 0.0 for m in matrix.models}
    if sven_penalty == "after_scaling":
        penalty.update((matrix.meta.get("score_penalty") or {}).items())
    scaled_from = raw - pd.Series(penalty)[raw.columns]
    train_mask = part == "train"
    held_out = bool(split.get("held_out")) or not train_mask.any()
    scaler = fit_scaler(scaled_from if held_out else scaled_from[train_mask], normalisation)
    frame = matrix.frame[["task_id", "dataset", "kind", "prompt"]].copy()
    frame["task_id"] = ids.values
    frame["split"] = part
    norm = np.empty(raw.shape)
    for j, m in enumerate(matrix.models):
        frame[SCORE_PREFIX + m] = raw[m].to_numpy(dtype=float)
        col = scaled_from[m].to_numpy(dtype=float)
        norm[:, j] = (col - scaler[m]["mean"]) / scaler[m]["std"] + penalty[m]
        frame[f"norm::{m}"] = norm[:, j]
    for name, lambda2 in settings.items():
        rs = ranking_score(norm, matrix.cost_vector(), lambda1=lambda1, lambda2=float(lambda2))
        for j, m in enumerate(matrix.models):
            frame[f"rs::{name}::{m}"] = rs[:, j]
    meta = {
        "models": list(matrix.models),
        "costs": {m: float(matrix.costs[m]) for m in matrix.models},
        "settings": {k: float(v) for k, v in settings.items()},
        "lambda1": float(lambda1),
        "scaler": scaler,
        "scaler_fit": "all rows (held-out dataset)" if held_out else "train rows",
        "normalisation": normalisation,
        "sven_penalty": {
            "stage": sven_penalty,
            "added_after_scaling": {m: p for m, p in penalty.items() if p},
        },
        "simulated": bool(matrix.simulated),
        "dataset": str(
            matrix.meta.get("dataset") or (frame["dataset"].iloc[0] if len(frame) else "")
        ),
        "source": matrix.source,
    }
    return frame, meta


def write_targets(
    matrix_path,
    split_path,
    targets_path,
    *,
    settings: dict[str, float],
    lambda1: float = 1.0,
    normalisation: str = "per_model",
    sven_penalty: str = "after_scaling",
):
    matrix = Matrix.load(matrix_path)
    split = read_split(split_path, matrix.task_ids)
    frame, meta = build_targets(
        matrix,
        split,
        settings=settings,
        lambda1=lambda1,
        normalisation=normalisation,
        sven_penalty=sven_penalty,
    )
    save_targets(frame, meta, targets_path)
    return frame, meta


def save_targets(frame: pd.DataFrame, meta: dict, path) -> None:
    """A targets frame and its ``codyn`` metadata as one Parquet file (atomic)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), b"codyn": json.dumps(meta).encode()}
    )
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
