"""Router quality on REAL per-prompt results, as a deployer gets it.

For each real matrix (LiveCodeBench lcb-ladder5 with and without the problems' metadata
header, lcb-all, RouterBench MBPP, or any imported matrix by ``--config`` + ``--dataset``)
and each seed, through the pipeline's own stages: import (codyn.importers) -> seeded
75/25 split and targets (codyn.splits) -> routers (codyn.routers) -> the operating points
of codyn.evaluation.calibration. Writes ``<out>.md`` (tables), ``<out>.json`` (every
number, per seed) and ``<out>.png`` (test curves).

Nothing is chosen on test rows:

1. Recipe (hyper-parameters: C, candidates, header use, k ...): each router has a small
   grid (``ROUTERS``); every recipe is cross-fitted on the train split (K folds, a fresh
   router per fold predicting the held-out fold) and the recipe with the highest mean
   out-of-fold (OOF) effectiveness at the three cost budgets (25/50/75% of the SBS's OOF
   cost, each at the weight chosen for it on the same OOF rows) wins; ties go to the
   earlier recipe in the grid (the first is the previous default). The test split is the
   outer loop of this nested selection.
2. Operating points: with the chosen recipe's OOF predictions, the cost weight for each
   target (parity with the SBS, budgets 25/50/75% of its cost) is chosen as training does
   (codyn.evaluation.calibration); the router is refitted on all of train and each weight
   is applied once to the test rows.
3. Report: per target, test E minus the SBS's test E with a paired bootstrap 95% interval
   over that seed's test rows (seeded; ``--resamples``), and test cost / SBS test cost.

The test curve is also swept, as a *description* of the whole curve (APGR, AIQ, CPT), and
the cheapest swept point whose test E reaches the SBS's is shown as the "oracle operating
point": it is selected on test, an upper bound a deployer cannot pick.

Settings 2 and 3 (Table 2 style) are read off the setting-1 router at w = lambda2
(RS_k = RS_1 + lambda2 * CS^-1).

    .venv/bin/python benchmarks/router_quality.py            # default matrices, 5 seeds
    .venv/bin/python benchmarks/router_quality.py --routers knn linear --seeds 0 1
    .venv/bin/python benchmarks/router_quality.py --matrices lcb-all --seeds 0 1
    snakemake --cores 2 results/benchmarks/router_quality.md  # the same from Snakemake
    .venv/bin/python benchmarks/router_quality.py --config mine.yaml --dataset mine \
        --goal 0.5 --out results/benchmarks/mine           # your own imported matrix

Needs ../shared/datasets (the real matrices); exits with a message when it is absent.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from codyn import policy
from codyn.config import load_config, relative_costs
from codyn.evaluation import calibration, metrics, sweep
from codyn.evaluation.evaluate import SWEPT_TYPES
from codyn.importers import import_matrix
from codyn.io import write_json, write_text
from codyn.matrix import VISIBLE_PREFIX, Matrix
from codyn.paths import experiment_from_configfiles, layout
from codyn.routers import make_router
from codyn.routers.cascade import Arrays, evaluate_split
from codyn.routers.header import HeaderFeatures
from codyn.routing_data import load_routing_data
from codyn.splits import build_targets, make_split, save_targets

LOG = logging.getLogger("router_quality")
REPO = Path(__file__).resolve().parent.parent

MATRICES = {
    "lcb-ladder5": (["config/lcb-ladder5.yaml"], "lcb"),
    "lcb-ladder5-meta": (["config/lcb-ladder5.yaml", "config/lcb-ladder5-meta.yaml"], "lcb"),
    "routerbench-mbpp": (["config/routerbench-mbpp.yaml"], "routerbench-mbpp"),
    "lcb-all": (["config/lcb-all.yaml"], "lcb"),
}
# Matrices the pipeline builds from REPLAYED published answers (MapCoder's GPT-3.5 /
# GPT-4-Turbo systems, scored by our own sandbox, with visible-example verdicts for the
# verified cascade): config, datasets (several = their union). Built by Snakemake on first use.
PIPELINE_MATRICES = {
    "replay-humaneval": (["config/replay-mirror.yaml"], ["humaneval"]),
    "replay-mbpp": (["config/replay-mirror.yaml"], ["mbpp"]),
    "replay-apps": (["config/replay-mirror.yaml"], ["apps"]),
    "replay-union": (["config/replay-mirror.yaml"], ["humaneval", "mbpp", "apps"]),
}
DEFAULT_MATRICES = ["lcb-ladder5", "lcb-ladder5-meta", "routerbench-mbpp"]
# The parity-cost goals of the earlier issue, now checked on the deployable parity point.
GOALS = {"lcb-ladder5": 0.80, "lcb-ladder5-meta": 0.80, "routerbench-mbpp": 0.30}
BUDGETS = (0.25, 0.5, 0.75)

_CLS = {
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
}
# name -> base params, grid of recipes searched by cross-validation inside train (the first
# value of each list is the previous default), and the folds for that router (None =
# --folds). "header" grids only where the training prompts carry a metadata header.
ROUTERS = {
    "linear": {
        "base": {"type": "linear"},
        "grid": {
            "C": [1.0, 0.3, 3.0],
            "candidates": ["all", "sbs-pair"],
            "header": ["auto", False],
        },
    },
    # the fast tier (codyn.routers.static_embeddings): the same linear router on features
    # that cost microseconds -- MiniLM's distilled static token embeddings, and hashed
    # character/word n-grams. Grid: C and candidates (header stays auto, which `linear`
    # chooses on every replay seed), half of linear's, to keep the run short.
    "linear-static": {
        "base": {"type": "linear", "encoder": "static-minilm"},
        "grid": {"C": [1.0, 0.3, 3.0], "candidates": ["all", "sbs-pair"]},
    },
    "linear-hashed": {
        "base": {"type": "linear", "encoder": "hashed"},
        "grid": {"C": [1.0, 0.3, 3.0], "candidates": ["all", "sbs-pair"]},
    },
    "knn": {"base": {"type": "knn", "weights": "distance"}, "grid": {"k": [15, 5, 45]}},
    # sklearn's MLP is the slowest fit here (~12 s per fold on MBPP's 11 outputs): K = 3
    "mlp": {"base": {"type": "mlp", "hidden": 128}, "grid": {}, "folds": 3},
    "rorf": {"base": {"type": "rorf", "n_estimators": 200, "threshold": 0.5}, "grid": {}},
    # cls trains for ~90 s per LiveCodeBench seed: one recipe (LP-FT, benchmarks/NOTES.md
    # 5c), candidates by CV, and K reduced to 2 (3 fits per recipe instead of 6)
    "cls": {"base": _CLS, "grid": {"candidates": ["all", "sbs-pair"]}, "folds": 2},
    "random": {"base": {"type": "random"}, "grid": {}},
    "sbs": {"base": {"type": "sbs"}, "grid": {}},
    "cheapest": {"base": {"type": "cheapest"}, "grid": {}},
    "oracle": {"base": {"type": "oracle"}, "grid": {}},
}
DEFAULT_ROUTERS = [r for r in ROUTERS if r != "cls"]


def recipes(name: str, has_header: bool) -> list[dict]:
    """Every recipe of ``name``'s grid (first = the previous default)."""
    spec = ROUTERS[name]
    grid = {k: v for k, v in spec["grid"].items() if k != "header" or has_header}
    keys = list(grid)
    return [
        {**spec["base"], **dict(zip(keys, combo, strict=True))}
        for combo in itertools.product(*(grid[k] for k in keys))
    ]


