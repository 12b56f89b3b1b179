"""Quick feasibility of the verified cascade on MapCoder's published HumanEval answers.

NOT the replayed-answer experiment (that scores every answer with our sandbox; the lead
builds it). Here, for a first number only:

- hidden score = the PUBLISHER's ``is_solved`` (MapCoder's own execution of HumanEval's
  tests), not ours;
- visible verdict = our runner (codyn.scoring.visible, in our sandbox) on ``source_codes[-1]``
  against the examples parsed from the HumanEval docstring (codyn.examples), minus those
  the canonical solution fails;
- dollars = the files' per-call token counts x list prices of the time (OpenAI pricing page,
  Nov 2023: gpt-3.5-turbo-1106 $1 / $2 and gpt-4-1106-preview (GPT-4-Turbo) $10 / $30
  per million input / output tokens); relative cost = each system's mean dollars.

HumanEval (164), MBPP (397; visible = the sample_io assert, also one of the hidden tests) and
APPS-150 (128 distinct problems, first row per id; visible = the sample_io stdin/stdout).
Reports (1) fixed cascades (the issue's, on all tasks), (2) the train-only chosen
cascade over the five seeded 75/25 splits. ``--out`` writes JSON.

    PYTHONPATH=. python benchmarks/cascade_feasibility.py --dataset humaneval|mbpp|apps [--out F.json]
"""

from __future__ import annotations

import argparse
import ast
import gzip
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from visible_coverage import apps_tasks, mbpp_tasks

from codyn.datasets.humaneval import humaneval_task
from codyn.examples import visible_examples
from codyn.io import write_json
from codyn.matrix import SCORE_PREFIX, USD_PREFIX, VISIBLE_PREFIX, Matrix
from codyn.routers.cascade import Arrays, Cascade, evaluate_seeds, run_cascade, summarise_seeds
from codyn.scoring.sandbox import Sandbox
from codyn.scoring.visible import run_checks, usable_checks

SHARED = Path(os.environ.get("CODYN_SHARED_DATASETS", "../shared/datasets"))
PRICES = {"ChatGPT": (1.0, 2.0), "GPT4": (10.0, 30.0)}  # $ per million in / out tokens
MAPCODER = Path("mapcoder_results") / "final-results"
APPS = Path("apps_mapcoder150") / "final-results"
SYSTEMS = {
    "humaneval": {
        "ChatGPT-Analogical": MAPCODER / "ChatGPT/HumanEval/ChatGPT-Analogical-Python3-0-1.jsonl",
        "ChatGPT-CoT": MAPCODER / "ChatGPT/HumanEval/ChatGPT-CoT-Python3-0-1.jsonl",
        "ChatGPT-MapCoder": MAPCODER
        / "ChatGPT/HumanEval/ChatGPT-MapCoder-5-5-Human-Python3-0-1.jsonl",
        "GPT4-Analogical": MAPCODER
        / "GPT4/HumanEval/GPT4-Turbo-Analogical-Human-Python3-0-1.jsonl",
        "GPT4-CoT": MAPCODER / "GPT4/HumanEval/GPT4-Turbo-CoT-Human-Python3-0-1.jsonl",
        "GPT4-SelfPlanning": MAPCODER
        / "GPT4/HumanEval/GPT4-Turbo-SelfPlanning-Human-Python3-0-1.jsonl",
        "GPT4-MapCoder": MAPCODER
        / "GPT4/HumanEval/GPT4-Turbo-MapCoder-5-5-Human-Python3-0-1.jsonl",
    },
    "mbpp": {
        "ChatGPT-Analogical": MAPCODER / "ChatGPT/MBPP/ChatGPT-Analogical-MBPP-Python3-0-1.jsonl",
        "ChatGPT-MapCoder": MAPCODER / "ChatGPT/MBPP/ChatGPT-MapCoder-3-5-MBPP-Python3-0-1.jsonl",
        "GPT4-Analogical": MAPCODER / "GPT4/MBPP/GPT4-Turbo-Analogical-MBPP-Python3-0-1.jsonl",
        "GPT4-CoT": MAPCODER / "GPT4/MBPP/GPT4-Turbo-CoT-MBPP-Python3-0-1.jsonl",
        "GPT4-SelfPlanning": MAPCODER / "GPT4/MBPP/GPT4-Turbo-SelfPlanning-MBPP-Python3-0-1.jsonl",
        "GPT4-MapCoder": MAPCODER / "GPT4/MBPP/GPT4-Turbo-MapCoder-3-5-MBPP-Python3-0-1.jsonl",
    },
    "apps": {
        f"{model}-{strategy}": APPS
        / f"{model}/APPS/{prefix}-{strategy}{'-3-5' if strategy == 'MapCoder' else ''}-APPS-Python3-0-1.jsonl"
        for model, prefix in (("ChatGPT", "ChatGPT"), ("GPT4", "GPT4-Turbo"))
        for strategy in ("Direct", "CoT", "SelfPlanning", "Analogical", "MapCoder")
    },
}
FIXED = {
    "humaneval": [("ChatGPT-Analogical", "GPT4-CoT", "GPT4-MapCoder"),
                  ("ChatGPT-CoT", "GPT4-CoT", "GPT4-MapCoder")],
    "mbpp": [("ChatGPT-Analogical", "GPT4-CoT", "GPT4-MapCoder")],
    "apps": [("ChatGPT-CoT", "GPT4-CoT", "GPT4-MapCoder"),
             ("ChatGPT-Direct", "GPT4-Direct", "GPT4-MapCoder")],
}  # fmt: skip


def _literal_list(value):
    return value if isinstance(value, list) else ast.literal_eval(value)


