"""Published instance x model score tables as a first-class source of a score matrix.

An imported dataset skips fetch, generate and score: the matrix rule reads the raw
files named by the dataset's ``import:`` spec (config ``datasets.<name>.import``):

``format``
    ``table`` (default), ``lcb`` or ``routerbench``.
``path`` / ``files``
    One file or a list of files (concatenated in order). Relative paths are taken
    relative to config ``mirror_dir`` when it is set. ``lcb`` instead takes
    ``performances`` (the leaderboard JSON) and ``submissions`` (list of
    ``submissions_*`` JSON files that hold the problem statements).
``id_column``, ``prompt_column``
    ``table``/``routerbench``: the unique id and the prompt text columns.
``score_columns``
    ``{model: column}``; a list means model name = column name. ``lcb`` and
    ``routerbench`` take ``models: {model: upstream name}`` instead (config model
    names must be plain identifiers; upstream names such as ``meta/llama-2-70b-chat``
    are not).
``cost_columns``
    ``{model: column}`` of per-call dollars, copied to ``usd::m``. ``routerbench``
    uses ``<upstream>|total_cost``.
``relative_cost``
    ``config`` (the models' ``cost`` in config, default) or ``mean_usd`` (mean
    dollars per call of each model over the imported rows; needs cost columns).
``score_scale``
    Multiplier applied to every score (LiveCodeBench pass@1 is in percent: 0.01).
``score_range``
    ``[lo, hi]`` allowed after scaling; default ``[0, 1]``.
``kind``
    Task kind of every row (default ``generate``).
``format_hint``
    ``csv``, ``jsonl`` or ``parquet`` when the file suffix does not tell.
``prompt_header`` (``lcb`` only)
    Problem fields stated on a first prompt line, from ``platform``, ``difficulty``,
    ``contest_date`` (default none: the statement as LiveCodeBench poses it).

Bad input (duplicate ids, missing scores, scores out of range, a cost for a model
that is not imported, a model without a cost) raises :class:`InputError` naming the
rows and columns; nothing is written. The rules are codyn.validate's: costs (config
or ``--cost``) are finite and >= 0 with one > 0; every cell of a cost column is a
finite number >= 0 (a blank or ``n/a`` cell is an error, never left out of a mean);
a table has rows; a model, a column or a header name appears once; ids are read as
text, exactly as the file writes them (CSV columns are read as text, JSONL without
type guessing, so ``007`` stays ``007``).
"""

from __future__ import annotations

import argparse
import ast
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from codyn import validate
from codyn.errors import CodynError, InputError
from codyn.matrix import SCORE_PREFIX, USD_PREFIX, Matrix
from codyn.prompts import format_header

log = logging.getLogger(__name__)

FORMATS = ("table", "lcb", "routerbench")
RELATIVE_COSTS = ("config", "mean_usd")


# ---- paths --------------------------------------------------------------------------


def _resolve(path: str, mirror_dir: str | None) -> str:
    p = Path(path)
    if not p.is_absolute() and mirror_dir:
        p = Path(mirror_dir) / p
    return str(p)


def import_files(spec: dict, mirror_dir: str | None = None) -> dict[str, list[str]]:
    """The raw files an import spec reads, by role, with mirror_dir applied.

    Rules use this for their ``input:`` so that a changed upstream file reruns the import.
    """
    fmt = spec.get("format", "table")
    if fmt not in FORMATS:
        raise InputError(
            f"unknown import format {fmt!r} (allowed: {', '.join(FORMATS)})", field="format"
        )
    if fmt == "lcb":
        for key in ("performances", "submissions"):
            if not spec.get(key):
                raise InputError("lcb import needs this key", field=key)
        subs = spec["submissions"]
        subs = [subs] if isinstance(subs, str) else list(subs)
        return {
            "performances": [_resolve(spec["performances"], mirror_dir)],
            "submissions": [_resolve(s, mirror_dir) for s in subs],
        }
    files = spec.get("files") or ([spec["path"]] if spec.get("path") else [])
    if isinstance(files, str):
        files = [files]
    if not files:
        raise InputError("import spec names no file (set path or files)", field="path")
    return {"tables": [_resolve(f, mirror_dir) for f in files]}