def _budget_score(oof: calibration.OutOfFold) -> float:
    """Recipe selection rule: mean OOF effectiveness at the three budget targets."""
    return float(
        np.mean(
            [
                calibration.choose_weight(
                    oof.pred, oof.scores, oof.costs, calibration.Target("budget", b), oof.sbs
                )["effectiveness"]
                for b in BUDGETS
            ]
        )
    )


def select_recipe(
    name, train, seed, folds, has_header, pair
) -> tuple[dict, calibration.OutOfFold, list]:
    """The recipe of ``name`` chosen by cross-fitting inside ``train`` (module docstring)."""
    tried = []
    best = None
    for params in recipes(name, has_header):
        if params["type"] == "rorf":
            params = {**params, "pair": pair}
        oof = calibration.cross_fit(
            lambda p=params: make_router(p["type"], p, seed=seed), train, folds, seed
        )
        score = _budget_score(oof)
        shown = {k: params[k] for k in ROUTERS[name]["grid"] if k in params}
        tried.append({"recipe": shown, "oof_budget_e": score})
        if best is None or score > best[0] + 1e-12:
            best = (score, params, oof)
    return best[1], best[2], tried


def pipeline_matrix(name: str, cfg_paths: list[str], datasets: list[str]) -> Matrix:
    """The pipeline's matrix of ``datasets`` (their union when several), built with Snakemake
    from the replayed answers when it is not there yet."""
    config = load_config("config.yaml", *cfg_paths)
    where = layout(experiment_from_configfiles(config, cfg_paths))
    paths = [Path(where.MATRIX.format(dataset=d)) for d in datasets]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        LOG.info("%s: building %s with Snakemake", name, missing)
        snakemake = str(Path(sys.executable).with_name("snakemake"))
        done = subprocess.run(
            [snakemake, "--cores", str(os.cpu_count() or 2), *missing, "--configfile", *cfg_paths],
            cwd=REPO,
        )
        if done.returncode != 0:
            raise SystemExit(f"router_quality: building {missing} failed")
    parts = [Matrix.load(p) for p in paths]
    if len(parts) == 1:
        return parts[0]
    frame = pd.concat([p.frame for p in parts], ignore_index=True)
    # One split over the union (the split is derived from the dataset name).
    frame["dataset"] = name
    meta = {**parts[0].meta, "dataset": name, "union_of": datasets}
    return Matrix(frame, list(parts[0].models), dict(parts[0].costs), False, name, meta)


