"""What each router costs on CPU: training time, peak memory, prediction latency.

    .venv/bin/python benchmarks/router_cost.py                      # embedded default
    .venv/bin/python benchmarks/router_cost.py --targets results/splits/lcb/targets.parquet

Each router of the config's ``run_routers`` (or ``--routers``) is trained on the train
rows of the targets files (default: the config's training datasets, as the pipeline
does) for one cost setting, in its own fresh process with ``--threads`` torch threads,
so peak memory (max RSS of that process, imports and models included) is its own.
The saved router is then loaded and timed on test prompts with the embedding disk
cache off: per-prompt latency at batch 1 (each call one prompt) and at batch 32 (call
time / 32), p50 and p95. The oracle needs true targets, so it has no latency.
Prints a table and writes results/benchmarks/router_cost.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def measure_one(args) -> dict:
    """Runs inside the child process: train, save, load, time predictions."""
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    from codyn.config import load_config
    from codyn.routers import load_router
    from codyn.routers.pipeline import train_router
    from codyn.routing_data import load_routing_data

    config = load_config(args.config)
    spec = dict(config["routers"][args.one])
    models = load_routing_data(args.targets, args.setting).models
    if spec.get("pair") and not set(spec["pair"]) <= set(models):
        # Targets of another portfolio (e.g. an imported matrix): same positions.
        spec["pair"] = [models[config["portfolio"].index(m)] for m in spec["pair"]]
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        meta = train_router(
            args.targets,
            args.setting,
            spec,
            Path(tmp) / "router",
            seed=config["seed"],
            lambda2=config["cost_settings"][args.setting],
            threads=args.threads,
        )
        wall = time.perf_counter() - started
        peak_train = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out = {
            "router": args.one,
            "type": spec["type"],
            "n_train": meta["metrics"]["n_train"],
            "fit_seconds": meta["metrics"]["fit_seconds"],
            "train_wall_seconds": round(wall, 2),
            "peak_rss_mb_train": round(peak_train, 1),
            "peak_rss_mb": round(peak_train, 1),
            "checkpoint_mb": round(
                sum(p.stat().st_size for p in (Path(tmp) / "router").rglob("*") if p.is_file())
                / 2**20,
                2,
            ),
        }
        if spec["type"] == "oracle":
            return out
        os.environ["CODYN_EMBED_CACHE"] = "0"
        router = load_router(Path(tmp) / "router")
        test = load_routing_data(args.targets, args.setting, split="test").prompts
        prompts = (test * (1 + 64 // max(len(test), 1)))[:64]
        router.predict_scores(prompts[:2])  # warm-up: lazy model loads, first-call costs
        single = []
        for p in prompts[: args.n_single]:
            t = time.perf_counter()
            router.predict_scores([p])
            single.append(time.perf_counter() - t)
        batched = []
        for start in range(0, len(prompts) - 31, 32):
            t = time.perf_counter()
            router.predict_scores(prompts[start : start + 32])
            batched.append((time.perf_counter() - t) / 32)
        out.update(
            {
                "latency_ms_b1_p50": round(1000 * float(np.percentile(single, 50)), 2),
                "latency_ms_b1_p95": round(1000 * float(np.percentile(single, 95)), 2),
                "latency_ms_b32_p50": round(1000 * float(np.percentile(batched, 50)), 2),
                "latency_ms_b32_p95": round(1000 * float(np.percentile(batched, 95)), 2),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            }
        )
        return out


def default_targets(config: dict) -> list[str]:
    from codyn import paths
    from codyn.config import train_datasets

    return [paths.TARGETS.format(dataset=d) for d in train_datasets(config)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default=str(REPO / "config.yaml"))
    parser.add_argument(
        "--targets",
        nargs="*",
        help="targets.parquet files (default: the config's training datasets)",
    )
    parser.add_argument(
        "--routers", nargs="*", help="router names (default: the config's run_routers)"
    )
    parser.add_argument("--setting", default="setting1")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-single", type=int, default=32, help="prompts timed one by one")
    parser.add_argument("--out", default=str(REPO / "results" / "benchmarks" / "router_cost.json"))
    parser.add_argument(
        "--merge", action="store_true", help="keep other routers' rows of an existing --out file"
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    from codyn.config import is_simulated, load_config

    config = load_config(args.config)
    args.targets = args.targets or default_targets(config)
    missing = [t for t in args.targets if not Path(t).is_file()]
    if missing:
        parser.error(
            f"targets not found: {missing} (run the pipeline up to the splits stage, or pass --targets)"
        )
    if args.one:
        print(json.dumps(measure_one(args)))
        return 0

    routers = args.routers or list(config["run_routers"])
    rows = []
    for name in routers:
        cmd = [
            sys.executable,
            __file__,
            "--one",
            name,
            "--config",
            args.config,
            "--setting",
            args.setting,
            "--threads",
            str(args.threads),
            "--n-single",
            str(args.n_single),
            "--targets",
            *args.targets,
        ]
        env = {**os.environ, "CODYN_CACHE": tempfile.mkdtemp(prefix="codyn-bench-cache-")}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            rows.append(
                {
                    "router": name,
                    "error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed",
                }
            )
            continue
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"done {name}: {rows[-1]}", file=sys.stderr)

    if args.merge and Path(args.out).is_file():
        measured = {row["router"] for row in rows}
        kept = [
            r
            for r in json.loads(Path(args.out).read_text())["routers"]
            if r["router"] not in measured
        ]
        rows = kept + rows
    simulated = is_simulated(config)
    report = {
        "config": args.config,
        "targets": args.targets,
        "setting": args.setting,
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        # Other work on the machine inflates every number; this says how much there was.
        "load_average_1_5_15_at_end": [round(x, 2) for x in os.getloadavg()],
        "simulated": simulated,
        "note": "peak_rss_mb is the max RSS of a fresh process per router (imports included)",
        "routers": rows,
    }
    from codyn.io import write_json

    write_json(args.out, report)
    cols = [
        "router",
        "n_train",
        "fit_seconds",
        "peak_rss_mb",
        "checkpoint_mb",
        "latency_ms_b1_p50",
        "latency_ms_b1_p95",
        "latency_ms_b32_p50",
        "latency_ms_b32_p95",
    ]
    print(
        f"router cost on CPU ({args.threads} threads), setting {args.setting}"
        + (" -- SIMULATED portfolio" if simulated else "")
    )
    print(" | ".join(cols))
    for row in rows:
        print(
            " | ".join(
                str(row.get(c, row.get("error", "-") if c == "n_train" else "-")) for c in cols
            )
        )
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