def all_import_files(spec: dict, mirror_dir: str | None = None) -> list[str]:
    return [p for paths in import_files(spec, mirror_dir).values() for p in paths]


# ---- reading ------------------------------------------------------------------------


def read_table(path: str, format_hint: str | None = None) -> pd.DataFrame:
    """A CSV, JSONL or Parquet file as a frame; errors name the file."""
    p = Path(path)
    if not p.exists():
        raise InputError("file does not exist", path=path)
    suffixes = [s.lower() for s in p.suffixes if s.lower() != ".gz"]
    by_suffix = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
    kind = format_hint or (by_suffix.get(suffixes[-1]) if suffixes else None)
    try:
        if kind == "csv":
            # Every cell as the text it is (ids "007" and "1e3" stay text; blanks stay "");
            # numbers are parsed per column below, where a bad cell can be named.
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            header = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False)
            validate.unique(header.iloc[0].tolist(), validate.Where(path=path), "column")
        elif kind == "jsonl":
            # No dtype guessing: a JSON string stays a string, a number a number.
            frame = pd.read_json(path, lines=True, dtype=False)
        elif kind == "parquet":
            frame = pd.read_parquet(path)
        else:
            raise InputError(
                "unknown table format (use .csv, .jsonl or .parquet, or format_hint)", path=path
            )
    except (ValueError, pd.errors.ParserError, OSError, UnicodeDecodeError) as exc:
        reason = exc
        if isinstance(exc, UnicodeDecodeError):
            reason = f"not UTF-8 text: {exc.reason} at byte {exc.start}"
        raise InputError(f"cannot read as {kind} ({reason})", path=path) from None
    except Exception as exc:  # pyarrow raises its own types for a damaged Parquet file
        raise InputError(
            f"cannot read as {kind} ({type(exc).__name__}: {exc})", path=path
        ) from None
    validate.has_rows(len(frame), validate.Where(path=path))
    return frame


def _concat(paths: list[str], format_hint: str | None) -> tuple[pd.DataFrame, list[str]]:
    """Concatenate tables; returns the frame and where every row came from ("file row k")."""
    frames, origin = [], []
    for path in paths:
        frame = read_table(path, format_hint)
        frames.append(frame)
        origin += [f"{path} row {k}" for k in range(len(frame))]
    return pd.concat(frames, ignore_index=True), origin


def _numbers(column: pd.Series) -> tuple[pd.Series, pd.Series]:
    """A column as floats and the mask of cells that are not numbers (blank, text, null).

    Text cells are parsed as numbers after stripping; ``nan``/``inf`` parse, and the
    callers' range checks reject them."""
    if not pd.api.types.is_numeric_dtype(column):
        text = column.astype(object).map(lambda v: v.strip() if isinstance(v, str) else v)
        blank = text.map(lambda v: None if v == "" else v)
        values = pd.to_numeric(blank, errors="coerce").astype(float)
        words = text.map(lambda v: isinstance(v, str) and v.lower() in ("nan", "-nan", "+nan"))
        bad = (values.isna() & ~words) | column.isna()
        values[words.to_numpy()] = np.nan
        return values, bad
    values = pd.to_numeric(column, errors="coerce").astype(float)
    return values, column.isna()


def _rows(ids: pd.Series, mask, origin: list[str] | None = None, limit: int = 5) -> str:
    idx = np.flatnonzero(np.asarray(mask))
    parts = []
    for i in idx[:limit]:
        where = f" ({origin[i]})" if origin else f" (row {i})"
        parts.append(f"{ids.iloc[i]!r}{where}")
    more = f" and {len(idx) - limit} more" if len(idx) > limit else ""
    return ", ".join(parts) + more


# ---- the generic importer -----------------------------------------------------------