def cascade_seed(matrix: Matrix, split: dict, seed: int, resamples: int) -> dict | None:
    """The verified cascade on the same split: chosen on train rows only, evaluated on test
    (codyn.routers.cascade.evaluate_split); None without visible-example verdicts."""
    if not any(c.startswith(VISIBLE_PREFIX) for c in matrix.frame.columns):
        return None
    arrays = Arrays.from_matrix(matrix)
    pos = {t: i for i, t in enumerate(arrays.task_ids)}
    record, _ = evaluate_split(
        arrays, [pos[t] for t in split["train"]], [pos[t] for t in split["test"]], seed=seed
    )
    return {
        "chosen": record["choice"]["chosen"]["name"],
        "test_effectiveness": record["test"]["effectiveness"],
        "sbs_effectiveness": record["sbs"]["effectiveness"],
        "test_effectiveness_minus_sbs": {
            "mean": record["cascade_minus_sbs"]["mean"],
            "lo": record["cascade_minus_sbs"]["ci95"][0],
            "hi": record["cascade_minus_sbs"]["ci95"][1],
        },
        "test_cost_over_sbs": record["cost_over_sbs"],
        "test_usd_over_sbs": record["usd_over_sbs"],
        "stop_share": record["test"]["stop_share"],
    }


def run_seed(
    name, matrix, seed, routers, settings, normalisation, workdir, folds, resamples, tolerance
) -> dict:
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
    has_header = HeaderFeatures().fit(train.prompts).n_features > 0
    ref = {
        "sbs": train.models[sbs],
        "e_strong": float(test.scores[:, sbs].mean()),
        "c_strong": metrics.eq2_cost(share_sbs, costs),
        "e_weak": float(test.scores[:, weak].mean()),
        "c_weak": metrics.eq2_cost(np.eye(len(costs))[weak], costs),
        "c_lo": float(costs.min() / costs.max()),
        "n_train": len(train),
        "n_test": len(test),
        "header": has_header,
    }
    targets = [calibration.Target("parity", tolerance)] + [
        calibration.Target("budget", b) for b in BUDGETS
    ]
    out = {"seed": seed, "reference": ref, "routers": {}}
    cascade = cascade_seed(matrix, split, seed, resamples)
    if cascade is not None:
        out["cascade"] = cascade
    for rname in routers:
        started = time.perf_counter()
        spec = ROUTERS[rname]
        rec = {"settings": {}}
        if spec["base"]["type"] in SWEPT_TYPES:
            k = spec.get("folds") or folds
            params, oof, tried = select_recipe(
                rname, train, seed, k, has_header, [train.models[weak], train.models[sbs]]
            )
            rec["selection"] = {
                "folds": k,
                "rule": "max mean OOF E at budgets 25/50/75% of SBS cost",
                "tried": tried,
                "chosen": {key: params[key] for key in spec["grid"] if key in params},
            }
        else:
            params = dict(spec["base"])
        router = make_router(params["type"], params, seed=seed).fit(train)
        if params["type"] == "oracle":
            pred = router.predict_from_targets(test.scores)
        else:
            pred = router.predict_scores(test.prompts)
        for sname, lam in settings.items():
            choice = policy.choose(pred, costs, float(lam))
            rec["settings"][sname] = metrics.summarise_choice(
                test.scores, costs, choice, models=train.models
            )
        if params["type"] in SWEPT_TYPES:
            cal = calibration.choose_weights(oof, targets)
            rec["calibration"] = {k: v for k, v in cal.items() if k != "targets"}
            rec["deployable"] = calibration.apply_to_test(
                cal, pred, test.scores, costs, sbs, models=train.models,
                n_resamples=resamples, seed=seed,
            )  # fmt: skip
            for tname, t in rec["deployable"].items():
                t["oof_target"] = cal["targets"][tname]
            rec["curve"] = test_curve(pred, test.scores, costs, sbs, ref, resamples, seed)
        rec["fit_s"] = round(time.perf_counter() - started, 2)
        out["routers"][rname] = rec
        if "deployable" in rec:
            d = rec["deployable"]
            LOG.info(
                "%s seed %d %s (%s, %.0fs): parity dE %+.3f C/SBS %.2f; budgets dE %s",
                name, seed, rname, rec["selection"]["chosen"], rec["fit_s"],
                d["parity"]["test_effectiveness_minus_sbs"]["mean"], d["parity"]["test_cost_over_sbs"],
                " ".join(f"{d[f'budget-{b:g}']['test_effectiveness_minus_sbs']['mean']:+.3f}" for b in BUDGETS),
            )  # fmt: skip
    return out


