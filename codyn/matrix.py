"""The instance x model score matrix: one Parquet file per dataset.

Columns: ``task_id`` (unique), ``dataset``, ``kind``, ``prompt``, then for every
portfolio model ``m``: ``score::m`` (float in [0, 1] unless declared otherwise) and
``usd::m`` (dollars of that call, NaN when unknown). The relative per-call cost
weights, the model order, whether answers were simulated, and where the matrix came
from are stored in the Parquet key-value metadata under ``codyn``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from codyn.errors import InputError
from codyn.io import atomic_path

SCORE_PREFIX = "score::"
USD_PREFIX = "usd::"
BASE_COLUMNS = ["task_id", "dataset", "kind", "prompt"]


@dataclass
class Matrix:
    frame: pd.DataFrame
    models: list[str]
    costs: dict[str, float]  # relative cost weight per call
    simulated: bool = False
    source: str = ""
    meta: dict = field(default_factory=dict)

    # ---- views -------------------------------------------------------------
    @property
    def task_ids(self) -> list[str]:
        return self.frame["task_id"].tolist()

    def scores(self) -> pd.DataFrame:
        """tasks x models frame of scores, indexed by task_id, columns = model names."""
        out = self.frame[[SCORE_PREFIX + m for m in self.models]].copy()
        out.columns = self.models
        out.index = self.frame["task_id"].values
        return out

    def usd(self) -> pd.DataFrame:
        out = self.frame[[USD_PREFIX + m for m in self.models]].copy()
        out.columns = self.models
        out.index = self.frame["task_id"].values
        return out

    def cost_vector(self) -> np.ndarray:
        return np.array([self.costs[m] for m in self.models], dtype=float)

    def subset(self, task_ids) -> Matrix:
        idx = pd.Index(self.frame["task_id"])
        pos = idx.get_indexer(list(task_ids))
        if (pos < 0).any():
            missing = [t for t, p in zip(task_ids, pos, strict=True) if p < 0][:5]
            raise InputError(f"task ids not in matrix: {missing}", field="task_id")
        return Matrix(
            self.frame.iloc[pos].reset_index(drop=True),
            list(self.models),
            dict(self.costs),
            self.simulated,
            self.source,
            dict(self.meta),
        )

    # ---- checks --------------------------------------------------------------
    def validate(self, path=None) -> Matrix:
        for col in BASE_COLUMNS:
            if col not in self.frame.columns:
                raise InputError("missing column", path=path, field=col)
        dup = self.frame["task_id"][self.frame["task_id"].duplicated()].tolist()
        if dup:
            raise InputError(f"duplicate task ids {dup[:5]}", path=path, field="task_id")
        for m in self.models:
            if m not in self.costs:
                raise InputError(f"model {m!r} has no cost", path=path, field="costs")
            for prefix in (SCORE_PREFIX, USD_PREFIX):
                if prefix + m not in self.frame.columns:
                    raise InputError("missing column", path=path, field=prefix + m)
            col = self.frame[SCORE_PREFIX + m]
            bad = self.frame["task_id"][col.isna()].tolist()
            if bad:
                raise InputError(f"missing scores for {bad[:5]}", path=path, field=SCORE_PREFIX + m)
        return self

    # ---- files ---------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        self.validate(path)
        cols = BASE_COLUMNS + [c for c in self.frame.columns if c not in BASE_COLUMNS]
        table = pa.Table.from_pandas(self.frame[cols], preserve_index=False)
        meta = {
            "models": self.models,
            "costs": self.costs,
            "simulated": self.simulated,
            "source": self.source,
            "meta": self.meta,
        }
        table = table.replace_schema_metadata(
            {**(table.schema.metadata or {}), b"codyn": json.dumps(meta).encode()}
        )
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)

    @classmethod
    def load(cls, path: str | Path) -> Matrix:
        path = Path(path)
        if not path.exists():
            raise InputError("file does not exist", path=path)
        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise InputError(f"not a readable Parquet file ({exc})", path=path) from exc
        raw = (table.schema.metadata or {}).get(b"codyn")
        if raw is None:
            raise InputError("no codyn metadata (not written by codyn.matrix)", path=path)
        meta = json.loads(raw)
        m = cls(
            table.to_pandas(),
            meta["models"],
            {k: float(v) for k, v in meta["costs"].items()},
            bool(meta.get("simulated", False)),
            meta.get("source", ""),
            meta.get("meta", {}),
        )
        return m.validate(path)
