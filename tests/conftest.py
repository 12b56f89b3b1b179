"""Shared fixtures. Tests that need the real data in ../shared/datasets skip without it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATASETS = Path(os.environ.get("CODYN_SHARED_DATASETS", REPO.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """The read-only real datasets folder; skips the test when it is absent."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATASETS} (set CODYN_SHARED_DATASETS)")
    return SHARED_DATASETS


@pytest.fixture(scope="session")
def humaneval(shared_datasets) -> dict:
    """The 164 real HumanEval tasks (codyn's adapter) by task id, from ../shared."""
    import gzip
    import json

    from codyn.datasets.humaneval import humaneval_task

    with gzip.open(shared_datasets / "humaneval" / "HumanEval.jsonl.gz", "rt") as fh:
        return {r["task_id"]: humaneval_task(r, "humaneval") for r in map(json.loads, fh)}
