"""Router quality on REAL per-prompt results (issue: beat the single best model cheaply).

For each real matrix (LiveCodeBench lcb-ladder5, RouterBench MBPP) and each of five
seeds, through the pipeline's own stages: import (codyn.importers) -> seeded 75/25
split and targets (codyn.splits) -> train (codyn.routers) -> predict -> evaluate
(codyn.evaluation: Eq. 2 cost, cost-weight sweep, APGR / CPT / AIQ). Writes
``results/benchmarks/router_quality.md`` (mean ± std over seeds) and ``.json`` (every
number, per seed).

Each learned router is trained once per seed on the setting-1 targets; settings 2 and 3
are read off the same router at cost weight w = lambda2 (RS_k = RS_1 + lambda2 * CS^-1,
so for routers linear in their targets (knn, linear) this is exactly the setting-k
router, for the others a close stand-in that saves two trainings per seed).

"parity cost" is the lowest Eq. 2 cost among the swept operating points whose test
effectiveness reaches the single best model's (SBS chosen on train), divided by the
SBS's own cost: the goal is <= 0.30 (RouterBench MBPP, mean) and <= 0.80 (lcb-ladder5).
CPT(100%) is RouteLLM's interpolated version of the same (mixing two operating points).

    .venv/bin/python benchmarks/router_quality.py            # both matrices, 5 seeds
    .venv/bin/python benchmarks/router_quality.py --routers knn linear --seeds 0 1
    snakemake --cores 2 results/benchmarks/router_quality.md  # the same from Snakemake

Needs ../shared/datasets (the real matrices); exits with a message when it is absent.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from codyn.config import load_config, relative_costs
from codyn.evaluation import metrics, sweep
from codyn.importers import import_matrix
from codyn.io import write_json, write_text
from codyn.routers import make_router
from codyn.routing_data import load_routing_data
from codyn.splits import build_targets, make_split

LOG = logging.getLogger("router_quality")
REPO = Path(__file__).resolve().parent.parent

MATRICES = {
    "lcb-ladder5": (["config/lcb-ladder5.yaml"], "lcb"),
    "lcb-ladder5-meta": (["config/lcb-ladder5.yaml", "config/lcb-ladder5-meta.yaml"], "lcb"),
    "routerbench-mbpp": (["config/routerbench-mbpp.yaml"], "routerbench-mbpp"),
}
GOALS = {"lcb-ladder5": 0.80, "lcb-ladder5-meta": 0.80, "routerbench-mbpp": 0.30}

# name -> router config entry (the pipeline's own router types and parameters)
ROUTERS = {
    "linear": {"type": "linear", "C": 1.0},
    "cls": {
        "type": "cls",
        "base_model": "minilm",
        "epochs": 4,
        "lr": 1.0e-4,
        "warmup_steps": 5,
        "batch_size": 16,
        "max_length": 256,
    },
    "knn": {"type": "knn", "k": 15, "weights": "distance"},
    "mlp": {"type": "mlp", "hidden": 128},
    "rorf": {"type": "rorf", "n_estimators": 200, "threshold": 0.5},  # pair set per matrix
    "random": {"type": "random"},
    "sbs": {"type": "sbs"},
    "cheapest": {"type": "cheapest"},
    "oracle": {"type": "oracle"},
}
SWEPT = {"linear", "cls", "knn", "mlp", "rorf"}


def write_targets_file(frame, meta, path: Path) -> Path:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({b"codyn": json.dumps(meta).encode()})
    pq.write_table(table, path)
    return path


def evaluate_choice(scores, costs, choice) -> dict:
    share = metrics.shares(choice, len(costs))
    return {
        "effectiveness": metrics.effectiveness(scores, choice),
        "cost": metrics.eq2_cost(share, costs),
        "shares": share.tolist(),
    }


def run_seed(name, matrix, seed, routers, settings, normalisation, workdir) -> dict:
    split = make_split(
        matrix.task_ids, dataset=matrix.frame["dataset"].iloc[0], seed=seed, test_size=0.25
    )
    frame, meta = build_targets(matrix, split, settings=settings, normalisation=normalisation)
    path = write_targets_file(frame, meta, Path(workdir) / f"{name}-{seed}.parquet")
    train = load_routing_data([str(path)], "setting1", split="train")
    test = load_routing_data([str(path)], "setting1", split="test")
    costs = np.asarray(train.costs, dtype=float)
    sbs = metrics.single_best(train.scores, costs)
    weak = metrics.cheapest(costs)
    share_sbs = np.eye(len(costs))[sbs]
    ref = {
        "sbs": train.models[sbs],
        "e_strong": float(test.scores[:, sbs].mean()),
        "c_strong": metrics.eq2_cost(share_sbs, costs),
        "e_weak": float(test.scores[:, weak].mean()),
        "c_weak": metrics.eq2_cost(np.eye(len(costs))[weak], costs),
        "c_lo": float(costs.min() / costs.max()),
        "n_train": len(train),
        "n_test": len(test),
    }
    out = {"seed": seed, "reference": ref, "routers": {}}
    for rname in routers:
        params = dict(ROUTERS[rname])
        if params["type"] == "rorf":
            params["pair"] = [train.models[weak], train.models[sbs]]
        started = time.perf_counter()
        router = make_router(params["type"], params, seed=seed).fit(train)
        fit_s = time.perf_counter() - started
        if params["type"] == "oracle":
            pred = router.predict_from_targets(test.scores)
        else:
            pred = router.predict_scores(test.prompts)
        rec = {"fit_s": round(fit_s, 2), "settings": {}}
        for sname, lam in settings.items():
            choice = sweep.decide(pred, costs, float(lam))
            rec["settings"][sname] = evaluate_choice(test.scores, costs, choice)
        if rname in SWEPT:
            pts = sweep.sweep(pred, test.scores, costs, n_points=201)
            cost = np.array([p.cost for p in pts])
            eff = np.array([p.effectiveness for p in pts])
            curve = metrics.curve_metrics(
                cost, eff, ref["e_weak"], ref["e_strong"], ref["c_weak"], ref["c_strong"],
                ref["c_lo"], levels=(0.5, 0.8, 1.0),
            )  # fmt: skip
            reach = cost[eff >= ref["e_strong"] - 1e-12]
            rec["curve"] = {
                "apgr": curve["apgr"],
                "aiq": curve["aiq"],
                "cpt50": curve["cpt"]["0.5"],
                "cpt80": curve["cpt"]["0.8"],
                "cpt100": curve["cpt"]["1"],
                "parity_cost": float(reach.min()) / ref["c_strong"] if len(reach) else None,
                "best_effectiveness": float(eff.max()),
            }
        out["routers"][rname] = rec
        LOG.info(
            "%s seed %d %s: %s", name, seed, rname, rec.get("curve", rec["settings"]["setting1"])
        )
    return out


def summarise(results: dict, routers: list[str], settings: dict) -> str:
    lines = ["# Router quality on real matrices", ""]
    lines.append(
        "Real per-prompt results of real models (no simulated answers). Five seeded 75/25 "
        "splits; mean ± std over seeds. Cost = Eq. 2 (relative to the most expensive model). "
        "*parity cost* = lowest cost at which the router's swept curve reaches the single "
        "best model's test effectiveness, as a fraction of that model's cost (- = never). "
        "Command: `.venv/bin/python benchmarks/router_quality.py`."
    )
    for name, res in results.items():
        seeds = res["seeds"]
        ref0 = seeds[0]["reference"]
        lines += ["", f"## {name}", ""]
        lines.append(
            f"SBS (train): {ref0['sbs']}; test n = {ref0['n_test']}; goal: parity on every "
            f"seed at <= {GOALS.get(name, float('nan')):.2f} of the SBS cost (mean)."
        )
        lines += ["", "| router | " + " | ".join(f"{s} E | {s} C" for s in settings)
                  + " | APGR | AIQ | CPT50 | CPT80 | parity cost | parity seeds |"]  # fmt: skip
        lines.append("|" + "---|" * (1 + 2 * len(settings) + 6))

        def ms(vals):
            vals = [v for v in vals if v is not None and np.isfinite(v)]
            if not vals:
                return "-"
            return f"{np.mean(vals):.3f} ± {np.std(vals):.3f}"

        sbs_row = [f"{np.mean([s['reference']['e_strong'] for s in seeds]):.3f}",
                   f"{np.mean([s['reference']['c_strong'] for s in seeds]):.3f}"]  # fmt: skip
        for r in routers:
            recs = [s["routers"][r] for s in seeds]
            cells = []
            for sname in settings:
                cells.append(ms([x["settings"][sname]["effectiveness"] for x in recs]))
                cells.append(ms([x["settings"][sname]["cost"] for x in recs]))
            if "curve" in recs[0]:
                c = [x["curve"] for x in recs]
                parity = [x["parity_cost"] for x in c]
                n_par = sum(p is not None for p in parity)
                cells += [ms([x["apgr"] for x in c]), ms([x["aiq"] for x in c]),
                          ms([x["cpt50"] for x in c]), ms([x["cpt80"] for x in c]),
                          ms(parity), f"{n_par}/{len(seeds)}"]  # fmt: skip
            else:
                cells += ["", "", "", "", "", ""]
            lines.append(f"| {r} | " + " | ".join(cells) + " |")
        lines.append(
            f"| SBS (reference) | {sbs_row[0]} | {sbs_row[1]} |" + " |" * (2 * len(settings) + 4)
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--matrices", nargs="+", default=list(MATRICES), choices=list(MATRICES))
    ap.add_argument("--routers", nargs="+", default=list(ROUTERS), choices=list(ROUTERS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument(
        "--normalisation", default="per_model", choices=["per_model", "per_dataset", "none"]
    )
    ap.add_argument("--out", default="results/benchmarks/router_quality")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    os.chdir(REPO)
    if not (REPO.parent / "shared" / "datasets").is_dir() and not os.environ.get(
        "CODYN_SHARED_DATASETS"
    ):
        print(
            "router_quality: ../shared/datasets not found; this benchmark needs the real matrices"
        )
        return 2
    results = {}
    for name in args.matrices:
        cfg_paths, dataset = MATRICES[name]
        config = load_config("config.yaml", *cfg_paths)
        spec = config["datasets"][dataset]["import"]
        matrix = import_matrix(
            spec, dataset=dataset, models=config["portfolio"], costs=relative_costs(config),
            mirror_dir=os.environ.get("CODYN_SHARED_DATASETS") or config["mirror_dir"],
        )  # fmt: skip
        settings = config["cost_settings"]
        with tempfile.TemporaryDirectory() as work:
            seeds = [
                run_seed(name, matrix, seed, args.routers, settings, args.normalisation, work)
                for seed in args.seeds
            ]
        results[name] = {"config": cfg_paths, "normalisation": args.normalisation, "seeds": seeds,
                         "models": config["portfolio"], "costs": relative_costs(config)}  # fmt: skip
    md = summarise(results, args.routers, settings)
    write_text(args.out + ".md", md)
    write_json(args.out + ".json", results)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
