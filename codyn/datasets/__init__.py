"""Dataset adapters: fetch raw files, prepare ``data/tasks/{dataset}.jsonl``.

Registry: config ``adapter`` name -> module in this package. Entry points:

- :func:`fetch_dataset` (in :mod:`codyn.datasets.fetch`) writes ``data/raw/{dataset}/``
  and its MANIFEST.json;
- :func:`prepare_dataset` reads that manifest (re-checking every sha256), builds the task
  records with the A.8 prompt templates, validates each one, applies ``limit`` and writes
  the task file atomically. It returns the counts and the dropped records with reasons.
"""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path
from types import ModuleType

from codyn.errors import ConfigError, InputError
from codyn.io import write_jsonl
from codyn.records import validate_task

from .base import PrepareContext, sample_keep_order
from .fetch import fetch_dataset, verify_manifest

log = logging.getLogger(__name__)

ADAPTERS = {
    "apps": "apps",
    "runbugrun": "runbugrun",
    "sven": "sven",
    "refinement": "codexglue",
    "translation": "codexglue",
    "bigcodebench": "bigcodebench",
    "humaneval": "humaneval",
    "mbpp": "mbpp",
    "made-repair": "made",
    "made-sven": "made",
    "made-translation": "made",
    "made-refinement": "made",
}

__all__ = ["ADAPTERS", "adapter_module", "fetch_dataset", "prepare_dataset", "build_tasks"]


def adapter_module(adapter: str) -> ModuleType:
    if adapter not in ADAPTERS:
        raise ConfigError("adapter", f"unknown dataset adapter {adapter!r}", allowed=ADAPTERS)
    return importlib.import_module(f"{__name__}.{ADAPTERS[adapter]}")


def build_tasks(name: str, dataset_cfg: dict, raw_dir: str | os.PathLike, seed: int):
    """The validated task records of a fetched dataset (no file written)."""
    raw_dir = Path(raw_dir)
    manifest = verify_manifest(raw_dir)
    adapter = dataset_cfg["adapter"]
    if manifest["adapter"] != adapter:
        raise InputError(
            f"fetched with adapter {manifest['adapter']!r}, config says {adapter!r}: fetch again",
            path=raw_dir / "MANIFEST.json",
            field="adapter",
        )
    ctx = PrepareContext(name, adapter, dataset_cfg, raw_dir, manifest, int(seed))
    prepared = adapter_module(adapter).prepare(ctx)
    seen: set[str] = set()
    for rec in prepared.tasks:
        validate_task(rec, record=rec.get("id"))
        if rec["id"] in seen:
            raise InputError("duplicate task id", record=rec["id"], field="id")
        seen.add(rec["id"])
    before_limit = len(prepared.tasks)
    prepared.tasks = sample_keep_order(prepared.tasks, dataset_cfg.get("limit"), seed, name)
    if len(prepared.tasks) < before_limit:
        prepared.notes.append(
            f"limit {dataset_cfg['limit']}: kept a seeded sample of {len(prepared.tasks)} "
            f"of {before_limit} tasks (upstream order kept)"
        )
    return prepared


def prepare_dataset(
    name: str,
    dataset_cfg: dict,
    raw_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    seed: int,
) -> dict:
    """Write ``out_path`` (atomically) and return the counts, which are also logged."""
    prepared = build_tasks(name, dataset_cfg, raw_dir, seed)
    written = write_jsonl(out_path, prepared.tasks)
    reasons: dict[str, int] = {}
    for _, reason in prepared.dropped:
        reasons[reason] = reasons.get(reason, 0) + 1
    counts = {
        "dataset": name,
        "adapter": dataset_cfg["adapter"],
        "source_records": prepared.source_records,
        "tasks": written,
        "dropped": len(prepared.dropped),
        "dropped_by_reason": reasons,
        "dropped_ids": [rid for rid, _ in prepared.dropped],
        "notes": prepared.notes,
    }
    log.info(
        "%s: %d tasks from %d source records, %d dropped",
        name,
        written,
        prepared.source_records,
        len(prepared.dropped),
    )
    for reason, n in sorted(reasons.items()):
        log.info("%s: dropped %d: %s", name, n, reason)
    for rid, reason in prepared.dropped[:50]:
        log.info("%s: dropped %s: %s", name, rid, reason)
    for note in prepared.notes:
        log.info("%s: %s", name, note)
    return counts
