"""The instance x model score matrix: one Parquet file per dataset.

Columns: ``task_id`` (unique), ``dataset``, ``kind``, ``prompt``, then for every
portfolio model ``m``: ``score::m`` (float in [0, 1] unless declared otherwise) and
``usd::m`` (dollars of that call, NaN when unknown), and, when the score files carry the
opt-in visible-example verdicts (config ``scoring.visible``), ``visible::m``: 1.0 when the
answer passes every example its prompt shows, the share it passes when it fails some
(0 when it did not run), NaN when the prompt shows none; and with them ``unseen::m``: the
answer's score on the hidden tests minus those its prompt shows (codyn.scoring.unseen),
NaN for a task whose hidden tests are all shown (excluded, the same for every model). The relative per-call cost
weights, the model order, whether answers were simulated, and where the matrix came
from are stored in the Parquet key-value metadata under ``codyn``.

``meta["score_range"]`` ([lo, hi]) declares scores outside [0, 1]: a classify
(SVEN) matrix declares [-1, 2] because the scoring stage folds the A.7 bias penalty
into ``score`` (subtracted by default, added with the paper's literal option).
``meta["score_penalty"]`` ({model: score - raw_score}, classify only) keeps that signed
per-model penalty, so the targets stage can apply it after per-model scaling
(codyn.splits), where it would otherwise vanish.

Two builders make a matrix: :func:`build_matrix` from the pipeline's task, score and
response files, and :mod:`codyn.importers` from published tables.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from codyn.errors import InputError
from codyn.io import atomic_path, read_csv, read_jsonl
from codyn.records import SCORE_COLUMNS, SCORE_STATUSES, validate_task

log = logging.getLogger(__name__)

SCORE_PREFIX = "score::"
USD_PREFIX = "usd::"
VISIBLE_PREFIX = "visible::"
UNSEEN_PREFIX = "unseen::"
UNSEEN_EXCLUDED = ("all_visible", "unsupported")
BASE_COLUMNS = ["task_id", "dataset", "kind", "prompt"]
DEFAULT_SCORE_RANGE = (0.0, 1.0)
# Scores of classify tasks carry the A.7 penalty: accuracy in {0, 1} minus (or plus) P in [0, 1].
CLASSIFY_SCORE_RANGE = (-1.0, 2.0)
NOT_SCORABLE = "not_scorable"


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

    def visible(self) -> pd.DataFrame | None:
        """tasks x models frame of visible-example shares (see module docstring), or None."""
        return self._family(VISIBLE_PREFIX)

    def unseen(self) -> pd.DataFrame | None:
        """tasks x models frame of hidden-minus-visible scores (NaN: excluded), or None."""
        return self._family(UNSEEN_PREFIX)

    def _family(self, prefix: str) -> pd.DataFrame | None:
        cols = [prefix + m for m in self.models]
        if not all(c in self.frame.columns for c in cols):
            return None
        out = self.frame[cols].copy()
        out.columns = self.models
        out.index = self.frame["task_id"].values
        return out

    def usd(self) -> pd.DataFrame:
        out = self.frame[[USD_PREFIX + m for m in self.models]].copy()
        out.columns = self.models
        out.index = self.frame["task_id"].values
        return out

    @property
    def score_range(self) -> tuple[float, float]:
        lo, hi = self.meta.get("score_range", DEFAULT_SCORE_RANGE)
        return float(lo), float(hi)

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
            lo, hi = self.score_range
            out = self.frame["task_id"][(col < lo) | (col > hi)].tolist()
            if out:
                raise InputError(
                    f"scores outside the declared range [{lo}, {hi}] for {out[:5]}",
                    path=path,
                    field=SCORE_PREFIX + m,
                )
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


# ---- building from pipeline outputs ------------------------------------------------


def _read_tasks(path) -> pd.DataFrame:
    rows = []
    for lineno, rec in enumerate(read_jsonl(path), start=1):
        validate_task(rec, path=path, record=f"line {lineno}")
        rows.append({"task_id": rec["id"], "kind": rec["kind"], "prompt": rec["prompt"]})
    if not rows:
        raise InputError("no tasks", path=path)
    frame = pd.DataFrame(rows)
    dup = frame["task_id"][frame["task_id"].duplicated()].tolist()
    if dup:
        raise InputError(f"duplicate task ids {dup[:5]}", path=path, field="id")
    return frame


def read_scores(path, model: str) -> pd.DataFrame:
    """One model's score CSV, checked: columns, model name, statuses, unique task ids."""
    # Ids and names as written: without keep_default_na a task "NA" or "null" would
    # become a missing id; only the score and detail columns know blanks.
    frame = read_csv(
        path,
        SCORE_COLUMNS,
        dtype={"task_id": str, "model": str, "status": str},
        keep_default_na=False,
        na_values={"score": ["", "nan", "NaN"], "detail": [""]},
    )
    wrong = frame.index[frame["model"] != model].tolist()
    if wrong:
        i = wrong[0]
        raise InputError(
            f"model {frame['model'].iloc[i]!r}, expected {model!r}",
            path=path,
            record=frame["task_id"].iloc[i],
            field="model",
        )
    bad = frame.index[~frame["status"].isin(SCORE_STATUSES)].tolist()
    if bad:
        i = bad[0]
        raise InputError(
            f"unknown status {frame['status'].iloc[i]!r} (allowed: {', '.join(SCORE_STATUSES)})",
            path=path,
            record=frame["task_id"].iloc[i],
            field="status",
        )
    dup = frame["task_id"][frame["task_id"].duplicated()].tolist()
    if dup:
        raise InputError(f"duplicate task ids {dup[:5]}", path=path, field="task_id")
    frame["score"] = pd.to_numeric(frame["score"], errors="coerce")
    scorable = frame["status"] != NOT_SCORABLE
    missing = frame["task_id"][scorable & frame["score"].isna()].tolist()
    if missing:
        raise InputError(
            f"no numeric score although status is not {NOT_SCORABLE!r}",
            path=path,
            record=missing[0],
            field="score",
        )
    return frame.set_index("task_id")