def matrix_from_frame(
    frame: pd.DataFrame,
    *,
    dataset: str,
    id_column: str,
    prompt_column: str,
    score_columns: dict[str, str],
    costs: dict[str, float] | None = None,
    cost_columns: dict[str, str] | None = None,
    relative_cost: str = "config",
    score_scale: float = 1.0,
    score_range: tuple[float, float] | list | None = None,
    kind: str = "generate",
    source: str = "",
    path: str | None = None,
    origin: list[str] | None = None,
) -> Matrix:
    """Check a published table and turn it into a :class:`Matrix`.

    ``score_columns`` and ``cost_columns`` map model name -> column. Relative costs
    come from ``costs`` (``relative_cost="config"``) or are the mean dollars per call
    of each model's cost column (``"mean_usd"``).
    """
    where = path or source or dataset
    models = list(score_columns)
    cost_columns = dict(cost_columns or {})
    _check_columns(
        frame, [id_column, prompt_column], score_columns, cost_columns, relative_cost, where
    )
    costs = _configured_costs(costs, models, cost_columns, relative_cost, where)

    validate.has_rows(len(frame), validate.Where(path=where))
    ids = _task_ids(frame[id_column], origin, where, id_column)
    prompts = frame[prompt_column]
    no_prompt = prompts.isna() | (prompts.map(lambda p: isinstance(p, str) and not p.strip()))
    if no_prompt.any():
        raise InputError(
            f"missing prompt for {_rows(ids, no_prompt, origin)}",
            path=where,
            field=prompt_column,
        )

    lo, hi = _score_range(score_range, where)
    score_scale = validate.number(
        score_scale, validate.Where(path=where, field="score_scale"), minimum=0.0, strict=True
    )
    out = pd.DataFrame(
        {
            "task_id": ids.values,
            "dataset": dataset,
            "kind": kind,
            "prompt": prompts.astype(str).values,
        }
    )
    checked = _Cells(ids=ids, origin=origin, where=where)
    for m in models:
        out[SCORE_PREFIX + m] = checked.scores(frame[score_columns[m]], score_scale, lo, hi)
    for m in models:
        has_usd = m in cost_columns
        out[USD_PREFIX + m] = checked.usd(frame[cost_columns[m]]) if has_usd else np.nan
    if relative_cost == "mean_usd":
        rel = _mean_usd(out, models, cost_columns, where)
    else:
        rel = {m: float(costs[m]) for m in models}
    meta = {
        "dataset": dataset,
        "kinds": [kind],
        "score_range": [lo, hi],
        "score_scale": float(score_scale),
        "relative_cost": relative_cost,
        "n_tasks": int(len(out)),
    }
    return Matrix(out, models, rel, False, source or f"import:{where}", meta).validate(where)


def _check_columns(
    frame: pd.DataFrame,
    text_columns: list[str],
    score_columns: dict[str, str],
    cost_columns: dict[str, str],
    relative_cost: str,
    where: str,
) -> None:
    """The spec names at least one model, a known cost rule, and columns the table has."""
    models = list(score_columns)
    if not models:
        raise InputError("no score columns given", path=where, field="score_columns")
    if relative_cost not in RELATIVE_COSTS:
        raise InputError(
            f"unknown relative_cost {relative_cost!r} (allowed: {', '.join(RELATIVE_COSTS)})",
            path=where,
            field="relative_cost",
        )
    needed = [*text_columns, *score_columns.values(), *cost_columns.values()]
    missing_cols = [c for c in needed if c not in frame.columns]
    if missing_cols:
        raise InputError(
            f"missing columns {missing_cols} (present: {list(frame.columns)[:20]})",
            path=where,
            field=missing_cols[0],
        )
    unknown = sorted(set(cost_columns) - set(models))
    if unknown:
        raise InputError(
            f"cost columns for models without scores: {unknown}", path=where, field="cost_columns"
        )


def _configured_costs(
    costs: dict | None,
    models: list[str],
    cost_columns: dict[str, str],
    relative_cost: str,
    where: str,
) -> dict | None:
    """The checked cost map for ``relative_cost="config"``; for ``"mean_usd"``, that every
    model has a cost column (the costs are then averaged from it)."""
    if relative_cost != "config":
        no_cost = [m for m in models if m not in cost_columns]
        if no_cost:
            raise InputError(
                f"relative_cost=mean_usd but no cost column for {no_cost}",
                path=where,
                field="cost_columns",
            )
        return costs
    costs = dict(costs or {})
    unknown = sorted(set(costs) - set(models))
    if unknown:
        raise InputError(
            f"unknown models in the cost map: {unknown} (imported: {models})",
            path=where,
            field="costs",
        )
    no_cost = [m for m in models if costs.get(m) is None]
    if no_cost:
        raise InputError(f"models without a cost: {no_cost}", path=where, field="costs")
    return validate.costs(costs, validate.Where(path=where, field="costs"))