def test_curve(pred, scores, costs, sbs, ref, resamples, seed) -> dict:
    """Curve descriptions on test (APGR, AIQ, CPT) and the test-selected parity point."""
    pts = sweep.sweep(pred, scores, costs, n_points=201)
    cost = np.array([p.cost for p in pts])
    eff = np.array([p.effectiveness for p in pts])
    curve = metrics.curve_metrics(
        cost, eff, ref["e_weak"], ref["e_strong"], ref["c_weak"], ref["c_strong"],
        ref["c_lo"], levels=(0.5, 0.8, 1.0),
    )  # fmt: skip
    reach = np.flatnonzero(eff >= ref["e_strong"] - 1e-12)
    oracle_point = None
    if len(reach):
        i = reach[np.argmin(cost[reach])]
        idx = policy.choose(pred, costs, pts[i].cost_weight)
        diff = scores[np.arange(len(idx)), idx] - scores[:, sbs]
        oracle_point = {
            "cost_over_sbs": float(cost[i]) / ref["c_strong"],
            "effectiveness_minus_sbs": metrics.paired_bootstrap(diff, resamples, seed),
        }
    return {
        "apgr": curve["apgr"],
        "aiq": curve["aiq"],
        "cpt50": curve["cpt"]["0.5"],
        "cpt80": curve["cpt"]["0.8"],
        "cpt100": curve["cpt"]["1"],
        "oracle_operating_point": oracle_point,
        "best_effectiveness": float(eff.max()),
        "points": {"cost": cost.round(6).tolist(), "effectiveness": eff.round(6).tolist()},
    }


def _ci(d: dict) -> str:
    return f"{d['mean']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]"


def _ms(vals) -> str:
    vals = [v for v in vals if v is not None and np.isfinite(v)]
    if not vals:
        return "-"
    return f"{np.mean(vals):.3f} ± {np.std(vals):.3f}"


def _mean_ci(diffs: list[dict]) -> str:
    """Mean over seeds of E - SBS, with the per-seed 95% interval averaged over seeds."""
    return (
        f"{np.mean([d['mean'] for d in diffs]):+.3f} "
        f"[{np.mean([d['lo'] for d in diffs]):+.3f}, {np.mean([d['hi'] for d in diffs]):+.3f}]"
    )