def visible_share(scores: pd.DataFrame, path=None) -> np.ndarray:
    """visible::m from a score file's visible columns (see module docstring)."""
    out = np.full(len(scores), np.nan)
    for i, (task_id, row) in enumerate(scores.iterrows()):
        status = row.get("visible_status")
        if (
            status is None
            or (isinstance(status, float) and np.isnan(status))
            or status == "no_examples"
        ):
            continue
        if status == "error":
            out[i] = 0.0
            continue
        try:
            passed, total = int(row["visible_passed"]), int(row["visible_total"])
        except (TypeError, ValueError) as exc:
            raise InputError(
                "visible_passed / visible_total are not integers",
                path=path,
                record=task_id,
                field="visible_passed",
            ) from exc
        if (
            status not in ("pass", "fail")
            or total <= 0
            or not 0 <= passed <= total
            or (status == "pass") != (passed == total)
        ):
            raise InputError(
                f"visible verdict {status!r} {passed}/{total} is not consistent",
                path=path,
                record=task_id,
                field="visible_status",
            )
        out[i] = 1.0 if status == "pass" else passed / total
    return out


def unseen_score(scores: pd.DataFrame, path=None) -> np.ndarray:
    """unseen::m from a score file's unseen columns (see module docstring)."""
    status = scores["unseen_status"].fillna("").astype(str)
    value = pd.to_numeric(scores["unseen_score"], errors="coerce").to_numpy(dtype=float)
    # empty status: a task kind without visible examples (not `generate`)
    excluded = (status.isin(UNSEEN_EXCLUDED) | (status == "")).to_numpy()
    bad = (~excluded & (np.isnan(value) | (value < 0) | (value > 1))) | (
        excluded & ~np.isnan(value)
    )
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"unseen_score {scores['unseen_score'].iloc[i]!r} does not fit unseen_status "
            f"{status.iloc[i]!r} (a number in [0, 1], empty when {' or '.join(UNSEEN_EXCLUDED)})",
            path=path,
            record=scores.index[i],
            field="unseen_score",
        )
    return np.where(excluded, np.nan, value)


