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
    .venv/bin/python benchmarks/router_quality.py --config mine.yaml --dataset mine \
        --goal 0.5 --out results/benchmarks/mine           # your own imported matrix

Needs ../shared/datasets (the real matrices); exits with a message when it is absent.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from codyn.config import load_config, relative_costs
from codyn.evaluation import metrics, sweep
from codyn.evaluation.evaluate import SWEPT_TYPES
from codyn.importers import import_matrix
from codyn.io import write_json, write_text
from codyn.routers import make_router
from codyn.routing_data import load_routing_data
from codyn.splits import build_targets, make_split, save_targets

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
    # the single best model and its best alternative at <= 10% of its cost
    "linear-pair": {"type": "linear", "C": 1.0, "candidates": "sbs-pair"},
    "cls": {
        "type": "cls",
        "base_model": "minilm",
        "epochs": 2,
        "lr": 2.0e-5,
        "warmup_steps": 5,
        "batch_size": 16,
        "max_length": 256,
        "pooling": "mean",
        "objective": "bce",
        "head_init": "probe",
        "header": "auto",
    },
    "cls-pair": {"type": "cls", "candidates": "sbs-pair"},  # filled from "cls" below
    # the paper's recipe on MiniLM: MSE on per-model scaled ranking scores, random head,
    # the architecture's [CLS] pooler (not in the default list: ~3 min per LCB seed)
    "cls-paper": {
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
ROUTERS["cls-pair"] = {**ROUTERS["cls"], **ROUTERS["cls-pair"]}
# cls-paper and cls-pair are measured on request (--routers): ~1.5 min per LCB seed each
DEFAULT_ROUTERS = [r for r in ROUTERS if r not in ("cls-paper", "cls-pair")]


def run_seed(name, matrix, seed, routers, settings, normalisation, workdir) -> dict:
    split = make_split(
        matrix.task_ids, dataset=matrix.frame["dataset"].iloc[0], seed=seed, test_size=0.25
    )
    frame, meta = build_targets(matrix, split, settings=settings, normalisation=normalisation)
    path = Path(workdir) / f"{name}-{seed}.parquet"
    save_targets(frame, meta, path)
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
            rec["settings"][sname] = metrics.summarise_choice(
                test.scores, costs, choice, models=train.models
            )
        if params["type"] in SWEPT_TYPES:
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
                "points": {"cost": cost.round(6).tolist(), "effectiveness": eff.round(6).tolist()},
            }
        out["routers"][rname] = rec
        shown = {k: v for k, v in rec.get("curve", rec["settings"]["setting1"]).items()
                 if k not in ("points", "shares")}  # fmt: skip
        LOG.info("%s seed %d %s: %s", name, seed, rname, shown)
    return out


