"""Turn each response into a score (paper section 3.3): the score stage's one entry point.

:func:`score_responses` is what both the pipeline rule and ``codyn score`` call.
Dispatch by task:

- ``generate`` / ``repair`` (Python) with tests: extract the code, run it through the
  sandbox against the tests (codyn.scoring.execution). 1 if all pass, else 0.
  Without tests: status ``not_scorable``, score empty (NaN), detail the task's
  ``meta["execution"]`` reason; the matrix stage drops these rows.
- ``translate`` / ``refine``: CodeBLEU of the extracted code against the reference.
- ``classify``: Yes/No extraction, correctness, then the A.7 bias penalty over the
  whole file (codyn.scoring.classify; extra columns raw_score and penalty).

Opt-in ``scoring.visible`` (default off, and then the files are exactly as before): for
``generate`` tasks, also run the program on the examples the prompt itself shows
(codyn.examples, minus any the reference solution fails) and write ``visible_status``
(pass, fail, no_examples, error), ``visible_passed`` and ``visible_total``
(codyn.scoring.visible): the verified cascade's accept signal. An answer without code
is ``error`` when the prompt has examples. With it, ``unseen_score`` / ``unseen_status``:
the same answer on the hidden tests minus the ones the prompt shows
(codyn.scoring.unseen), so the overlap cannot flatter the cascade; empty score and status
``all_visible`` when every hidden test is shown (``unsupported`` for unittest programs).
The hidden program is run a second time only when a visible example was removed from it.

Whatever the answer: a response with ``error`` is ``no_answer`` (0); an empty answer,
one without code, or one over ``MAX_ANSWER_CHARS`` is ``no_code`` (0). No answer can
crash the job.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from tqdm import tqdm

from codyn.errors import InputError
from codyn.examples import visible_examples
from codyn.io import atomic_open, read_jsonl, write_json
from codyn.records import SCORE_COLUMNS, validate_task
from codyn.scoring.classify import PENALTY_MODES, apply_penalty, bias_penalty, parse_label
from codyn.scoring.codebleu_metric import pair_codebleu
from codyn.scoring.execution import Verdict, run_tests
from codyn.scoring.extract import extract_code
from codyn.scoring.sandbox import Limits, Sandbox
from codyn.scoring.unseen import ALL_VISIBLE, UNSUPPORTED, Unseen, unseen_tests
from codyn.scoring.visible import VisibleVerdict, run_checks, usable_checks

log = logging.getLogger(__name__)

EXTRA_COLUMNS = ["raw_score", "penalty"]
# Opt-in (scoring.visible): the verdict on the prompt's own examples (codyn.scoring.visible).
VISIBLE_COLUMNS = ["visible_status", "visible_passed", "visible_total"]
# ... and the hidden tests minus the visible ones (codyn.scoring.unseen), with them.
UNSEEN_COLUMNS = ["unseen_score", "unseen_status"]
VISIBLE_KINDS = ("generate",)
MAX_ANSWER_CHARS = 1_000_000  # larger answers are not code anyone can use; 0 without parsing them
EXECUTION_KINDS = ("generate", "repair")
CODEBLEU_KINDS = ("translate", "refine")


def meta_path_for(out_csv: str | os.PathLike) -> Path:
    out_csv = Path(out_csv)
    return out_csv.with_name(out_csv.name.removesuffix(".csv") + ".meta.json")


def read_tasks(path) -> dict[str, dict]:
    tasks: dict[str, dict] = {}
    for lineno, rec in enumerate(read_jsonl(path), start=1):
        validate_task(rec, path=path, record=f"line {lineno}")
        if rec["id"] in tasks:
            raise InputError("duplicate task id", path=path, record=rec["id"], field="id")
        tasks[rec["id"]] = rec
    return tasks


def read_responses(path, tasks: dict[str, dict]) -> list[dict]:
    """Responses (codyn.records RESPONSE_FIELDS; a user's own file needs only task_id and text)."""
    default_model = Path(path).name.removesuffix(".gz").removesuffix(".jsonl")
    seen: set[tuple[str, str]] = set()
    out = []
    for lineno, rec in enumerate(read_jsonl(path), start=1):
        where = f"line {lineno}"
        task_id = rec.get("task_id")
        if not isinstance(task_id, str) or not task_id:
            raise InputError(
                "missing or non-string task_id", path=path, record=where, field="task_id"
            )
        if task_id not in tasks:
            raise InputError(
                f"task {task_id!r} is not in the tasks file",
                path=path,
                record=where,
                field="task_id",
            )
        text, error = rec.get("text"), rec.get("error")
        if text is not None and not isinstance(text, str):
            raise InputError(
                f"wrong type {type(text).__name__}", path=path, record=where, field="text"
            )
        if text is None and not error:
            raise InputError("neither text nor error", path=path, record=where, field="text")
        model = rec.get("model") or default_model
        if not isinstance(model, str):
            raise InputError("model is not a string", path=path, record=where, field="model")
        if (task_id, model) in seen:
            raise InputError(
                f"second response for task {task_id!r}", path=path, record=where, field="task_id"
            )
        seen.add((task_id, model))
        out.append({"task_id": task_id, "model": model, "text": text, "error": error})
    return out


def _row(resp: dict, score: float, status: str, detail: str = "", **extra) -> dict:
    return {
        "task_id": resp["task_id"],
        "model": resp["model"],
        "score": score,
        "status": status,
        "detail": detail,
        **extra,
    }


def _precheck(resp: dict, task: dict) -> dict | None:
    """The row for answers that are settled before any scoring work, else None."""
    if resp["error"]:
        return _row(resp, 0.0, "no_answer", f"generation error: {str(resp['error'])[:200]}")
    text = resp["text"] or ""
    if not text.strip():
        return _row(resp, 0.0, "no_code", "empty answer")
    if len(text) > MAX_ANSWER_CHARS:
        return _row(
            resp, 0.0, "no_code", f"answer of {len(text)} characters is over {MAX_ANSWER_CHARS}"
        )
    if task["kind"] in EXECUTION_KINDS and task["tests"] is None:
        reason = task["meta"].get("execution") or "task has no tests"
        return _row(resp, math.nan, "not_scorable", str(reason))
    if task["kind"] in CODEBLEU_KINDS and not task["reference"]:
        return _row(resp, math.nan, "not_scorable", "task has no reference")
    return None


def _entry_point(task: dict) -> str | None:
    tests = task["tests"] or {}
    return tests.get("entry_point") or tests.get("fn_name")


class VisibleChecks:
    """Per task, the prompt's examples that the reference passes (computed once, thread-safe).

    Examples the reference solution fails are flagged and left out (codyn.examples)."""

    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox
        self._cache: dict[str, list] = {}
        self.reduced: dict[str, Unseen] = {}
        self._lock = threading.Lock()
        self.flagged: dict[str, int] = {}

    def get(self, task: dict) -> list:
        with self._lock:
            if task["id"] in self._cache:
                return self._cache[task["id"]]
        kept, flagged = usable_checks(task, visible_examples(task), self.sandbox)
        with self._lock:
            self._cache[task["id"]] = kept
            if flagged:
                self.flagged[task["id"]] = len(flagged)
        return kept

    def unseen(self, task: dict) -> Unseen:
        """The task's hidden tests minus every example its prompt shows (flagged ones too:
        the model saw them all), computed once."""
        with self._lock:
            if task["id"] not in self.reduced:
                self.reduced[task["id"]] = unseen_tests(task["tests"], visible_examples(task))
            return self.reduced[task["id"]]


def _unseen_columns(
    code: str | None, task: dict, verdict: Verdict, visible: VisibleChecks, sandbox: Sandbox
) -> dict:
    """unseen_score / unseen_status of one answer (``verdict``: its hidden-test verdict)."""
    reduced = visible.unseen(task)
    if reduced.tests is None:
        return {"unseen_score": math.nan, "unseen_status": reduced.status}
    if code is None or not reduced.removed:
        return {"unseen_score": verdict.score, "unseen_status": verdict.status}
    again = run_tests(code, reduced.tests, sandbox)
    return {"unseen_score": again.score, "unseen_status": again.status}


def _visible_columns(verdict: VisibleVerdict | None) -> dict:
    if verdict is None:
        return {}
    return {
        "visible_status": verdict.status,
        "visible_passed": verdict.n_passed,
        "visible_total": verdict.n_total,
    }


def _score_execution(
    resp: dict, task: dict, sandbox: Sandbox, visible: VisibleChecks | None = None
) -> dict:
    code = extract_code(resp["text"], task["language"], _entry_point(task))
    checks = visible.get(task) if visible is not None and task["kind"] in VISIBLE_KINDS else None
    if code is None:
        verdict = Verdict(0.0, "no_code", "no code in the answer")
    else:
        verdict = run_tests(code, task["tests"], sandbox)
    if checks is None:
        return _row(resp, verdict.score, verdict.status, verdict.detail)
    seen = run_checks(code, checks, task["tests"], sandbox)
    unseen = _unseen_columns(code, task, verdict, visible, sandbox)
    return _row(
        resp, verdict.score, verdict.status, verdict.detail, **_visible_columns(seen), **unseen
    )


def _score_codebleu(resp: dict, task: dict) -> dict:
    code = extract_code(resp["text"], task["language"])
    if code is None:
        return _row(resp, 0.0, "no_code", "no code in the answer")
    parts = pair_codebleu(task["reference"], code, task["language"])
    detail = " ".join(
        f"{k.removesuffix('_score')}={v:.3f}" for k, v in parts.items() if k != "codebleu"
    )
    return _row(resp, float(parts["codebleu"]), "scored", detail)


def _score_classification(pairs: list[tuple[dict, dict]], mode: str) -> tuple[list[dict], float]:
    predictions = [parse_label(resp["text"]) if not resp["error"] else None for resp, _ in pairs]
    penalty = bias_penalty([task["label"] for _, task in pairs], predictions)
    rows = []
    for (resp, task), pred in zip(pairs, predictions, strict=True):
        if resp["error"]:
            rows.append(
                _row(resp, 0.0, "no_answer", f"generation error: {str(resp['error'])[:200]}")
            )
            continue
        correct = 1.0 if pred is not None and pred == task["label"] else 0.0
        said = {True: "vulnerable", False: "not vulnerable", None: "no label found"}[pred]
        detail = f"predicted {said}; truth {'vulnerable' if task['label'] else 'not vulnerable'}"
        rows.append(
            _row(
                resp,
                apply_penalty(correct, penalty, mode),
                "scored",
                detail,
                raw_score=correct,
                penalty=penalty,
            )
        )
    return rows, penalty


def _format(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(round(value, 6))
    return str(value)


def write_scores(rows: list[dict], out_csv) -> None:
    extra = EXTRA_COLUMNS + VISIBLE_COLUMNS + UNSEEN_COLUMNS
    columns = SCORE_COLUMNS + [c for c in extra if any(c in r for r in rows)]
    with atomic_open(out_csv, newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: _format(row.get(c)) for c in columns})


def score_responses(
    tasks_path,
    responses_path,
    out_csv,
    scoring_cfg: dict | None = None,
    *,
    meta_path=None,
    threads: int | None = None,
    sandbox: Sandbox | None = None,
) -> dict:
    """Score ``responses_path`` against ``tasks_path``; write the CSV and its meta JSON.

    ``scoring_cfg`` is the config ``scoring`` slice. Returns the summary written to the
    meta sidecar (``<out>.meta.json`` unless ``meta_path``).
    """
    cfg = dict(scoring_cfg or {})
    mode = cfg.get("sven_penalty", "subtract")
    if mode not in PENALTY_MODES:
        raise ValueError(
            f"unknown scoring.sven_penalty {mode!r} (allowed: {', '.join(PENALTY_MODES)})"
        )
    limits = Limits.from_config(cfg)
    want_visible = bool(cfg.get("visible", False))
    started = time.monotonic()
    tasks, responses = _read_inputs(tasks_path, responses_path)

    plan = _triage(responses, tasks, want_visible)
    sandbox_info, visible = None, None
    if plan.execution or plan.unanswered:
        workers = cfg.get("workers") or threads or os.cpu_count() or 1
        own = sandbox is None
        sandbox = sandbox or Sandbox(
            limits, workers=workers, isolation=cfg.get("isolation", "auto")
        )
        try:
            sandbox.start()
            sandbox_info = sandbox.describe()
            visible = VisibleChecks(sandbox) if want_visible else None
            _run_programs(plan, responses, tasks, sandbox, visible)
        finally:
            if own:
                sandbox.close()
    penalties = _score_classifications(plan, responses, tasks, mode)
    rows = plan.rows

    write_scores(rows, out_csv)
    missing = len(set(tasks) - {r["task_id"] for r in responses})
    counts = Counter(r["status"] for r in rows)
    summary = {
        "tasks": str(tasks_path),
        "responses": str(responses_path),
        "scores": str(out_csv),
        "n_responses": len(rows),
        "n_tasks_without_response": missing,
        "status_counts": dict(sorted(counts.items())),
        "mean_score": _mean([r["score"] for r in rows]),
        "limits": limits.to_dict(),
        "sandbox": sandbox_info,
        "sven_penalty": {"mode": mode, "penalty": penalties} if plan.classification else None,
        "codebleu_version": _version("codebleu"),
        "programs_scored": len(plan.execution),
        **(_visible_summary(rows, visible) if want_visible else {}),
        "wall_s": round(time.monotonic() - started, 3),
    }
    write_json(meta_path or meta_path_for(out_csv), summary)
    if missing:
        log.warning("%d tasks have no response in %s", missing, responses_path)
    log.info("scored %d responses: %s", len(rows), summary["status_counts"])
    return summary


def _read_inputs(tasks_path, responses_path) -> tuple[dict[str, dict], list[dict]]:
    tasks = read_tasks(tasks_path)
    if not tasks:
        raise InputError("no tasks in the file (empty)", path=tasks_path)
    responses = read_responses(responses_path, tasks)
    if not responses:
        # A header-only scores CSV would pass for a scored model with no answers.
        raise InputError("no responses in the file (empty)", path=responses_path)
    return tasks, responses


@dataclass
class _Triage:
    """Each response's row where it is settled without a program run, and the indices of
    those that still need work, by kind of work."""

    rows: list[dict | None]
    execution: list[int] = field(default_factory=list)  # programs to run against tests
    unanswered: list[int] = field(default_factory=list)  # no program; visible check: "error"
    classification: list[int] = field(default_factory=list)  # scored per model, as a file


def _triage(responses: list[dict], tasks: dict[str, dict], want_visible: bool) -> _Triage:
    plan = _Triage(rows=[None] * len(responses))
    for i, resp in enumerate(responses):
        task = tasks[resp["task_id"]]
        if task["kind"] == "classify":
            plan.classification.append(i)
            continue
        settled = _precheck(resp, task)
        if settled is not None:
            plan.rows[i] = settled
            if (
                want_visible
                and task["kind"] in VISIBLE_KINDS
                and settled["status"] != "not_scorable"
            ):
                plan.unanswered.append(i)  # no program: "error" if the prompt shows examples
        elif task["kind"] in EXECUTION_KINDS:
            plan.execution.append(i)
        else:
            plan.rows[i] = _score_codebleu(resp, task)
    return plan


def _run_programs(
    plan: _Triage,
    responses: list[dict],
    tasks: dict[str, dict],
    sandbox: Sandbox,
    visible: VisibleChecks | None,
) -> None:
    """Fill the rows of the answers that need the (started) sandbox."""
    for i in plan.unanswered:
        task, row = tasks[responses[i]["task_id"]], plan.rows[i]
        row.update(_visible_columns(run_checks(None, visible.get(task), task["tests"], sandbox)))
        settled = Verdict(row["score"], row["status"], row["detail"])
        row.update(_unseen_columns(None, task, settled, visible, sandbox))
    with ThreadPoolExecutor(max_workers=sandbox.n_workers) as pool:
        jobs = [
            (
                i,
                pool.submit(
                    _score_execution,
                    responses[i],
                    tasks[responses[i]["task_id"]],
                    sandbox,
                    visible,
                ),
            )
            for i in plan.execution
        ]
        for i, job in tqdm(jobs, desc="score", unit="answer", disable=None):
            plan.rows[i] = job.result()


def _score_classifications(
    plan: _Triage, responses: list[dict], tasks: dict[str, dict], mode: str
) -> dict[str, float]:
    """Fill the classification rows, one model's answers at a time (the bias penalty is a
    property of a model's whole file); returns each model's penalty."""
    penalties = {}
    by_model: dict[str, list[int]] = {}
    for i in plan.classification:
        by_model.setdefault(responses[i]["model"], []).append(i)
    for model, indices in by_model.items():
        pairs = [(responses[i], tasks[responses[i]["task_id"]]) for i in indices]
        scored, penalties[model] = _score_classification(pairs, mode)
        for i, row in zip(indices, scored, strict=True):
            plan.rows[i] = row
    return penalties


def _visible_summary(rows: list[dict], visible: VisibleChecks | None) -> dict:
    counts = Counter(r["visible_status"] for r in rows if r.get("visible_status"))
    flagged = visible.flagged if visible is not None else {}
    reduced = visible.reduced if visible is not None else {}
    return {
        "visible": {
            "status_counts": dict(sorted(counts.items())),
            "examples_flagged_by_reference": dict(sorted(flagged.items())),
        },
        "unseen": {
            "status_counts": dict(
                sorted(Counter(r["unseen_status"] for r in rows if r.get("unseen_status")).items())
            ),
            "tasks_with_visible_tests_removed": sum(u.removed > 0 for u in reduced.values()),
            "hidden_tests_removed": sum(u.removed for u in reduced.values()),
            "tasks_all_visible": sorted(t for t, u in reduced.items() if u.status == ALL_VISIBLE),
            "tasks_unsupported": sorted(t for t, u in reduced.items() if u.status == UNSUPPORTED),
        },
    }


def _mean(values: list[float]) -> float | None:
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
