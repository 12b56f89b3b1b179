"""Train and apply routers from the pipeline's files (what scripts/train.py and
scripts/predict.py call).

Predictions file ``results/predictions/{router}/{setting}/{dataset}.parquet``: columns
``task_id``, ``split``, ``pred::<model>`` (predicted ranking score; -inf for a model
the router cannot pick), and for autoregressive routers ``malformed`` (the router's
output was not a valid ranking; the row's predictions are its fallback ranking);
Parquet metadata ``codyn`` = {router, type, setting, models, costs, dataset, simulated,
malformed (count), on_malformed and decoding (autoregressive routers), router_sha256,
calibration (router.json's out-of-fold cost weights)}.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from codyn.errors import InputError
from codyn.evaluation import calibration
from codyn.evaluation.evaluate import SWEPT_TYPES
from codyn.io import atomic_path, honour_umask, sha256_file
from codyn.ranking import ranking_score
from codyn.routers import load_router, make_router
from codyn.routers.base import ROUTER_JSON
from codyn.routing_data import load_routing_data, read_targets

log = logging.getLogger(__name__)
PRED_PREFIX = "pred::"
MALFORMED_COLUMN = "malformed"


def train_router(
    target_paths: list[str],
    setting: str,
    params: dict,
    out_dir: str | Path,
    seed: int = 0,
    portfolio: list[str] | None = None,
    lambda2: float | None = None,
    threads: int | None = None,
    evaluation: dict | None = None,
) -> dict:
    """Fit the router ``params`` describes on the train rows and save it to ``out_dir``.

    Routers with a cost knob also get their cost weights chosen on out-of-fold predictions
    of the train rows (:mod:`codyn.evaluation.calibration`; K = the entry's
    ``calibration_folds``, else ``evaluation.calibration_folds``; targets from
    ``evaluation``): K more fits on K-1 folds each, recorded in router.json ``calibration``
    with the predictions in ``oof_predictions.parquet``. The router saved is the one fitted
    on all train rows.

    Every input check (portfolio, cost setting, finite targets, non-empty set, router
    params) runs before training; the folder appears only when training succeeded.
    Returns router.json's content.
    """
    params = dict(params)
    if "type" not in params:
        raise InputError("router entry has no type", field="type")
    if threads:
        import torch

        # The rule's threads bound every router (the encoders of knn/mlp/rorf run torch too).
        torch.set_num_threads(int(threads))
        if params.get("threads") is None and params["type"] in ("cls", "ar-sft", "ar-grpo"):
            params["threads"] = int(threads)
    data = load_routing_data([str(p) for p in target_paths], setting, split="train")
    if lambda2 is not None and not np.isclose(data.lambda2, float(lambda2)):
        raise InputError(
            f"targets were built with lambda2={data.lambda2} for {setting}, config says {lambda2}",
            path=target_paths[0],
            field=f"settings.{setting}",
        )
    router = make_router(params["type"], params, seed=seed)
    log.info(
        "training %s on %d prompts from %d file(s), setting %s",
        params["type"],
        len(data),
        len(target_paths),
        setting,
    )
    router.fit(data, portfolio=portfolio)
    oof = _calibrate(router, params, data, dict(evaluation or {}), seed)
    out_dir = Path(out_dir)
    _save_swapped(router, oof, out_dir)
    meta = json.loads((out_dir / ROUTER_JSON).read_text(encoding="utf-8"))
    log.info("saved %s router to %s: %s", params["type"], out_dir, meta["metrics"])
    return meta


def _calibrate(router, params: dict, data, evaluation: dict, seed: int):
    """Choose the router's cost weights on out-of-fold predictions of the train rows (routers
    with a cost knob, K > 0); the out-of-fold predictions, or None."""
    folds = int(params.get("calibration_folds", evaluation.get("calibration_folds", 5)))
    oof = None
    if params["type"] in SWEPT_TYPES and folds > 0:
        oof = calibration.cross_fit(
            lambda: make_router(params["type"], params, seed=seed), data, folds, seed
        )
        router.calibration = calibration.choose_weights(
            oof, calibration.targets_from_config(evaluation)
        )
        log.info(
            "cost weights chosen on out-of-fold predictions (%d folds, %.1fs more training): %s",
            folds,
            oof.fit_seconds,
            {k: round(v["cost_weight"], 4) for k, v in router.calibration["targets"].items()},
        )
    return oof


def _save_swapped(router, oof, out_dir: Path) -> None:
    """Save aside and swap in, so a failed save never leaves a folder that looks done."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        if oof is not None:
            calibration.save_oof(oof, tmp)
        router.save(tmp)
        honour_umask(tmp, directory=True)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def predict_router(
    router_json: str | Path,
    targets_path: str | Path,
    out_path: str | Path,
    threads: int | None = None,
    router=None,
) -> pd.DataFrame:
    """Score every row (train and test) of one targets file with a saved router."""
    router_dir = Path(router_json).parent
    router = router or load_router(router_dir)
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    df, meta = read_targets(targets_path)
    if list(meta["models"]) != list(router.models):
        raise InputError(
            f"dataset portfolio {meta['models']} differs from the router's {router.models} ({router_dir})",
            path=targets_path,
            field="models",
        )
    if router.setting not in meta["settings"]:
        raise InputError(
            f"no cost setting {router.setting!r} in targets", path=targets_path, field="settings"
        )
    data = load_routing_data([str(targets_path)], router.setting, split=None)
    started = time.perf_counter()
    if router.type == "oracle":
        # The paper's oracle: best raw score (plus the setting's cost term), cheapest on
        # ties; the normalised targets would break raw-score ties differently.
        scores = router.predict_from_targets(
            ranking_score(data.scores, data.costs, lambda2=data.lambda2)
        )
    else:
        scores = router.predict_scores(data.prompts)
    seconds = time.perf_counter() - started
    frame = pd.DataFrame({"task_id": data.task_ids, "split": df["split"].astype(str).tolist()})
    for j, model in enumerate(router.models):
        frame[PRED_PREFIX + model] = scores[:, j]
    flags = getattr(router, "malformed_rows", None)
    if flags is not None and router.type != "oracle":
        frame[MALFORMED_COLUMN] = np.asarray(flags, dtype=bool)
    info = {
        "router": router_dir.parent.name,
        "type": router.type,
        "setting": router.setting,
        "models": router.models,
        "costs": [float(c) for c in router.costs],
        "dataset": meta.get("dataset", Path(targets_path).parent.name),
        # Simulated answers anywhere upstream make these predictions simulated too.
        "simulated": bool(meta.get("simulated", False) or router.simulated),
        "router_sha256": sha256_file(router_dir / ROUTER_JSON),
        "targets_sha256": sha256_file(targets_path),
        "predict_seconds": round(seconds, 3),
        # the cost weights chosen out-of-fold at training (evaluation applies them to test)
        "calibration": router.calibration,
    }
    if hasattr(router, "last_malformed"):
        info["malformed"] = int(router.last_malformed)
        info["on_malformed"] = router.params.get("on_malformed", "fallback")
        info["decoding"] = router.params.get("decoding")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), b"codyn": json.dumps(info).encode()}
    )
    with atomic_path(out_path) as tmp:
        pq.write_table(table, tmp)
    log.info(
        "predicted %d rows of %s with %s in %.1fs", len(frame), info["dataset"], router_dir, seconds
    )
    return frame


def predict_datasets(router_json, targets_paths, out_paths, threads: int | None = None) -> None:
    """:func:`predict_router` for several datasets, loading the router once."""
    if len(targets_paths) != len(out_paths):
        raise ValueError("one output per targets file")
    router = load_router(Path(router_json).parent)
    for targets_path in targets_paths:  # every portfolio check before any output
        _, meta = read_targets(targets_path)
        if list(meta["models"]) != list(router.models):
            raise InputError(
                f"dataset portfolio {meta['models']} differs from the router's {router.models}",
                path=targets_path,
                field="models",
            )
    for targets_path, out_path in zip(targets_paths, out_paths, strict=True):
        predict_router(router_json, targets_path, out_path, threads=threads, router=router)