def summarise(results: dict, routers: list[str], settings: dict) -> str:
    lines = ["# Router quality on real matrices", ""]
    lines.append(
        "Real per-prompt results of real models (no simulated answers). Five seeded 75/25 "
        "splits; mean ± std over seeds. Cost = Eq. 2 (relative to the most expensive model). "
        "*parity cost* = lowest cost at which the router's swept curve reaches the single "
        "best model's test effectiveness, as a fraction of that model's cost (- = never). "
        "Command: `.venv/bin/python benchmarks/router_quality.py`. Figure: "
        "`router_quality.png` (mean over seeds of the best test E reachable at each cost, "
        "minus the SBS's)."
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
        lines += ["", verdict(name, seeds, routers)]
    return "\n".join(lines) + "\n"


def verdict(name: str, seeds: list[dict], routers: list[str]) -> str:
    """The goal check: the router with the lowest mean parity cost, its per-seed values."""
    goal = GOALS.get(name)
    rows = []
    for r in routers:
        if "curve" not in seeds[0]["routers"][r]:
            continue
        parity = [s["routers"][r]["curve"]["parity_cost"] for s in seeds]
        if any(p is None for p in parity):
            continue
        rows.append((float(np.mean(parity)), r, parity))
    if not rows:
        return "Goal: no swept router reaches the SBS on every seed."
    mean, best, parity = min(rows)
    per_seed = ", ".join(f"{p:.2f}" for p in parity)
    met = goal is not None and mean <= goal
    return (
        f"Goal check: best router **{best}**, parity on {len(parity)}/{len(parity)} seeds at "
        f"{per_seed} of the SBS cost (mean {mean:.3f}, worst {max(parity):.3f}); goal mean "
        f"<= {goal:.2f}: **{'met' if met else 'not met'}**."
    )


def plot(results: dict, routers: list[str], path: str) -> None:
    """Per matrix: mean over seeds of (best test E at cost <= c) - SBS test E, against c."""
    from codyn.evaluation.figures import plt, save

    names = list(results)
    fig, axes = plt.subplots(1, len(names), figsize=(5.2 * len(names), 4.2), squeeze=False)
    grid = np.linspace(0.0, 1.0, 401)
    for ax, name in zip(axes[0], names, strict=True):
        seeds = results[name]["seeds"]
        for r in routers:
            if "curve" not in seeds[0]["routers"][r]:
                continue
            gaps = []
            for sd in seeds:
                pts = sd["routers"][r]["curve"]["points"]
                cost = np.asarray(pts["cost"]) / sd["reference"]["c_strong"]
                eff = np.asarray(pts["effectiveness"])
                best = np.array([eff[cost <= c + 1e-12].max(initial=-np.inf) for c in grid])
                best[~np.isfinite(best)] = np.nan  # no operating point that cheap
                gaps.append(best - sd["reference"]["e_strong"])
            with warnings.catch_warnings():  # costs below every seed's cheapest point: NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                ax.plot(grid, np.nanmean(np.vstack(gaps), axis=0), label=r, lw=1.4)
        ax.axhline(0.0, color="k", lw=0.8, ls="--")
        if name in GOALS:
            ax.axvline(GOALS[name], color="grey", lw=0.8, ls=":", label="cost goal")
        ax.set_title(f"{name} (real answers, {len(seeds)} seeds)")
        ax.set_xlabel("cost / SBS cost (Eq. 2)")
        ax.set_ylabel("best test E at that cost - SBS test E")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    save(fig, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--matrices", nargs="+", default=list(MATRICES), choices=list(MATRICES))
    ap.add_argument("--routers", nargs="+", default=DEFAULT_ROUTERS, choices=list(ROUTERS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument(
        "--normalisation", default="per_model", choices=["per_model", "per_dataset", "none"]
    )
    ap.add_argument("--out", default="results/benchmarks/router_quality")
    own = ap.add_argument_group(
        "your own matrix",
        "any config whose dataset uses `adapter: import` (the generic importer, README "
        "'Bring your own data'); replaces --matrices",
    )
    own.add_argument("--config", nargs="+", metavar="YAML", help="config files, in order")
    own.add_argument("--dataset", help="the imported dataset of those configs")
    own.add_argument("--goal", type=float, help="parity-cost goal to check (fraction of SBS cost)")
    args = ap.parse_args(argv)
    if args.config or args.dataset:
        if not (args.config and args.dataset):
            ap.error("--config and --dataset go together")
        # paths on the command line are the caller's; the run itself is from the repo root
        # (where the pipeline resolves the configs' own relative paths)
        MATRICES[args.dataset] = ([str(Path(c).resolve()) for c in args.config], args.dataset)
        if args.goal is not None:
            GOALS[args.dataset] = args.goal
        args.matrices = [args.dataset]
    args.out = str(Path(args.out).resolve())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    os.chdir(REPO)
    shared = (REPO.parent / "shared" / "datasets").is_dir() or os.environ.get(
        "CODYN_SHARED_DATASETS"
    )
    if not args.config and not shared:
        print(
            "router_quality: ../shared/datasets not found; this benchmark needs the real matrices"
        )
        return 2
    results = {}
    for name in args.matrices:
        cfg_paths, dataset = MATRICES[name]
        config = load_config("config.yaml", *cfg_paths)
        if (config["datasets"].get(dataset) or {}).get("adapter") != "import":
            raise SystemExit(
                f"router_quality: dataset {dataset!r} of {cfg_paths} is not an imported matrix "
                "(needs `adapter: import`)"
            )
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
    plot(results, args.routers, args.out + ".png")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
