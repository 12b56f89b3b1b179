"""RunBugRun (Python) buggy/fixed programs -> repair tasks.

Prompt: A.8.2 RunBugRun template; the "Assertion Error" part is the recorded traceback
of the buggy program (``errors[0].output``; RunBugRun records it for about a quarter of
the bugs). When ``errors`` is absent or empty the part reads :data:`NO_ERROR_TEXT`.

Tests: RunBugRun keeps its tests (``tests_all.jsonl(.gz)``: ``{id, problem_id, input,
output}``, linked by ``problem_id``) in a release asset that is not in the mirror. With
``variant: release`` (the RunBugRun data release, giganticode/run_bug_run_data v0.0.1:
``python_valid0.jsonl.gz`` and ``tests_all.jsonl.gz``, fetched together) or
``tests_file`` configured, each task gets stdio tests for its problem (a bug whose problem
has no tests there is dropped, with that reason). Without it every task has
``tests: null`` and ``meta.execution`` says it cannot be execution-scored; scoring must
leave such tasks out (status not_scorable), never score them some other way.
"""

from __future__ import annotations

import logging

from codyn.errors import ConfigError, InputError
from codyn.io import read_jsonl
from codyn.prompts import TEMPLATE_NAMES, runbugrun_prompt

from .base import PrepareContext, Prepared, RemoteFile, require, task
from .fetch import RUNBUGRUN_TESTS_DIR

log = logging.getLogger(__name__)

SOURCES = ("url", "mirror", "file")
MIRROR_FOLDER = {"runbugrun": "runbugrun_python_valid"}
COMMIT = "10ab3b80cb2b806a9862f66f0729032125294797"
SHA256 = "1bfb7a65b79707f5c7c2d513d81e588a8f478318a8c4b3a19b28ce66e2ed0329"
NO_ERROR_TEXT = "No error message was recorded for the buggy program."
NO_TESTS = "unavailable: RunBugRun tests file not configured (variant: release or tests_file)"
# The RunBugRun data release (a GitHub release asset: fixed at upload, no commit to pin).
# Its sha256 could not be read here (no network): fetch records it on first download in
# MANIFEST.json and checks every later download against it (codyn.datasets.fetch).
RELEASE = "https://github.com/giganticode/run_bug_run_data/releases/download/v0.0.1"
VARIANTS = ("assert-kth", "release")


def variant(cfg: dict) -> str:
    value = cfg.get("variant") or "assert-kth"
    if value not in VARIANTS:
        raise ConfigError("variant", f"{value!r} is not a RunBugRun variant", allowed=VARIANTS)
    return value


def has_tests(cfg: dict) -> bool:
    return variant(cfg) == "release" or bool(cfg.get("tests_file"))


def remote_files(adapter: str, cfg: dict) -> list[RemoteFile]:
    if variant(cfg) == "release":
        return [
            RemoteFile(
                "python_valid0.jsonl.gz",
                f"{RELEASE}/python_valid0.jsonl.gz",
                None,
                "release/python_valid0.jsonl.gz",
            ),
            RemoteFile(
                f"{RUNBUGRUN_TESTS_DIR}/tests_all.jsonl.gz",
                f"{RELEASE}/tests_all.jsonl.gz",
                None,
                "release/tests_all.jsonl.gz",
            ),
        ]
    url = f"https://raw.githubusercontent.com/ASSERT-KTH/run_bug_run/{COMMIT}/python_valid0.jsonl"
    return [RemoteFile("python_valid0.jsonl", url, SHA256, "python_valid0.jsonl")]


def error_text(errors, *, path, record) -> str:
    if errors is None or errors == []:
        return NO_ERROR_TEXT
    if not isinstance(errors, list) or not isinstance(errors[0], dict):
        raise InputError(
            "expected a list of error objects", path=path, record=record, field="errors"
        )
    output = errors[0].get("output")
    if not isinstance(output, str) or not output.strip():
        exc = errors[0].get("exception")
        return f"{exc}" if isinstance(exc, str) and exc else NO_ERROR_TEXT
    return output.rstrip("\n")


def read_tests(path, problems: set[str] | None = None) -> dict[str, list[dict]]:
    """Test cases by problem id; only ``problems`` when given (the upstream file holds
    every language's 321k cases)."""
    by_problem: dict[str, list[dict]] = {}
    for lineno, rec in enumerate(read_jsonl(path), start=1):
        where = f"line {lineno}"
        pid = require(rec, "problem_id", str, path=path, record=where)
        if problems is not None and pid not in problems:
            continue
        case_in = require(rec, "input", str, path=path, record=where)
        case_out = require(rec, "output", str, path=path, record=where)
        if rec.get("active") is False:
            continue
        by_problem.setdefault(pid, []).append({"input": case_in, "output": case_out})
    return by_problem


def prepare(ctx: PrepareContext) -> Prepared:
    bug_files = [
        p for p in ctx.files() if RUNBUGRUN_TESTS_DIR not in p.relative_to(ctx.raw_dir).parts
    ]
    test_files = [p for p in ctx.files() if RUNBUGRUN_TESTS_DIR in p.relative_to(ctx.raw_dir).parts]
    problems = {str(rec.get("problem_id")) for path in bug_files for rec in read_jsonl(path)}
    tests = {}
    for path in test_files:
        for pid, cases in read_tests(path, problems).items():
            tests.setdefault(pid, []).extend(cases)
    notes = []
    if not test_files:
        notes.append(
            "no tests_file configured: repair tasks carry tests: null and cannot be "
            "execution-scored (meta.execution says so)"
        )
    tasks, dropped, n = [], [], 0
    for path in bug_files:
        for lineno, rec in enumerate(read_jsonl(path), start=1):
            n += 1
            where = f"line {lineno}"
            bug_id = require(rec, "id", (int, str), path=path, record=where)
            where = f"line {lineno} (id {bug_id})"
            pid = require(rec, "problem_id", str, path=path, record=where)
            buggy = require(rec, "buggy_code", str, path=path, record=where)
            fixed = require(rec, "fixed_code", str, path=path, record=where)
            error = error_text(rec.get("errors"), path=path, record=where)
            meta = {
                "upstream_id": bug_id,
                "problem_id": pid,
                "buggy_submission_id": rec.get("buggy_submission_id"),
                "fixed_submission_id": rec.get("fixed_submission_id"),
                "labels": rec.get("labels"),
                "error_recorded": error != NO_ERROR_TEXT,
                "template": TEMPLATE_NAMES["runbugrun"],
            }
            if test_files:
                if pid not in tests:
                    dropped.append((str(bug_id), f"no tests for problem {pid} in the tests file"))
                    continue
                task_tests = {"type": "stdio", "cases": tests[pid]}
                meta["execution"] = "stdio tests from tests_file"
            else:
                task_tests = None
                meta["execution"] = NO_TESTS
            tasks.append(
                task(
                    id=str(bug_id),
                    dataset=ctx.name,
                    kind="repair",
                    language="python",
                    prompt=runbugrun_prompt(buggy.rstrip("\n"), error),
                    reference=fixed,
                    tests=task_tests,
                    meta=meta,
                )
            )
    return Prepared(tasks, n, dropped, notes)
