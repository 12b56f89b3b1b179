"""The preliminary study (paper section 4, Table 1): how much room is there for routing?

Per dataset, with s_ij the score of model j on instance i:

- SBS: the single best solver, the model with the largest mean score (ties: the
  cheaper model, then portfolio order).
- Oracle mean: mean over instances of max_j s_ij.
- OG: Oracle mean - SBS mean (Eq. 1).
- WCR: share of instances whose per-instance winner differs from the SBS, where the
  winner is the first argmax in portfolio order (what an argmax-based script reports).
- Tie-aware WCR: share of instances where the SBS is not among the best
  (s_i,SBS < max_j s_ij). With 0/1 scores most rows tie (all fail, or several pass),
  and the argmax-based WCR counts a tie the SBS shares as a "change"; the tie-aware
  rate does not.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from codyn.io import atomic_open
from codyn.matrix import Matrix

TIE_ATOL = 1e-9
ROWS = [
    "SBS",
    "SBS mean",
    "Oracle mean",
    "OG (abs)",
    "WCR",
    "WCR (tie-aware)",
    "n",
    "simulated",
    "answers",
]


def single_best(scores: np.ndarray, costs: np.ndarray) -> int:
    """Index of the model with the largest mean; among equal means the cheapest, then the first."""
    means = scores.mean(axis=0)
    best = np.flatnonzero(np.isclose(means, means.max(), rtol=0.0, atol=TIE_ATOL))
    return int(best[np.argsort(costs[best], kind="stable")[0]])


def oracle_gap(scores, models: list[str], costs) -> dict:
    """Table 1 metrics of one (n x m) score array."""
    s = np.asarray(scores, dtype=float)
    if s.ndim != 2 or s.shape[0] == 0 or s.shape[1] != len(models):
        raise ValueError(f"scores must be (n > 0) x {len(models)}, got {s.shape}")
    c = np.asarray(costs, dtype=float)
    sbs = single_best(s, c)
    row_max = s.max(axis=1)
    winner = s.argmax(axis=1)  # first maximum in portfolio order
    sbs_mean = float(s[:, sbs].mean())
    oracle_mean = float(row_max.mean())
    not_best = s[:, sbs] < row_max - TIE_ATOL
    return {
        "SBS": models[sbs],
        "SBS mean": sbs_mean,
        "Oracle mean": oracle_mean,
        "OG (abs)": oracle_mean - sbs_mean,
        "WCR": float((winner != sbs).mean()),
        "WCR (tie-aware)": float(not_best.mean()),
        "n": int(s.shape[0]),
    }


def matrix_oracle_gap(matrix: Matrix) -> dict:
    out = oracle_gap(matrix.scores().to_numpy(dtype=float), matrix.models, matrix.cost_vector())
    out["simulated"] = bool(matrix.simulated)
    # simulated / replayed / generated / imported (codyn.config.answers_kind)
    out["answers"] = matrix.meta.get("answers") or ("simulated" if matrix.simulated else "real")
    return out


def oracle_gap_table(matrices: dict[str, Matrix]) -> pd.DataFrame:
    """Metrics as rows, datasets as columns (the paper's layout)."""
    cols = {name: matrix_oracle_gap(m) for name, m in matrices.items()}
    table = pd.DataFrame({name: [col[r] for r in ROWS] for name, col in cols.items()}, index=ROWS)
    table.index.name = "metric"
    return table


def _fmt(row: str, value) -> str:
    if row in ("SBS", "answers"):
        return str(value)
    if row == "simulated":
        return "yes" if value else "no"
    if row == "n":
        return str(int(value))
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.3f}" if row.startswith("WCR") else f"{value:.4f}"
    return str(value)


def to_markdown(table: pd.DataFrame, label: str = "") -> str:
    datasets = list(table.columns)
    lines = ["| metric | " + " | ".join(datasets) + " |", "|---|" + "---|" * len(datasets)]
    for row in table.index:
        lines.append(
            f"| {row} | " + " | ".join(_fmt(row, table.at[row, d]) for d in datasets) + " |"
        )
    simulated = [d for d in datasets if bool(table.at["simulated", d])]
    caption = (
        "Table 1: Oracle-gap screening. SBS = best single model by mean (ties: cheaper); "
        "Oracle = per-instance best; OG = Oracle - SBS (absolute units); WCR = share of "
        "instances whose first-argmax winner is not the SBS; tie-aware WCR = share where "
        "the SBS is not among the best."
    )
    if simulated:
        caption += f" SIMULATED portfolio answers for: {', '.join(simulated)}."
    replayed = [d for d in datasets if table.at["answers", d] == "replayed"]
    if replayed:
        caption += (
            f" Real answers, replayed (published answers re-scored by codyn's sandbox) for: "
            f"{', '.join(replayed)}."
        )
    if label:
        caption += f" Run: {label}."
    return "\n".join(lines) + "\n\n" + caption + "\n"


def write_oracle_gap(
    matrix_paths: dict[str, str], csv_path, md_path, label: str = ""
) -> pd.DataFrame:
    """Load the matrices (dataset -> path), write Table 1 as CSV and Markdown (atomically)."""
    matrices = {name: Matrix.load(path) for name, path in matrix_paths.items()}
    table = oracle_gap_table(matrices)
    md = to_markdown(table, label)
    # Rows mix names, counts and rates (object dtype), so format the numbers by hand.
    cells = table.map(lambda v: f"{v:.6f}" if isinstance(v, float) else str(v))
    csv_text = cells.to_csv(lineterminator="\n")
    for path, text in ((csv_path, csv_text), (md_path, md)):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path) as fh:
            fh.write(text)
    return table
