"""The verified cascade beside the SBS and the oracle: ``results/<experiment>/tables/cascade.*``.

Per dataset whose matrix carries visible-example verdicts (``visible::m``, scoring option
``scoring.visible``), :func:`codyn.routers.cascade.evaluate_seeds` chooses the cascade on the
training rows of each seeded split (the pipeline's own seed first, then the next four) and
evaluates it on that split's test rows. The table reports, per dataset and seed, the chosen
cascade, its test effectiveness and cost (relative, Eq. 2-compatible: every stage called is
paid) and dollars per prompt, the SBS's and the oracle's on the same rows, the paired
bootstrap interval of cascade - SBS, the share of prompts stopping at each stage and each
stage's accept precision (mean hidden score of the answers it accepted).

Overlap: MBPP's visible example is one of its hidden asserts, and HumanEval's docstring
examples often reappear in ``check``. A visible pass therefore already earns part of the
hidden score. When the matrix carries ``unseen::m`` (the score stage's hidden tests minus
the visible ones, codyn.scoring.unseen), the table also gives the cascade's, the SBS's and
the oracle's effectiveness on those unseen tests, on the same test rows minus the tasks
whose hidden tests are all visible (excluded, and counted: ``n_unseen`` of ``n_test``).

The figure (``cascade.png``) puts each seed's cascade, the SBS, the oracle and every
single system on the cost / effectiveness plane of the test rows.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from codyn.errors import InputError
from codyn.evaluation import figures
from codyn.io import atomic_open, read_csv, write_text
from codyn.matrix import VISIBLE_PREFIX, Matrix
from codyn.routers.cascade import evaluate_seeds, summarise_seeds

SEEDS = 5


def cascade_records(
    matrices: dict[str, Matrix], *, seed: int, test_size: float, seeds: int = SEEDS
) -> tuple[pd.DataFrame, dict]:
    """One row per (dataset, seed) and a summary per dataset; datasets without visible
    verdicts are skipped (listed under ``skipped``)."""
    rows, summaries, skipped = [], {}, []
    for name, matrix in matrices.items():
        if not any(c.startswith(VISIBLE_PREFIX) for c in matrix.frame.columns):
            skipped.append(name)
            continue
        records, _ = evaluate_seeds(
            matrix,
            seeds=[seed + i for i in range(seeds)],
            test_size=test_size,
            dataset=name,
        )
        summaries[name] = summarise_seeds(records)
        for r in records:
            test = r["test"]
            rows.append(
                {
                    "dataset": name,
                    "seed": r["seed"],
                    "pipeline_split": r["seed"] == seed,
                    "cascade": r["choice"]["chosen"]["name"],
                    "n_test": r["n_test"],
                    "effectiveness": test["effectiveness"],
                    "unseen_effectiveness": test["unseen_effectiveness"],
                    "n_unseen": test["n_unseen"],
                    "cost": test["cost"],
                    "usd_per_prompt": test["usd_per_prompt"],
                    "calls_per_prompt": test["calls_per_prompt"],
                    "stop_share": ";".join(f"{s:.3f}" for s in test["stop_share"]),
                    "accept_precision": ";".join(
                        "nan" if math.isnan(p) else f"{p:.3f}" for p in test["accept_precision"]
                    ),
                    "sbs": r["sbs"]["model"],
                    "sbs_effectiveness": r["sbs"]["effectiveness"],
                    "sbs_cost": r["sbs"]["cost"],
                    "sbs_usd_per_prompt": r["sbs"]["usd_per_prompt"],
                    "oracle_effectiveness": r["oracle"]["effectiveness"],
                    "sbs_unseen_effectiveness": r["sbs"]["unseen_effectiveness"],
                    "oracle_unseen_effectiveness": r["oracle"]["unseen_effectiveness"],
                    "cascade_minus_sbs": r["cascade_minus_sbs"]["mean"],
                    "ci95_lo": r["cascade_minus_sbs"]["ci95"][0],
                    "ci95_hi": r["cascade_minus_sbs"]["ci95"][1],
                    "cascade_minus_sbs_unseen": r["cascade_minus_sbs_unseen"]["mean"],
                    "unseen_ci95_lo": r["cascade_minus_sbs_unseen"]["ci95"][0],
                    "unseen_ci95_hi": r["cascade_minus_sbs_unseen"]["ci95"][1],
                    "cost_over_sbs": r["cost_over_sbs"],
                    "usd_over_sbs": r["usd_over_sbs"],
                }
            )
    return pd.DataFrame(rows), {"datasets": summaries, "skipped": skipped}


# What Table 2 and the cost-performance figure read from cascade.csv.
TABLE_COLUMNS = (
    "dataset",
    "seed",
    "pipeline_split",
    "cascade",
    "effectiveness",
    "cost",
    "usd_per_prompt",
)


def read_cascade_table(path) -> pd.DataFrame:
    """``cascade.csv`` for Table 2 and the figures, checked (file, row and field named)."""
    table = read_csv(path, TABLE_COLUMNS)
    for col in ("effectiveness", "cost"):
        value = pd.to_numeric(table[col], errors="coerce")
        bad = value.isna() | (value < 0)
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            raise InputError(
                f"{table[col].iloc[i]!r} is not a non-negative number",
                path=path,
                record=f"row {i + 2} ({table['dataset'].iloc[i]}, seed {table['seed'].iloc[i]})",
                field=col,
            )
        table[col] = value
    flags = table["pipeline_split"].astype(str).str.lower()
    if not flags.isin(["true", "false"]).all():
        raise InputError("pipeline_split must be true or false", path=path, field="pipeline_split")
    table["pipeline_split"] = flags == "true"
    return table


def _f(x, digits=3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _unseen_note(table: pd.DataFrame) -> list[str]:
    if "n_unseen" not in table or not table["n_unseen"].gt(0).any():
        return []
    parts = []
    for name, part in table.groupby("dataset", sort=False):
        excluded = (part["n_test"] - part["n_unseen"]).mean()
        parts.append(f"{name} {excluded:.1f} of {part['n_test'].mean():.0f}")
    return [
        "",
        "E unseen: effectiveness on the hidden tests minus those the prompt shows "
        "(codyn.scoring.unseen), so the overlap cannot flatter the cascade; test prompts "
        "whose hidden tests are all shown are excluded from it (per seed, mean: "
        + "; ".join(parts)
        + ").",
    ]


def _pt(ms: dict) -> str:
    if ms["mean"] is None or math.isnan(ms["mean"]):
        return "n/a"
    return f"{100 * ms['mean']:+.1f} pt (std {100 * ms['std']:.1f})"


def _signed(x) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{100 * x:+.1f}"


def _summary_lines(summary: dict) -> list[str]:
    lines = [
        "| dataset | seeds | cascade E | SBS E | cascade - SBS (mean over seeds) | cost / SBS "
        "| $ / SBS | oracle E | cascade E unseen | SBS E unseen | cascade - SBS unseen "
        "| oracle E unseen | chosen |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in summary["datasets"].items():
        chosen = pd.Series(s["chosen"]).value_counts()
        lines.append(
            f"| {name} | {s['seeds']} | {_f(s['cascade_effectiveness']['mean'])} | "
            f"{_f(s['sbs_effectiveness']['mean'])} | "
            f"{100 * s['cascade_minus_sbs']['mean']:+.1f} pt "
            f"(std {100 * s['cascade_minus_sbs']['std']:.1f}) | "
            f"{_f(s['cost_over_sbs']['mean'], 2)} | {_f(s['usd_over_sbs']['mean'], 2)} | "
            f"{_f(s['oracle_effectiveness']['mean'])} | {_f(s['cascade_unseen']['mean'])} | "
            f"{_f(s['sbs_unseen']['mean'])} | {_pt(s['cascade_minus_sbs_unseen'])} | "
            f"{_f(s['oracle_unseen']['mean'])} | "
            + ", ".join(f"{k} ({v})" for k, v in chosen.items())
            + " |"
        )
    return lines


def _seed_lines(table: pd.DataFrame) -> list[str]:
    lines = [
        "| dataset | seed | cascade | E | SBS E | cascade - SBS [95% CI] | cost / SBS | $ / prompt "
        "| E unseen (cascade / SBS, n) [95% CI of the difference] | stop share per stage "
        "| accept precision per stage |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in table.iterrows():
        mark = " (pipeline split)" if r["pipeline_split"] else ""
        lines.append(
            f"| {r['dataset']} | {r['seed']}{mark} | {r['cascade']} | {_f(r['effectiveness'])} | "
            f"{_f(r['sbs_effectiveness'])} | {100 * r['cascade_minus_sbs']:+.1f} pt "
            f"[{100 * r['ci95_lo']:+.1f}, {100 * r['ci95_hi']:+.1f}] | "
            f"{_f(r['cost_over_sbs'], 2)} | {_f(r['usd_per_prompt'], 4)} | "
            f"{_f(r['unseen_effectiveness'])} / {_f(r['sbs_unseen_effectiveness'])}, "
            f"{r['n_unseen']} [{_signed(r['unseen_ci95_lo'])}, {_signed(r['unseen_ci95_hi'])}] | "
            f"{r['stop_share']} | {r['accept_precision']} |"
        )
    return lines


def to_markdown(table: pd.DataFrame, summary: dict, label: str = "") -> str:
    lines = [
        "# Verified cascade (chosen on train, evaluated on test)",
        "",
        "Answers: real, replayed. "
        + (f"Run: {label}. " if label else "")
        + "Each seed's cascade is chosen on its training rows only (cheapest chain whose "
        "out-of-fold effectiveness reaches the SBS's); the SBS is the best train-mean "
        "system; every stage called is paid. cost = relative (Eq. 2-compatible), "
        "$ = dollars per prompt.",
        "",
    ]
    if table.empty:
        lines.append(
            "No dataset of this run has visible-example verdicts (`scoring.visible: true`"
            " and answers with code are needed)."
        )
        return "\n".join(lines) + "\n"
    lines += _summary_lines(summary) + _unseen_note(table)
    lines += ["", "## Per seed", ""] + _seed_lines(table)
    if summary["skipped"]:
        lines += ["", f"No visible-example verdicts (skipped): {', '.join(summary['skipped'])}."]
    return "\n".join(lines) + "\n"


def plot(table: pd.DataFrame, matrices: dict[str, Matrix], png, pdf=None, label="") -> None:
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(table["dataset"])) if not table.empty else []
    fig, axes = plt.subplots(
        1, max(1, len(names)), figsize=(5.2 * max(1, len(names)), 4.2), squeeze=False
    )
    for ax, name in zip(axes[0], names, strict=False):
        part = table[table["dataset"] == name]
        matrix = matrices[name]
        costs = matrix.cost_vector() / matrix.cost_vector().max()
        means = matrix.scores().mean(axis=0).to_numpy()
        ax.scatter(costs, means, color=figures.MODEL_COLOR, s=18, label="single system (all rows)")
        for c, m, model in zip(costs, means, matrix.models, strict=True):
            ax.annotate(model, (c, m), fontsize=6, xytext=(3, 2), textcoords="offset points")
        ax.scatter(
            part["cost"],
            part["effectiveness"],
            marker="*",
            s=90,
            color="#d62728",
            label="cascade (test, per seed)",
        )
        ax.scatter(
            part["sbs_cost"],
            part["sbs_effectiveness"],
            marker="s",
            s=30,
            facecolors="none",
            edgecolors="black",
            label="SBS (test, per seed)",
        )
        ax.scatter(
            np.zeros(len(part)),
            part["oracle_effectiveness"],
            marker="^",
            s=24,
            color=figures.ORACLE_COLOR,
            label="oracle effectiveness (test)",
        )
        ax.set_title(f"{name}: real answers, replayed", fontsize=9)
        ax.set_xlabel("relative cost (every stage called is paid)")
        ax.set_ylabel("effectiveness (hidden tests)")
        ax.grid(alpha=0.3)
    if names:
        axes[0][0].legend(fontsize=6, loc="lower right")
    fig.suptitle(f"Verified cascade vs SBS and oracle{' — ' + label if label else ''}", fontsize=9)
    figures.save(fig, png, pdf)


def write_cascade_report(
    matrix_paths: dict[str, str],
    csv_path,
    md_path,
    png_path,
    *,
    seed: int,
    test_size: float,
    label: str = "",
) -> pd.DataFrame:
    matrices = {name: Matrix.load(path) for name, path in matrix_paths.items()}
    table, summary = cascade_records(matrices, seed=seed, test_size=test_size)
    with atomic_open(csv_path, newline="") as fh:
        table.to_csv(fh, index=False, float_format="%.6f")
    write_text(md_path, to_markdown(table, summary, label))
    plot(table, matrices, png_path, label=label)
    return table
