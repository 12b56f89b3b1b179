"""What a router is trained and evaluated on: prompts and per-model targets.

Built from ``results/splits/{dataset}/targets.parquet`` files (see codyn.splits).
Those hold, per task: ``task_id, dataset, kind, prompt, split`` and per model ``m``
``score::m`` (raw), ``norm::m`` (standard-scaled on train), and per cost setting
``s``: ``rs::s::m`` (ranking score, the router's regression target).
Parquet metadata ``codyn``: models, costs, settings {name: lambda2}, lambda1, simulated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from codyn.errors import InputError


@dataclass
class RoutingData:
    task_ids: list[str]
    datasets: list[str]
    kinds: list[str]
    prompts: list[str]
    models: list[str]
    costs: np.ndarray  # relative cost per model, shape (m,)
    scores: np.ndarray  # raw scores, shape (n, m)
    targets: np.ndarray  # ranking scores for `setting`, shape (n, m)
    setting: str
    lambda2: float
    simulated: bool = False
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.task_ids)

    def take(self, rows) -> RoutingData:
        """The rows ``rows`` (indices or a boolean mask), as a new RoutingData."""
        idx = np.arange(len(self))[np.asarray(rows)]
        pick = lambda xs: [xs[i] for i in idx]  # noqa: E731
        return RoutingData(
            task_ids=pick(self.task_ids),
            datasets=pick(self.datasets),
            kinds=pick(self.kinds),
            prompts=pick(self.prompts),
            models=list(self.models),
            costs=self.costs,
            scores=self.scores[idx],
            targets=self.targets[idx],
            setting=self.setting,
            lambda2=self.lambda2,
            simulated=self.simulated,
            meta=dict(self.meta),
        )

    def check(self, where: str = "routing data") -> RoutingData:
        n, m = len(self.task_ids), len(self.models)
        if n == 0:
            raise InputError("empty training set", path=where)
        for name in ("scores", "targets"):
            arr = getattr(self, name)
            if arr.shape != (n, m):
                raise InputError(f"{name} has shape {arr.shape}, expected {(n, m)}", path=where)
            bad = np.argwhere(~np.isfinite(arr))
            if len(bad):
                i, j = bad[0]
                raise InputError(
                    f"non-finite {name} value",
                    path=where,
                    record=self.task_ids[i],
                    field=self.models[j],
                )
        return self


def read_targets(path: str | Path) -> tuple[pd.DataFrame, dict]:
    path = Path(path)
    if not path.exists():
        raise InputError("file does not exist", path=path)
    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(b"codyn")
    if raw is None:
        raise InputError("no codyn metadata (not written by codyn.splits)", path=path)
    return table.to_pandas(), json.loads(raw)


def load_routing_data(paths, setting: str, split: str | None = "train") -> RoutingData:
    """Concatenate targets files (same portfolio) for one cost setting and split."""
    frames, models, costs, meta0 = [], None, None, None
    for path in paths:
        df, meta = read_targets(path)
        if models is None:
            models, costs, meta0 = meta["models"], meta["costs"], meta
        elif meta["models"] != models:
            raise InputError(
                f"portfolio {meta['models']} differs from {models} of {paths[0]}",
                path=path,
                field="models",
            )
        if setting not in meta["settings"]:
            raise InputError(
                f"unknown cost setting {setting!r} (allowed: {sorted(meta['settings'])})", path=path
            )
        if split is not None:
            df = df[df["split"] == split]
        frames.append(df)
    if not frames:
        raise InputError("no targets files given")
    df = pd.concat(frames, ignore_index=True)
    for m in models:
        for col in (f"score::{m}", f"rs::{setting}::{m}"):
            if col not in df.columns:
                raise InputError("missing column", path=paths[0], field=col)
    data = RoutingData(
        task_ids=df["task_id"].astype(str).tolist(),
        datasets=df["dataset"].astype(str).tolist(),
        kinds=df["kind"].astype(str).tolist(),
        prompts=df["prompt"].astype(str).tolist(),
        models=list(models),
        costs=np.array([float(costs[m]) for m in models]),
        scores=df[[f"score::{m}" for m in models]].to_numpy(dtype=float),
        targets=df[[f"rs::{setting}::{m}" for m in models]].to_numpy(dtype=float),
        setting=setting,
        lambda2=float(meta0["settings"][setting]),
        simulated=bool(meta0.get("simulated", False)),
        meta={"lambda1": meta0.get("lambda1", 1.0), "sources": [str(p) for p in paths]},
    )
    return data