def deployable_rows(seeds: list[dict], routers: list[str]) -> list[str]:
    """Per router: mean over seeds of the deployable numbers (E - SBS with the per-seed
    interval averaged over seeds), and how many seeds' intervals lie wholly above / below 0."""
    head = ["| router | parity: E - SBS | parity: C / SBS C | parity CI >0 / <0 | parity met OOF |"
            + "".join(f" {b:.0%} budget: E - SBS | {b:.0%}: C / SBS C |" for b in BUDGETS)]  # fmt: skip
    head.append("|" + "---|" * (5 + 2 * len(BUDGETS)))
    for r in routers:
        recs = [s["routers"][r] for s in seeds]
        if "deployable" not in recs[0]:
            continue
        par = [x["deployable"]["parity"] for x in recs]
        above = sum(p["test_effectiveness_minus_sbs"]["lo"] > 0 for p in par)
        below = sum(p["test_effectiveness_minus_sbs"]["hi"] < 0 for p in par)
        cells = [
            _mean_ci([p["test_effectiveness_minus_sbs"] for p in par]),
            _ms([p["test_cost_over_sbs"] for p in par]),
            f"{above} / {below} of {len(par)}",
            f"{sum(p['oof']['reached'] for p in par)} of {len(par)}",
        ]
        for b in BUDGETS:
            t = [x["deployable"][f"budget-{b:g}"] for x in recs]
            cells += [_mean_ci([q["test_effectiveness_minus_sbs"] for q in t]),
                      _ms([q["test_cost_over_sbs"] for q in t])]  # fmt: skip
        head.append(f"| {r} | " + " | ".join(cells) + " |")
    return head


def summarise(results: dict, routers: list[str], settings: dict, args_line: str) -> str:
    lines = ["# Router quality on real matrices: what a deployer gets", ""]
    lines.append(
        "Real per-prompt results of real models (no simulated answers); seeded 75/25 splits. "
        "Every recipe and cost weight was chosen on the TRAIN split by cross-fitting "
        "(out-of-fold predictions); the test split is used once, to report. E - SBS = test "
        "effectiveness minus the single best model's (SBS chosen on train) on the same test "
        "rows; C / SBS C = Eq. 2 test cost over the SBS's. Per seed: paired bootstrap 95% "
        "interval of E - SBS over that seed's test rows. Parity = the cheapest weight whose "
        "OOF effectiveness reaches the SBS's OOF effectiveness; B budget = the smallest weight "
        f"whose OOF cost is <= B x the SBS's. Command: `{args_line}`."
    )
    for name, res in results.items():
        seeds = res["seeds"]
        ref0 = seeds[0]["reference"]
        lines += ["", f"## {name}", ""]
        lines.append(
            f"SBS (train): {ref0['sbs']}; SBS test E {_ms([s['reference']['e_strong'] for s in seeds])}; "
            f"test n = {ref0['n_test']}; seeds {[s['seed'] for s in seeds]}; prompt header: "
            f"{'yes' if ref0['header'] else 'no'}."
        )
        lines += ["", "### Deployable operating points", ""]
        lines.append(
            "E - SBS: mean over seeds [the per-seed paired-bootstrap 95% interval, averaged "
            "over seeds]; C / SBS C: mean ± sd over seeds; CI >0 / <0: seeds whose interval "
            "lies wholly above / below 0; parity met OOF: seeds on which some weight reached the "
            "SBS's out-of-fold effectiveness (else the most effective OOF point is used, which "
            "can cost more than the SBS when the SBS is not the dearest model)."
        )
        lines.append("")
        lines += deployable_rows(seeds, routers)
        if all("cascade" in s for s in seeds):
            cas = [s["cascade"] for s in seeds]
            lines += [
                "",
                "Verified cascade (chosen on train, every stage paid; beyond the paper): "
                f"E - SBS {_mean_ci([c['test_effectiveness_minus_sbs'] for c in cas])}, "
                f"C / SBS C {_ms([c['test_cost_over_sbs'] for c in cas])}, "
                f"$ / SBS $ {_ms([c['test_usd_over_sbs'] for c in cas])}; chosen: "
                + ", ".join(c["chosen"] for c in cas)
                + ".",
            ]
        lines += [
            "",
            "### Per seed (E - SBS with 95% interval; C / SBS C; recipe chosen inside train)",
            "",
        ]
        lines.append("| router | seed | recipe (CV on train) | parity E - SBS | parity C/SBS |"
                     + "".join(f" {b:.0%}: E - SBS | {b:.0%}: C/SBS |" for b in BUDGETS)
                     + " oracle operating point (test-selected, upper bound): C/SBS |")  # fmt: skip
        lines.append("|" + "---|" * (6 + 2 * len(BUDGETS)))
        for r in routers:
            for s in seeds:
                x = s["routers"][r]
                if "deployable" not in x:
                    continue
                d = x["deployable"]
                chosen = ", ".join(f"{k}={v}" for k, v in x["selection"]["chosen"].items()) or "-"
                cells = [r, str(s["seed"]), chosen, _ci(d["parity"]["test_effectiveness_minus_sbs"]),
                         f"{d['parity']['test_cost_over_sbs']:.2f}"]  # fmt: skip
                for b in BUDGETS:
                    t = d[f"budget-{b:g}"]
                    cells += [
                        _ci(t["test_effectiveness_minus_sbs"]),
                        f"{t['test_cost_over_sbs']:.2f}",
                    ]
                op = x["curve"]["oracle_operating_point"]
                cells.append("-" if op is None else f"{op['cost_over_sbs']:.2f}")
                lines.append("| " + " | ".join(cells) + " |")
        lines += ["", "### Test-curve descriptions and Table-2 settings (mean ± sd over seeds)", ""]
        lines.append(
            "APGR, AIQ, CPT describe the whole swept TEST curve; no operating point is chosen. "
            "*oracle op. point* = the cheapest swept point whose test E reaches the SBS's, over "
            "the SBS cost: selected on test, an upper bound on what a deployer gets (- = never)."
        )
        lines += ["", "| router | " + " | ".join(f"{s} E | {s} C" for s in settings)
                  + " | APGR | AIQ | CPT50 | CPT80 | oracle op. point |"]  # fmt: skip
        lines.append("|" + "---|" * (1 + 2 * len(settings) + 5))
        for r in routers:
            recs = [s["routers"][r] for s in seeds]
            cells = []
            for sname in settings:
                cells.append(_ms([x["settings"][sname]["effectiveness"] for x in recs]))
                cells.append(_ms([x["settings"][sname]["cost"] for x in recs]))
            if "curve" in recs[0]:
                c = [x["curve"] for x in recs]
                op = [x["oracle_operating_point"] for x in c]
                cells += [_ms([x["apgr"] for x in c]), _ms([x["aiq"] for x in c]),
                          _ms([x["cpt50"] for x in c]), _ms([x["cpt80"] for x in c]),
                          _ms([None if o is None else o["cost_over_sbs"] for o in op])]  # fmt: skip
            else:
                cells += ["", "", "", "", ""]
            lines.append(f"| {r} | " + " | ".join(cells) + " |")
        lines += ["", verdict(name, seeds, routers)]
    return "\n".join(lines) + "\n"


