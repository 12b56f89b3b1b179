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

    PYTHONPATH=. python benchmarks/visible_coverage.py [--out results/benchmarks/visible_coverage.json]
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
from codyn.examples import _APPS_SAMPLES, coverage, parse_examples
from codyn.io import write_json
from codyn.prompts import apps_prompt, codegen_prompt
from codyn.scoring.sandbox import Sandbox

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
    args = ap.parse_args(argv)
    if not SHARED.is_dir():
        print(f"needs {SHARED} (set CODYN_SHARED_DATASETS)", file=sys.stderr)
        return 2
    sets = {"humaneval": humaneval_tasks(), "mbpp": mbpp_tasks(), "apps": apps_tasks()}
    out = {}
    with Sandbox(workers=2) as sandbox:
        for name, tasks in sets.items():
            out[name] = coverage(tasks, sandbox=sandbox)[name]
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
        for ex in rec["reference_fails_examples"]:
            print(f"  flagged {ex['task_id']}: {ex['check'][:80]!r}")
    if args.out:
        write_json(args.out, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
