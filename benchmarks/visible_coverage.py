"""Visible-example coverage on the real datasets (codyn.examples.coverage).

- HumanEval (164): the docstring text alone (``tests.prefix``), via the humaneval adapter;
  examples are checked against the canonical solution in the sandbox.
- MBPP (397, MapCoder's ``mbpp-py.jsonl``): the ``sample_io`` assert MapCoder showed the
  model (MBPP's own protocol lists the tests in the prompt; MapCoder shows the first);
  reference = the MBPP-sanitized canonical solution of the same MBPP id where the
  RouterBench copy has it. Also reported: the MultiPL-E prompt text alone.
- APPS-150 (128 distinct problems, via the apps adapter): the ``Sample Input/Output`` block
  (MapCoder's ``sample_io``); these rows carry no reference solution. Also reported: the
  statement text alone (examples written in the question).
- LiveCodeBench (880 statements; the mirror holds no public tests): the statement text
  (AtCoder/Codeforces "Sample Input N", LeetCode "Example / Input: / Output:" calling the
  starter code's ``Solution`` method). With ``--lcb-answers``, O1-Mini's graded answers run
  on those examples: how often a visible pass agrees with LiveCodeBench's hidden grade.

    PYTHONPATH=. python benchmarks/visible_coverage.py [--lcb-answers] [--out F.json]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import sys
from pathlib import Path

from codyn.datasets.apps import read_problems
from codyn.datasets.humaneval import humaneval_task
from codyn.examples import _APPS_SAMPLES, coverage, parse_examples, visible_examples
from codyn.io import write_json
from codyn.prompts import apps_prompt, codegen_prompt
from codyn.scoring.sandbox import Sandbox
from codyn.scoring.visible import run_checks

SHARED = Path(os.environ.get("CODYN_SHARED_DATASETS", "../shared/datasets"))


def humaneval_tasks() -> list[dict]:
    with gzip.open(SHARED / "humaneval" / "HumanEval.jsonl.gz", "rt", encoding="utf-8") as fh:
        return [humaneval_task(json.loads(line), "humaneval") for line in fh]


def mbpp_tasks() -> list[dict]:
    sanitized = {}
    for line in open(SHARED / "routerbench_mbpp" / "mbpp_sanitized_for_code_generation.jsonl"):
        rec = json.loads(line)
        sanitized[rec["task_id"].split("/")[-1]] = rec
    tasks = []
    for line in open(SHARED / "mapcoder_results" / "data" / "MBPPEval" / "mbpp-py.jsonl"):
        rec = json.loads(line)
        number = re.match(r"mbpp_(\d+)_", rec["name"]).group(1)
        ref = sanitized.get(number)
        reference = None
        if ref is not None and ref["entry_point"] == rec["entry_point"]:
            # The sanitized bodies are indented by 2 under a 4-indented docstring: drop it.
            header = re.sub(r"\n\s*('''|\"\"\")[\s\S]*?\1[ \t]*\n", "\n", ref["prompt"])
            reference = header + ref["canonical_solution"]
        tasks.append(
            {
                "id": rec["name"],
                "dataset": "mbpp",
                "kind": "generate",
                "language": "python",
                "prompt": codegen_prompt(rec["prompt"].rstrip("\n")),
                "reference": reference,
                "tests": {
                    "type": "check",
                    "test": rec["test"],
                    "entry_point": rec["entry_point"],
                    "prefix": rec["prompt"],
                },
                "label": None,
                "meta": {"sample_io": rec["sample_io"]},
            }
        )
    return tasks


def apps_tasks() -> list[dict]:
    problems, _ = read_problems([SHARED / "apps_mapcoder150" / "selected150.jsonl"])
    seen, tasks = set(), []
    for p in problems:
        if p["problem_id"] in seen:
            continue
        seen.add(p["problem_id"])
        tasks.append(
            {
                "id": p["problem_id"],
                "dataset": "apps",
                "kind": "generate",
                "language": "python",
                "prompt": apps_prompt(p["question"]),
                "reference": p["reference"],
                "tests": p["tests"],
                "label": None,
                "meta": {},
            }
        )
    return tasks


LCB_ANSWERS = "submissions_O1-Mini-2024-09-12_N1_codegeneration_eval_all.json"


def lcb_questions() -> list[dict]:
    """LiveCodeBench statements (880, with O1-Mini's graded answer; no public tests stored):
    as tasks, the LeetCode ones calling the starter code's ``Solution`` method."""
    rows = json.load(open(SHARED / "lcb_leaderboard_matrix" / LCB_ANSWERS))
    tasks = []
    for q in rows:
        m = re.search(r"def (\w+)\(self", q.get("starter_code") or "")
        tests = {"type": "call", "fn_name": m.group(1)} if m else {"type": "stdio"}
        tasks.append(
            {
                "id": q["question_id"],
                "dataset": f"lcb-{q['platform']}",
                "kind": "generate",
                "language": "python",
                "prompt": q["question_content"],
                "reference": None,
                "tests": tests,
                "label": None,
                "meta": {},
                "answer": q["code_list"][0],
                "graded": bool(q["graded_list"][0]),
            }  # fmt: skip
        )
    return tasks


def lcb_agreement(tasks: list[dict], sandbox: Sandbox) -> dict:
    """Visible verdict of O1-Mini's answer vs LiveCodeBench's hidden-test grade, per platform."""
    out: dict[str, dict] = {}
    for t in tasks:
        checks = visible_examples(t)
        if not checks:
            continue
        v = run_checks(t["answer"], checks, t["tests"], sandbox)
        key = f"visible_{'pass' if v.status == 'pass' else 'not_pass'}_hidden_{'pass' if t['graded'] else 'fail'}"
        rec = out.setdefault(t["dataset"], {})
        rec[key] = rec.get(key, 0) + 1
    for rec in out.values():
        passed = rec.get("visible_pass_hidden_pass", 0) + rec.get("visible_pass_hidden_fail", 0)
        right = rec.get("visible_pass_hidden_pass", 0) + rec.get("visible_not_pass_hidden_pass", 0)
        rec["precision_of_visible_pass"] = (
            rec.get("visible_pass_hidden_pass", 0) / passed if passed else None
        )
        rec["recall_of_hidden_pass"] = (
            rec.get("visible_pass_hidden_pass", 0) / right if right else None
        )
    return out


def text_only(tasks: list[dict], stdin: bool) -> float:
    n = 0
    for t in tasks:
        text = t["tests"].get("prefix") or t["prompt"].split("\nQuestion:\n\n", 1)[-1]
        text = text.split(_APPS_SAMPLES)[0]
        entry = None if stdin else t["tests"].get("entry_point")
        n += bool(parse_examples(text, entry, stdin=stdin).checks)
    return n / len(tasks)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    ap.add_argument(
        "--lcb-answers", action="store_true",
        help="also run O1-Mini's LiveCodeBench answers on the parsed examples (~2 min)",
    )  # fmt: skip
    args = ap.parse_args(argv)
    if not SHARED.is_dir():
        print(f"needs {SHARED} (set CODYN_SHARED_DATASETS)", file=sys.stderr)
        return 2
    sets = {"humaneval": humaneval_tasks(), "mbpp": mbpp_tasks(), "apps": apps_tasks()}
    out = {}
    lcb = lcb_questions()
    with Sandbox(workers=2) as sandbox:
        for name, tasks in sets.items():
            out[name] = coverage(tasks, sandbox=sandbox)[name]
        out.update(coverage(lcb, check_reference=False))
        if args.lcb_answers:
            agreement = lcb_agreement(lcb, sandbox)
            for name, rec in agreement.items():
                out[name]["o1_mini_answers"] = rec
    out["mbpp"]["share_from_prompt_text_alone"] = text_only(sets["mbpp"], stdin=False)
    out["apps"]["share_from_statement_text_alone"] = text_only(sets["apps"], stdin=True)
    for name, rec in out.items():
        print(
            f"{name}: {rec['tasks']} tasks, with >=1 example {rec['share_with_examples']:.3f}, "
            f"usable (reference passes) {rec['share_with_usable_examples']:.3f}, "
            f"{rec['examples_per_task']:.2f} examples/task, reference checked on "
            f"{rec['reference_checked_tasks']} tasks, reference fails {rec['reference_fails']} "
            f"examples, no reference {rec['no_reference']}; origins {rec['origins']}"
        )
        for key in ("share_from_prompt_text_alone", "share_from_statement_text_alone"):
            if key in rec:
                print(f"  {key}: {rec[key]:.3f}")
        if "o1_mini_answers" in rec:
            print(f"  O1-Mini answers, visible verdict vs hidden grade: {rec['o1_mini_answers']}")
        for ex in rec["reference_fails_examples"]:
            print(f"  flagged {ex['task_id']}: {ex['check'][:80]!r}")
    if args.out:
        write_json(args.out, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