def _task_ids(column: pd.Series, origin: list[str] | None, where: str, field: str) -> pd.Series:
    """The id column as text; every id present and unique, else the rows that are not."""
    ids = column.map(validate.text_id)
    empty = ids.map(lambda v: v is None or not v.strip()).astype(bool)
    if empty.any():
        raise InputError(
            f"empty ids at {_rows(ids.fillna(''), empty, origin)}", path=where, field=field
        )
    ids = ids.astype(str)
    dup = ids.duplicated(keep=False)
    if dup.any():
        groups = pd.Series(np.flatnonzero(dup.to_numpy())).groupby(ids[dup].to_numpy(), sort=False)
        parts = [
            f"{key!r} at " + ", ".join(origin[i] if origin else f"row {i}" for i in rows)
            for key, rows in list(groups)[:5]
        ]
        more = f" and {groups.ngroups - 5} more" if groups.ngroups > 5 else ""
        raise InputError(f"duplicate ids: {'; '.join(parts)}{more}", path=where, field=field)
    return ids


class _Cells:
    """Checks a table's number columns; errors name the rows by id and origin."""

    def __init__(self, ids: pd.Series, origin: list[str] | None, where: str):
        self.ids, self.origin, self.where = ids, origin, where

    def scores(self, column: pd.Series, scale: float, lo: float, hi: float) -> np.ndarray:
        values, bad = _numbers(column)
        bad = bad | values.isna()
        if bad.any():
            raise InputError(
                f"missing or non-numeric scores for {_rows(self.ids, bad, self.origin)}",
                path=self.where,
                field=column.name,
            )
        values = values.astype(float) * float(scale)
        bad = (values < lo) | (values > hi) | ~np.isfinite(values)
        if bad.any():
            scaled = f" after scaling by {scale}" if scale != 1 else ""
            raise InputError(
                f"scores outside [{lo}, {hi}]{scaled} (declare score_range/score_scale if "
                f"intended) for {_rows(self.ids, bad, self.origin)}",
                path=self.where,
                field=column.name,
            )
        return values.to_numpy()

    def usd(self, column: pd.Series) -> np.ndarray:
        usd, not_number = _numbers(column)
        for bad, what in (
            (not_number, "missing or non-numeric cost"),
            (~not_number & ~np.isfinite(usd), "NaN or infinite cost"),
            (usd < 0, "negative cost"),
        ):
            if bad.any():
                raise InputError(
                    f"{what} for {_rows(self.ids, bad, self.origin)} (a per-call cost is a "
                    "finite number >= 0)",
                    path=self.where,
                    field=column.name,
                )
        return usd.to_numpy()


def _mean_usd(
    out: pd.DataFrame, models: list[str], cost_columns: dict[str, str], where: str
) -> dict[str, float]:
    """Relative costs as each model's mean dollars per call (``relative_cost="mean_usd"``)."""
    rel = {}
    for m in models:
        usd = out[USD_PREFIX + m]
        mean = float(np.nanmean(usd)) if usd.notna().any() else np.nan
        if not np.isfinite(mean):
            raise InputError("no known cost to average", path=where, field=cost_columns[m])
        rel[m] = mean
    validate.costs(rel, validate.Where(path=where, field="cost_columns"))
    log.info("relative cost = mean USD per call: %s", rel)
    return rel


def _score_range(score_range, where: str) -> tuple[float, float]:
    if score_range is None:
        return 0.0, 1.0
    field = validate.Where(path=where, field="score_range")
    if not isinstance(score_range, list | tuple) or len(score_range) != 2:
        raise field.error(f"expected [lo, hi], got {score_range!r}")
    lo, hi = (validate.number(v, field) for v in score_range)
    if not lo < hi:
        raise field.error(f"lo {lo:g} must be < hi {hi:g}")
    return lo, hi


def _score_map(spec: dict) -> dict[str, str]:
    cols = spec.get("score_columns")
    if cols is None:
        raise InputError("table import needs score_columns", field="score_columns")
    if isinstance(cols, list):
        return {c: c for c in validate.unique(cols, validate.Where(field="score_columns"), "model")}
    if not isinstance(cols, dict):
        raise InputError("expected {model: column} or a list of columns", field="score_columns")
    return {str(k): str(v) for k, v in cols.items()}