def verdict(name: str, seeds: list[dict], routers: list[str]) -> str:
    """Goal check on the DEPLOYABLE parity point: test E not below the SBS's beyond its
    interval on every seed, and mean test cost within the goal."""
    goal = GOALS.get(name)
    rows = []
    for r in routers:
        if "deployable" not in seeds[0]["routers"][r]:
            continue
        par = [s["routers"][r]["deployable"]["parity"] for s in seeds]
        held = all(p["test_effectiveness_minus_sbs"]["hi"] >= 0 for p in par)
        rows.append((float(np.mean([p["test_cost_over_sbs"] for p in par])), r, par, held))
    if not rows:
        return "Goal check: no swept router."
    ok = [x for x in rows if x[3]]
    if not ok:
        goal_text = f"goal mean <= {goal:.2f}: **not met**" if goal else "no goal set"
        return (
            "Goal check (deployable parity point): no router's test E stays within its interval "
            f"of the SBS's on every seed; {goal_text}."
        )
    mean, best, par, _ = min(ok)
    per_seed = ", ".join(f"{p['test_cost_over_sbs']:.2f}" for p in par)
    met = goal is not None and mean <= goal
    goal_text = (
        f"goal mean <= {goal:.2f}: **{'met' if met else 'not met'}**" if goal else "no goal set"
    )
    return (
        f"Goal check (deployable parity point): cheapest router whose test E is not below the "
        f"SBS's beyond its interval on any seed: **{best}**, test cost {per_seed} of the SBS's "
        f"(mean {mean:.3f}); {goal_text}."
    )