def _example_columns(frame: pd.DataFrame, scores: dict[str, pd.DataFrame], paths: dict) -> None:
    """Add visible::m and unseen::m when the score files carry them (all models or none)."""
    models = list(scores)
    for column, prefix, read in (
        ("visible_status", VISIBLE_PREFIX, visible_share),
        ("unseen_status", UNSEEN_PREFIX, unseen_score),
    ):
        have = [m for m in models if column in scores[m].columns]
        if have and len(have) < len(models):
            absent = [m for m in models if m not in have]
            raise InputError(
                f"{column} columns for {have} but not for {absent} (score them all with the "
                "same scoring.visible and the same codyn version)",
                path=paths[absent[0]],
                field=column,
            )
        for m in have:
            frame[prefix + m] = read(scores[m], paths[m])
    if any(UNSEEN_PREFIX + m in frame.columns for m in models):
        gone = np.column_stack([frame[UNSEEN_PREFIX + m].isna() for m in models])
        mixed = np.flatnonzero(gone.any(axis=1) & ~gone.all(axis=1))
        if len(mixed):
            which = [m for j, m in enumerate(models) if gone[mixed[0], j]]
            raise InputError(
                f"hidden tests all visible for {which} but not for the other models",
                path=paths[which[0]],
                record=frame["task_id"].iloc[mixed[0]],
                field="unseen_status",
            )


def read_costs_usd(path) -> dict[str, float]:
    """task_id -> cost_usd of the last response line for it (the file is append-only)."""
    out: dict[str, float] = {}
    for lineno, rec in enumerate(read_jsonl(path, allow_truncated_last=True), start=1):
        task_id = rec.get("task_id")
        if not isinstance(task_id, str):
            raise InputError("missing or non-string task_id", path=path, record=f"line {lineno}")
        cost = rec.get("cost_usd")
        if cost is not None and not isinstance(cost, int | float):
            raise InputError(
                "cost_usd is not a number", path=path, record=task_id, field="cost_usd"
            )
        out[task_id] = float("nan") if cost is None else float(cost)
    return out


def build_matrix(
    tasks_path,
    score_paths: dict,
    response_paths: dict,
    models: list[str],
    costs: dict[str, float],
    simulated: bool,
    dataset: str,
    answers: str | None = None,
) -> Matrix:
    """The score matrix of one pipeline dataset.

    Tasks ``not_scorable`` for every model (e.g. no tests) are dropped and counted
    in ``meta["dropped"]``; a task that is not_scorable for some models only, or
    scored for some models and absent for others, is an error (a partial row would
    bias every mean). ``usd::m`` is the response's ``cost_usd`` (NaN when unknown or
    when no response file is given).
    """
    models = list(models)
    _check_portfolio(models, score_paths, costs)
    tasks = _read_tasks(tasks_path)
    scores = {m: read_scores(score_paths[m], m) for m in models}
    _check_coverage(tasks, scores, models, tasks_path, score_paths)
    drop, reasons = _unscorable(tasks, scores, models, score_paths, dataset)
    kept = tasks[~drop].reset_index(drop=True)
    if kept.empty:
        raise InputError("every task is not_scorable", path=tasks_path)

    frame = kept[["task_id"]].copy()
    frame["dataset"] = dataset
    frame["kind"] = kept["kind"]
    frame["prompt"] = kept["prompt"]
    for m in models:
        frame[SCORE_PREFIX + m] = scores[m].loc[kept["task_id"], "score"].to_numpy(dtype=float)
    usd_known = _add_usd(frame, models, response_paths)
    _example_columns(frame, {m: scores[m].loc[frame["task_id"]] for m in models}, score_paths)
    kinds = sorted(set(frame["kind"]))
    score_range = CLASSIFY_SCORE_RANGE if "classify" in kinds else DEFAULT_SCORE_RANGE
    penalty = _score_penalties(scores, models, kept["task_id"])
    meta = {
        "dataset": dataset,
        "kinds": kinds,
        "score_range": list(score_range),
        "n_tasks": int(len(tasks)),
        "dropped": {"count": int(drop.sum()), "status": NOT_SCORABLE, "reasons": dict(reasons)},
        "usd_known_share": usd_known,
    }
    if answers:
        meta["answers"] = answers  # simulated / replayed / generated (codyn.config.answers_kind)
    if penalty:
        meta["score_penalty"] = penalty
    matrix = Matrix(
        frame,
        models,
        {m: float(costs[m]) for m in models},
        bool(simulated),
        f"pipeline:{dataset}",
        meta,
    )
    return matrix.validate(tasks_path)