def import_table(spec: dict, *, dataset: str, costs=None, mirror_dir=None) -> Matrix:
    paths = import_files(spec, mirror_dir)["tables"]
    frame, origin = _concat(paths, spec.get("format_hint"))
    for key in ("id_column", "prompt_column"):
        if not spec.get(key):
            raise InputError("table import needs this key", field=key)
    return matrix_from_frame(
        frame,
        dataset=dataset,
        id_column=spec["id_column"],
        prompt_column=spec["prompt_column"],
        score_columns=_score_map(spec),
        costs=costs,
        cost_columns=spec.get("cost_columns"),
        relative_cost=spec.get("relative_cost", "config"),
        score_scale=spec.get("score_scale", 1.0),
        score_range=spec.get("score_range"),
        kind=spec.get("kind", "generate"),
        source="import:table:" + ",".join(paths),
        path=",".join(paths),
        origin=origin,
    )


# ---- RouterBench (RouterDC's routerbench_zs CSVs) -------------------------------------


def _literal_prompt(text):
    """RouterBench stores the prompt as a Python list literal holding one string."""
    if not isinstance(text, str):
        return text
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
        return "\n".join(value)
    return text


def import_routerbench(spec: dict, *, dataset: str, costs=None, mirror_dir=None) -> Matrix:
    """RouterBench rows: one 0/1 score column per upstream model and ``<model>|total_cost`` dollars.

    ``models`` maps config names to upstream names. Relative costs default to the mean
    dollars per call of each model (``relative_cost: mean_usd``).
    """
    paths = import_files(spec, mirror_dir)["tables"]
    frame, origin = _concat(paths, spec.get("format_hint"))
    models = spec.get("models")
    if not models:
        raise InputError(
            "routerbench import needs models {config name: upstream name}", field="models"
        )
    models = {str(k): str(v) for k, v in models.items()}
    prompt_column = spec.get("prompt_column", "prompt")
    if prompt_column in frame.columns:
        frame[prompt_column] = frame[prompt_column].map(_literal_prompt)
    return matrix_from_frame(
        frame,
        dataset=dataset,
        id_column=spec.get("id_column", "sample_id"),
        prompt_column=prompt_column,
        score_columns=models,
        costs=costs,
        cost_columns={m: f"{up}|total_cost" for m, up in models.items()},
        relative_cost=spec.get("relative_cost", "mean_usd"),
        score_scale=spec.get("score_scale", 1.0),
        score_range=spec.get("score_range"),
        kind=spec.get("kind", "generate"),
        source="import:routerbench:" + ",".join(paths),
        path=",".join(paths),
        origin=origin,
    )


# ---- LiveCodeBench leaderboard ----------------------------------------------------------


def _load_json(path: str):
    if not Path(path).exists():
        raise InputError("file does not exist", path=path)
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid JSON ({exc})", path=path) from exc


LCB_HEADER_FIELDS = ("platform", "difficulty", "contest_date")


def lcb_prompt(problem: dict, header: list[str] | tuple[str, ...] = ()) -> str:
    """Problem statement as LiveCodeBench poses it: title, statement, starter code if any.

    ``header`` (import spec ``prompt_header``) names problem fields to state first, e.g.
    ``[platform, difficulty]`` gives "platform: atcoder | difficulty: hard": metadata a
    user of a coding assistant may well send along, and that routers read from the prompt.
    """
    bad = [f for f in header if f not in LCB_HEADER_FIELDS]
    if bad:
        raise InputError(
            f"unknown prompt_header fields {bad} (allowed: {', '.join(LCB_HEADER_FIELDS)})",
            field="prompt_header",
        )
    parts = [
        format_header({f: str(problem.get(f, "")).strip()[:10] for f in header}),
        str(problem.get("question_title") or "").strip(),
        str(problem["question_content"]).strip(),
    ]
    starter = str(problem.get("starter_code") or "").strip()
    if starter:
        parts.append("Starter code:\n" + starter)
    return "\n\n".join(p for p in parts if p)


