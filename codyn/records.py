"""The record shapes that stages hand each other (DESIGN.md section 3).

``data/tasks/{dataset}.jsonl``  one :data:`TASK_FIELDS` object per line.
``results/responses/{dataset}/{model}.jsonl``  one :data:`RESPONSE_FIELDS` object per line.
``results/scores/{dataset}/{model}.csv``  columns :data:`SCORE_COLUMNS`.

Task ``tests`` is null (no tests) or an object with a ``type``:

- ``stdio``: ``{"type": "stdio", "cases": [{"input": str, "output": str}, ...]}``
  the program reads stdin and prints; outputs are compared token-wise.
- ``call``: ``{"type": "call", "fn_name": str, "cases": [{"input": [args], "output": value}]}``
  APPS call-based problems (starter code): call ``fn_name`` (a method of class
  Solution when the starter code declares one) with the args.
- ``check``: ``{"type": "check", "test": str, "entry_point": str}``
  HumanEval/MBPP: ``test`` defines ``check(candidate)``; run ``check(entry_point)``.
- ``unittest``: ``{"type": "unittest", "test": str, "entry_point": str}``
  BigCodeBench: a unittest module run against the answer.

``prefix`` (optional, inside tests): code that the answer may rely on (imports,
a signature) and that scoring prepends when the answer does not define the entry point.
"""

from __future__ import annotations

from typing import Any

from codyn.errors import InputError

TASK_KINDS = ("generate", "repair", "classify", "translate", "refine")
TEST_TYPES = ("stdio", "call", "check", "unittest")
LANGUAGES = ("python", "java", "csharp")

TASK_FIELDS = {
    "id": str,  # unique within the dataset
    "dataset": str,
    "kind": str,  # one of TASK_KINDS
    "language": str,  # language of the expected answer: one of LANGUAGES
    "prompt": str,  # the full prompt sent to the model (paper A.8 template)
    "reference": (str, type(None)),  # reference answer (code) or None
    "tests": (dict, type(None)),  # see module docstring
    "label": (bool, type(None)),  # classify: True = vulnerable
    "meta": dict,  # free-form: upstream ids, difficulty, provenance of made tasks
}

RESPONSE_FIELDS = {
    "task_id": str,
    "dataset": str,
    "model": str,  # portfolio name
    "backend": str,
    "model_id": (str, type(None)),
    "key": str,  # cache key: sha256 of (backend, model_id, prompt, params)
    "text": (str, type(None)),  # None when error is set
    "input_tokens": (int, type(None)),
    "output_tokens": (int, type(None)),
    "latency_s": (float, int, type(None)),
    "cost_usd": (float, int, type(None)),
    "cost_estimated": bool,  # token counts (so dollars) estimated, not reported (replay)
    "error": (str, type(None)),
    "simulated": bool,
}

SCORE_COLUMNS = ["task_id", "model", "score", "status", "detail"]
SCORE_STATUSES = (
    "pass",
    "fail",
    "timeout",
    "runtime_error",
    "syntax_error",
    "memory_limit",
    "no_code",
    "no_answer",
    "not_scorable",
    "scored",  # continuous metrics (CodeBLEU, classification)
)


def validate_record(rec: Any, fields: dict, *, path=None, record=None) -> dict:
    """Check presence and type of every field; raise InputError naming the first bad one."""
    if not isinstance(rec, dict):
        raise InputError("record is not an object", path=path, record=record)
    for name, typ in fields.items():
        if name not in rec:
            raise InputError("missing field", path=path, record=record, field=name)
        if not isinstance(rec[name], typ):
            raise InputError(
                f"wrong type {type(rec[name]).__name__}", path=path, record=record, field=name
            )
    return rec


def validate_task(rec: Any, *, path=None, record=None) -> dict:
    validate_record(rec, TASK_FIELDS, path=path, record=record)
    rid = rec["id"] if record is None else record
    if not rec["id"]:
        raise InputError("empty id", path=path, record=rid, field="id")
    if rec["kind"] not in TASK_KINDS:
        raise InputError(
            f"unknown kind {rec['kind']!r} (allowed: {', '.join(TASK_KINDS)})",
            path=path,
            record=rid,
            field="kind",
        )
    if rec["language"] not in LANGUAGES:
        raise InputError(
            f"unknown language {rec['language']!r}", path=path, record=rid, field="language"
        )
    tests = rec["tests"]
    if tests is not None and tests.get("type") not in TEST_TYPES:
        raise InputError(
            f"unknown tests type {tests.get('type')!r}", path=path, record=rid, field="tests.type"
        )
    if rec["kind"] == "classify" and rec["label"] is None:
        raise InputError("classify task without label", path=path, record=rid, field="label")
    return rec