def plot(results: dict, routers: list[str], path: str) -> None:
    """Per matrix: mean over seeds of (best test E at cost <= c) - SBS test E (the test curve,
    a description), with each router's deployable parity point marked."""
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
                (line,) = ax.plot(grid, np.nanmean(np.vstack(gaps), axis=0), label=r, lw=1.2)
            par = [sd["routers"][r]["deployable"]["parity"] for sd in seeds]
            ax.plot(
                np.mean([p["test_cost_over_sbs"] for p in par]),
                np.mean([p["test_effectiveness_minus_sbs"]["mean"] for p in par]),
                "o", color=line.get_color(), ms=6,
            )  # fmt: skip
        ax.axhline(0.0, color="k", lw=0.8, ls="--")
        if name in GOALS:
            ax.axvline(GOALS[name], color="grey", lw=0.8, ls=":", label="cost goal")
        ax.set_title(f"{name} (real answers, {len(seeds)} seeds)")
        ax.set_xlabel("cost / SBS cost (Eq. 2)")
        ax.set_ylabel("test E - SBS test E (curve: test-selected)")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(loc="lower right", fontsize=8, title="dots: deployable parity")
    fig.tight_layout()
    save(fig, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--matrices",
        nargs="+",
        default=DEFAULT_MATRICES,
        choices=[*MATRICES, *PIPELINE_MATRICES],
    )
    ap.add_argument("--routers", nargs="+", default=DEFAULT_ROUTERS, choices=list(ROUTERS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument(
        "--normalisation", default="per_model", choices=["per_model", "per_dataset", "none"]
    )
    ap.add_argument("--out", default="results/benchmarks/router_quality")
    ap.add_argument("--folds", type=int, default=5, help="K of the cross-fitting inside train")
    ap.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    ap.add_argument("--parity-tolerance", type=float, default=0.0)
    ap.add_argument(
        "--from-json",
        metavar="JSON",
        help="re-write the tables and figure of an earlier run's .json (no training)",
    )
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
    if args.from_json:
        import json

        results = json.loads(Path(args.from_json).read_text(encoding="utf-8"))
        routers = [
            r for r in args.routers if r in next(iter(results.values()))["seeds"][0]["routers"]
        ]
        settings = next(iter(next(iter(results.values()))["seeds"][0]["routers"].values()))[
            "settings"
        ]
        md = summarise(
            results,
            routers,
            settings,
            f"python benchmarks/router_quality.py (tables from {args.from_json})",
        )
        write_text(args.out + ".md", md)
        plot(results, routers, args.out + ".png")
        print(md)
        return 0
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
    started = time.perf_counter()
    for name in args.matrices:
        if name in PIPELINE_MATRICES:
            cfg_paths, datasets = PIPELINE_MATRICES[name]
            config = load_config("config.yaml", *cfg_paths)
            matrix = pipeline_matrix(name, cfg_paths, datasets)
            settings = config["cost_settings"]
            with tempfile.TemporaryDirectory() as work:
                seeds = [
                    run_seed(name, matrix, seed, args.routers, settings, args.normalisation,
                             work, args.folds, args.resamples, args.parity_tolerance)
                    for seed in args.seeds
                ]  # fmt: skip
            results[name] = {"config": cfg_paths, "normalisation": args.normalisation,
                             "seeds": seeds, "models": list(matrix.models),
                             "costs": dict(matrix.costs)}  # fmt: skip
            continue
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
                run_seed(name, matrix, seed, args.routers, settings, args.normalisation, work,
                         args.folds, args.resamples, args.parity_tolerance)
                for seed in args.seeds
            ]  # fmt: skip
        results[name] = {"config": cfg_paths, "normalisation": args.normalisation, "seeds": seeds,
                         "models": config["portfolio"], "costs": relative_costs(config)}  # fmt: skip
    shown = " ".join(
        a if " " not in a else repr(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    md = summarise(
        results, args.routers, settings, f"python benchmarks/router_quality.py {shown}".strip()
    )
    md += f"\nRun time: {time.perf_counter() - started:.0f} s.\n"
    write_text(args.out + ".md", md)
    write_json(args.out + ".json", results)
    plot(results, args.routers, args.out + ".png")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