def import_lcb(spec: dict, *, dataset: str, costs=None, mirror_dir=None) -> Matrix:
    """The leaderboard's ``performances`` pivoted to question x model, statements joined in.

    pass@1 is a percentage upstream: declare ``score_scale: 0.01``.
    """
    files = import_files(spec, mirror_dir)
    perf_path = files["performances"][0]
    data = _load_json(perf_path)
    if not isinstance(data, dict) or not isinstance(data.get("performances"), list):
        raise InputError(
            "expected an object with a 'performances' list", path=perf_path, field="performances"
        )
    perf = pd.DataFrame(data["performances"])
    for col in ("question_id", "model", "pass@1"):
        if col not in perf.columns:
            raise InputError("missing field in performances", path=perf_path, field=col)
    upstream = sorted(perf["model"].unique())
    models = spec.get("models") or {m: m for m in upstream}
    models = {str(k): str(v) for k, v in models.items()}
    absent = [up for up in models.values() if up not in set(upstream)]
    if absent:
        raise InputError(
            f"models not in the leaderboard: {absent} (present: {upstream})",
            path=perf_path,
            field="models",
        )
    perf = perf[perf["model"].isin(set(models.values()))]
    dup = perf.duplicated(["question_id", "model"], keep=False)
    if dup.any():
        first = perf[dup].iloc[0]
        raise InputError(
            f"{int(dup.sum())} duplicate (question, model) entries, e.g. model {first['model']!r}",
            path=perf_path,
            record=first["question_id"],
            field="pass@1",
        )
    wide = perf.pivot(index="question_id", columns="model", values="pass@1")
    wide = wide.reindex(columns=list(models.values()))
    statements: dict[str, dict] = {}
    for sub_path in files["submissions"]:
        subs = _load_json(sub_path)
        if not isinstance(subs, list):
            raise InputError("expected a list of problems", path=sub_path)
        for i, problem in enumerate(subs):
            if (
                not isinstance(problem, dict)
                or "question_id" not in problem
                or "question_content" not in problem
            ):
                raise InputError(
                    "problem without question_id/question_content", path=sub_path, record=i
                )
            statements.setdefault(str(problem["question_id"]), problem)
    no_text = [q for q in wide.index if q not in statements]
    if no_text:
        raise InputError(
            f"{len(no_text)} questions have no statement in the submissions files, e.g. {no_text[:5]}",
            path=perf_path,
            field="question_id",
        )
    frame = wide.reset_index()
    header = list(spec.get("prompt_header") or [])
    frame["prompt"] = [lcb_prompt(statements[q], header) for q in frame["question_id"]]
    return matrix_from_frame(
        frame,
        dataset=dataset,
        id_column="question_id",
        prompt_column="prompt",
        score_columns=models,
        costs=costs,
        relative_cost="config",
        score_scale=spec.get("score_scale", 1.0),
        score_range=spec.get("score_range"),
        kind=spec.get("kind", "generate"),
        source="import:lcb:" + perf_path,
        path=perf_path,
    )


READERS = {"table": import_table, "lcb": import_lcb, "routerbench": import_routerbench}


def import_matrix(
    spec: dict,
    *,
    dataset: str,
    models: list[str] | None = None,
    costs: dict[str, float] | None = None,
    mirror_dir: str | None = None,
) -> Matrix:
    """Import by spec; ``models`` (the portfolio, in order) selects and orders the columns.

    With a portfolio given, every portfolio model must be imported, and the cost map
    is restricted to it (a portfolio model missing from the cost map is an error).
    """
    fmt = spec.get("format", "table")
    if fmt not in READERS:
        raise InputError(
            f"unknown import format {fmt!r} (allowed: {', '.join(FORMATS)})", field="format"
        )
    spec = dict(spec)
    if models is not None:
        key = "score_columns" if fmt == "table" else "models"
        mapping = spec.get(key)
        if mapping is None and fmt == "lcb":
            mapping = {m: m for m in models}
        if mapping is None:
            raise InputError(f"import spec needs {key}", field=key)
        if isinstance(mapping, list):
            mapping = {c: c for c in mapping}
        missing = [m for m in models if m not in mapping]
        if missing:
            raise InputError(
                f"portfolio models not in the import spec: {missing} (spec has {sorted(mapping)})",
                field=key,
            )
        spec[key] = {m: mapping[m] for m in models}
        if spec.get("cost_columns"):
            spec["cost_columns"] = {m: c for m, c in spec["cost_columns"].items() if m in models}
    matrix = READERS[fmt](spec, dataset=dataset, costs=costs, mirror_dir=mirror_dir)
    matrix.meta["import"] = {
        k: v for k, v in spec.items() if k not in ("models", "score_columns", "cost_columns")
    }
    return matrix