def dataset_tasks(dataset: str) -> dict[str, dict]:
    if dataset == "humaneval":
        with gzip.open(SHARED / "humaneval" / "HumanEval.jsonl.gz", "rt", encoding="utf-8") as fh:
            tasks = [humaneval_task(json.loads(line), "humaneval") for line in fh]
    elif dataset == "mbpp":
        tasks = mbpp_tasks()
    else:
        tasks = apps_tasks()
    return {t["id"]: t for t in tasks}


def build_matrix(dataset: str, sandbox: Sandbox) -> Matrix:
    tasks = dataset_tasks(dataset)
    checks = {
        t: usable_checks(task, visible_examples(task), sandbox)[0] for t, task in tasks.items()
    }
    frame = pd.DataFrame({"task_id": list(tasks)})
    frame["dataset"] = dataset
    frame["kind"] = "generate"
    frame["prompt"] = [tasks[t]["prompt"] for t in tasks]
    systems = SYSTEMS[dataset]
    for name, rel in systems.items():
        rows = {}
        for line in open(SHARED / rel, encoding="utf-8"):
            rec = json.loads(line)
            rows.setdefault(str(rec["task_id"]), rec)  # APPS repeats ids: the first, as the adapter
        p_in, p_out = PRICES[name.split("-")[0]]
        score, usd, vis = [], [], []
        for t in tasks:
            rec = rows[t]
            code = _literal_list(rec["source_codes"])[-1]
            score.append(1.0 if str(rec["is_solved"]) == "True" else 0.0)
            tok_in = sum(_literal_list(rec["prompt_tokens"]))
            tok_out = sum(_literal_list(rec["completion_tokens"]))
            usd.append((tok_in * p_in + tok_out * p_out) / 1e6)
            vis.append(run_checks(code, checks[t], tasks[t]["tests"], sandbox).share)
        frame[SCORE_PREFIX + name] = score
        frame[USD_PREFIX + name] = usd
        frame[VISIBLE_PREFIX + name] = vis
    costs = {m: float(frame[USD_PREFIX + m].mean()) for m in systems}
    meta = {"dataset": dataset, "hidden_score": "publisher is_solved (feasibility only)"}
    return Matrix(frame, list(systems), costs, False, f"mapcoder-published:{dataset}", meta)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", choices=sorted(SYSTEMS), default="humaneval")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if not (SHARED / "mapcoder_results").is_dir():
        print(f"needs {SHARED}/mapcoder_results (set CODYN_SHARED_DATASETS)", file=sys.stderr)
        return 2
    with Sandbox(workers=2) as sandbox:
        matrix = build_matrix(args.dataset, sandbox)
    arrays = Arrays.from_matrix(matrix)
    out = {"systems": {}, "fixed": [], "seeds": None}
    vis = matrix.visible()
    for m in matrix.models:
        v = vis[m].to_numpy()
        s = matrix.scores()[m].to_numpy()
        passed = v >= 1.0
        out["systems"][m] = {
            "effectiveness": float(s.mean()),
            "usd_per_prompt": float(matrix.usd()[m].mean()),
            "visible_pass_share": float(passed.mean()),
            "precision_of_visible_pass": float(s[passed].mean()) if passed.any() else None,
            "no_examples_share": float(np.isnan(v).mean()),
        }
    for stages in FIXED[args.dataset]:
        for rule in ("accept", "escalate"):
            cas = Cascade(stages, no_examples=rule)
            _, summ = run_cascade(arrays, cas)
            out["fixed"].append(summ)
    records, per_task = evaluate_seeds(matrix, seeds=(0, 1, 2, 3, 4), test_size=0.25)
    out["seeds"] = {"summary": summarise_seeds(records), "records": records}
    sbs = max(matrix.models, key=lambda m: (out["systems"][m]["effectiveness"], -matrix.costs[m]))
    print(f"{args.dataset}: {len(matrix.task_ids)} tasks; hidden = publisher is_solved; SBS {sbs}")
    for m, r in out["systems"].items():
        print(
            f"  {m:20s} E={r['effectiveness']:.3f} ${r['usd_per_prompt']:.5f} "
            f"visible-pass={r['visible_pass_share']:.3f} precision={r['precision_of_visible_pass']:.3f}"
        )
    sbs_usd = out["systems"][sbs]["usd_per_prompt"]
    for s in out["fixed"]:
        print(
            f"  fixed {s['cascade']['name']}: E={s['effectiveness']:.3f} "
            f"${s['usd_per_prompt']:.5f} ({s['usd_per_prompt'] / sbs_usd:.2f} of SBS $) "
            f"stops={np.round(s['stop_share'], 3).tolist()} "
            f"precision={np.round(s['accept_precision'], 3).tolist()}"
        )
    summ = out["seeds"]["summary"]
    print(
        "  5 seeds, chosen on train: E={:.3f}±{:.3f} vs SBS {:.3f}±{:.3f}; diff {:+.3f}; "
        "$ ratio to SBS {:.2f}±{:.2f}; chosen {}".format(
            summ["cascade_effectiveness"]["mean"],
            summ["cascade_effectiveness"]["std"],
            summ["sbs_effectiveness"]["mean"],
            summ["sbs_effectiveness"]["std"],
            summ["cascade_minus_sbs"]["mean"],
            summ["usd_over_sbs"]["mean"],
            summ["usd_over_sbs"]["std"],
            summ["chosen"],
        )  # fmt: skip
    )
    for r in records:
        print(
            f"    seed {r['seed']}: E={r['test']['effectiveness']:.3f} SBS={r['sbs']['effectiveness']:.3f} "
            f"diff CI95 {np.round(r['cascade_minus_sbs']['ci95'], 3).tolist()} "
            f"$/SBS={r['usd_over_sbs']:.2f}"
        )
    if args.out:
        write_json(args.out, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
