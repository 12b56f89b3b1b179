"""Compare two results trees file by file: the check behind "the same config gives the
same tables".

Every file under either tree is compared: Parquet by content (schema, key-value metadata
and rows, through pyarrow; the file bytes also hold the writer's version and page
layout), JSON as parsed data less the keys that record the run rather than its results
(``RUN_KEYS``: wall-clock times and durations), everything else (CSV, Markdown, LaTeX,
JSONL, PNG) byte for byte. Used by tests/test_robust.py on two Snakemake builds made in
two folders with different ``PYTHONHASHSEED``; reusable for any pair of trees.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

# JSON keys whose values measure the run (how long, when), not what it computed.
# router_sha256 is the digest of a router folder whose router.json records its fit time.
RUN_KEYS = frozenset(
    {
        "wall_s",
        "fit_seconds",
        "seconds",
        "started",
        "ended",
        "elapsed_s",
        "duration_s",
        "predict_seconds",
        "router_sha256",
    }
)


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _without_run_keys(obj):
    if isinstance(obj, dict):
        return {k: _without_run_keys(v) for k, v in obj.items() if k not in RUN_KEYS}
    if isinstance(obj, list):
        return [_without_run_keys(v) for v in obj]
    return obj


def _metadata(table) -> dict:
    """Key-value metadata, JSON values decoded and run keys dropped."""
    out = {}
    for key, value in (table.schema.metadata or {}).items():
        try:
            out[key] = _without_run_keys(json.loads(value))
        except ValueError:
            out[key] = value
    return out


def _same_parquet(a: Path, b: Path) -> str | None:
    ta, tb = pq.read_table(a), pq.read_table(b)
    if _metadata(ta) != _metadata(tb):
        return "parquet key-value metadata differs"
    if not ta.schema.equals(tb.schema, check_metadata=False):
        return f"parquet schema differs: {ta.schema} vs {tb.schema}"
    if not ta.equals(tb):
        return "parquet rows differ"
    return None


def _same_json(a: Path, b: Path) -> str | None:
    ja = _without_run_keys(json.loads(a.read_text(encoding="utf-8")))
    jb = _without_run_keys(json.loads(b.read_text(encoding="utf-8")))
    return None if ja == jb else "JSON content differs"


def compare_trees(a: str | Path, b: str | Path) -> list[str]:
    """The differences between trees ``a`` and ``b`` (empty when they hold the same
    results), one line per file: missing on one side, or how the contents differ."""
    a, b = Path(a), Path(b)
    fa, fb = _files(a), _files(b)
    problems = [f"only in {a}: {f}" for f in sorted(fa - fb)]
    problems += [f"only in {b}: {f}" for f in sorted(fb - fa)]
    for name in sorted(fa & fb):
        pa_, pb_ = a / name, b / name
        if name.endswith(".parquet"):
            why = _same_parquet(pa_, pb_)
        elif name.endswith(".json"):
            why = _same_json(pa_, pb_)
        else:
            why = None if pa_.read_bytes() == pb_.read_bytes() else "bytes differ"
        if why:
            problems.append(f"{name}: {why}")
    return problems