# ---- `codyn import` -------------------------------------------------------------------


def _parse_pairs(items: list[str] | None, what: str) -> dict[str, str]:
    """MODEL=VALUE options as a dict; a model named twice is an error, not keep-last."""
    out = {}
    option = validate.Where(option=f"--{what}")
    for item in items or []:
        if "=" not in item:
            raise option.error(f"expected MODEL=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        if not key or not value:
            raise option.error(f"expected MODEL=VALUE, got {item!r}")
        if key in out:
            raise option.error(f"model {key!r} is given twice ({out[key]!r} and {value!r})")
        out[key] = value
    return out


def _parse_costs(items: list[str] | None) -> dict[str, float]:
    option = validate.Where(option="--cost")
    out = {}
    for model, text in _parse_pairs(items, "cost").items():
        try:
            value = float(text)
        except ValueError:
            raise option.error(f"{model}={text!r} is not a number") from None
        out[model] = validate.cost(value, option.at(model))
    return validate.costs(out, option) if out else out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="codyn import",
        description="Import a published instance x model score table into a codyn matrix "
        "(results/matrix/{dataset}.parquet format). Either name a dataset of a config "
        "(--config/--dataset) or describe a table with the flags.",
    )
    parser.add_argument("table", nargs="*", help="CSV/JSONL/Parquet file(s) (generic table import)")
    parser.add_argument("-o", "--out", required=True, help="output .parquet")
    parser.add_argument("--config", action="append", help="config file(s), merged in order")
    parser.add_argument("--dataset", help="dataset name (with --config: its import spec)")
    parser.add_argument("--id-column")
    parser.add_argument("--prompt-column")
    parser.add_argument(
        "--score", action="append", metavar="MODEL=COLUMN", help="score column of a model"
    )
    parser.add_argument(
        "--cost", action="append", metavar="MODEL=WEIGHT", help="relative cost per call"
    )
    parser.add_argument(
        "--usd", action="append", metavar="MODEL=COLUMN", help="per-call dollars column"
    )
    parser.add_argument(
        "--mean-usd", action="store_true", help="relative cost = mean dollars per call"
    )
    parser.add_argument("--score-scale", type=float, default=1.0)
    parser.add_argument("--score-range", type=float, nargs=2, metavar=("LO", "HI"))
    parser.add_argument("--kind", default="generate")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    try:
        if args.config:
            from codyn.config import load_config, relative_costs

            if not args.dataset:
                parser.error("--config needs --dataset")
            cfg = load_config(*args.config)
            entry = cfg["datasets"].get(args.dataset)
            if entry is None or entry["adapter"] != "import":
                raise InputError(f"dataset {args.dataset!r} is not an import dataset of the config")
            matrix = import_matrix(
                entry.get("import") or {},
                dataset=args.dataset,
                models=list(cfg["portfolio"]),
                costs=relative_costs(cfg),
                mirror_dir=cfg.get("mirror_dir"),
            )
        else:
            if not (args.table and args.id_column and args.prompt_column and args.score):
                parser.error("a table import needs TABLE, --id-column, --prompt-column and --score")
            spec = {
                "format": "table",
                "files": args.table,
                "id_column": args.id_column,
                "prompt_column": args.prompt_column,
                "score_columns": _parse_pairs(args.score, "score"),
                "cost_columns": _parse_pairs(args.usd, "usd"),
                "relative_cost": "mean_usd" if args.mean_usd else "config",
                "score_scale": args.score_scale,
                "score_range": args.score_range,
                "kind": args.kind,
            }
            costs = _parse_costs(args.cost)
            matrix = import_matrix(spec, dataset=args.dataset or Path(args.out).stem, costs=costs)
        matrix.save(args.out)
    except (CodynError, ValueError) as exc:
        print(f"codyn import: {exc}", file=sys.stderr)
        return 1
    print(
        f"wrote {args.out}: {len(matrix.frame)} tasks x {len(matrix.models)} models",
        file=sys.stderr,
    )
    return 0