def _check_portfolio(models: list[str], score_paths: dict, costs: dict[str, float]) -> None:
    for m in models:
        if m not in score_paths:
            raise InputError(f"no score file for model {m!r}", field="score_paths")
        if m not in costs:
            raise InputError(f"model {m!r} has no cost", field="costs")
    unknown = sorted(set(costs) - set(models))
    if unknown:
        raise InputError(f"cost given for models not in the portfolio: {unknown}", field="costs")


def _check_coverage(
    tasks: pd.DataFrame, scores: dict, models: list[str], tasks_path, score_paths: dict
) -> None:
    """Every model's scores cover exactly the tasks of the task file."""
    known = set(tasks["task_id"])
    for m, frame in scores.items():
        extra = sorted(set(frame.index) - known)
        if extra:
            raise InputError(
                f"{len(extra)} task ids not in {tasks_path}, e.g. {extra[:3]}",
                path=score_paths[m],
                record=extra[0],
                field="task_id",
            )
    for task_id in tasks["task_id"]:
        absent = [m for m in models if task_id not in scores[m].index]
        if absent:
            present = [m for m in models if m not in absent]
            raise InputError(
                f"scored for {present or 'no model'} but missing for {absent}",
                path=score_paths[absent[0]],
                record=task_id,
                field="task_id",
            )


def _unscorable(
    tasks: pd.DataFrame, scores: dict, models: list[str], score_paths: dict, dataset: str
) -> tuple[np.ndarray, list[tuple[str, int]]]:
    """The mask of tasks not_scorable for every model, and the reasons with their counts;
    a task not_scorable for some models only is an error."""
    status = pd.DataFrame({m: scores[m].loc[tasks["task_id"], "status"].values for m in models})
    unscorable = (status == NOT_SCORABLE).to_numpy()
    mixed = np.flatnonzero(unscorable.any(axis=1) & ~unscorable.all(axis=1))
    if len(mixed):
        i = mixed[0]
        which = [m for j, m in enumerate(models) if unscorable[i, j]]
        raise InputError(
            f"not_scorable for {which} but scored for the other models",
            path=score_paths[which[0]],
            record=tasks["task_id"].iloc[i],
            field="status",
        )
    drop = unscorable.all(axis=1) if models else np.zeros(len(tasks), bool)
    reasons = Counter(
        str(scores[models[0]].loc[t, "detail"]) for t in tasks["task_id"][drop]
    ).most_common()
    if drop.any():
        log.info(
            "%s: dropped %d of %d tasks not_scorable for every model; reasons: %s",
            dataset,
            int(drop.sum()),
            len(tasks),
            "; ".join(f"{r} ({n})" for r, n in reasons),
        )
    return drop, reasons


def _add_usd(frame: pd.DataFrame, models: list[str], response_paths: dict) -> dict[str, float]:
    """Add each model's per-call dollars from its responses; returns the share known."""
    usd_known = {}
    for m in models:
        path = response_paths.get(m)
        per_task = read_costs_usd(path) if path else {}
        col = np.array([per_task.get(t, np.nan) for t in frame["task_id"]], dtype=float)
        frame[USD_PREFIX + m] = col
        usd_known[m] = float(np.isfinite(col).mean())
    return usd_known


def _score_penalties(scores: dict, models: list[str], task_ids: pd.Series) -> dict[str, float]:
    """Each penalised model's mean score minus raw score (the A.7 bias penalty) over the
    kept tasks."""
    penalty = {}
    for m in models:
        if "raw_score" not in scores[m].columns:
            continue
        rows = scores[m].loc[task_ids]
        delta = (rows["score"] - pd.to_numeric(rows["raw_score"], errors="coerce")).dropna()
        if len(delta):
            penalty[m] = float(delta.mean())
    return penalty
