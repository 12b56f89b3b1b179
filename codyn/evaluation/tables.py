"""Tables from evaluation records: Table 2, the generalisation table (A.4) and the
curve-metric table (APGR, CPT, AIQ, and the operating points chosen out-of-fold).

Every table carries where its numbers come from: an ``answers`` column in the CSV
("simulated" or "real", read from the matrix metadata via the evaluation records)
and a banner line above the Markdown and LaTeX tables.

Table 2 layout (paper section 6): one row per technique and cost setting for the
learned routers, one row per baseline (Random, cheapest) and per RoRF router (the
paper reports RoRF once, at the cost-free setting); columns ``E`` and ``C`` per
dataset. The Oracle (best raw score per prompt, cheapest among ties) and SBS (best
train-mean model) rows are computed from the matrix by the paper's definitions,
whether or not routers of those types ran.

With the verified cascade's results (``cascade.csv``, codyn.evaluation.cascade_report), two
more rows: the cascade chosen on train for the pipeline's own split (the same test rows as
every other row) and its mean over the five seeded splits; C counts every stage called.

Autoregressive rows (SFT, GRPO) also show ``malformed %``: the share of evaluated
prompts (all datasets of the row) where the router's output was not a valid ranking. By
the paper's rule those prompts score 0; a row whose router used ``decoding:
constrained`` or ``on_malformed: fallback`` (options, not the paper's evaluation) says so
in its technique label.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import pandas as pd

from codyn.io import atomic_open, write_text

ROW_ORDER = [
    "cls",
    "ar-sft",
    "ar-grpo",
    "knn",
    "mlp",
    "random",
    "oracle",
    "sbs",
    "cheapest",
    "rorf",
]
MALFORMED_COLUMN = "malformed %"
SINGLE_ROW_TYPES = {"random", "oracle", "sbs", "cheapest", "rorf", "cascade"}
REFERENCE_TYPES = {"oracle", "sbs"}
TYPE_LABEL = {
    "cls": "CLS",
    "ar-sft": "SFT",
    "ar-grpo": "GRPO",
    "knn": "kNN",
    "mlp": "MLP",
    "random": "Random",
    "oracle": "Oracle",
    "sbs": "SBS",
    "cheapest": "Cheapest",
    "rorf": "RoRF",
    "cascade": "Verified cascade",
}


def answers_label(records: Iterable[dict]) -> str:
    records = list(records)
    flags = {bool(r.get("simulated")) for r in records}
    if flags == {True}:
        return "simulated"
    if flags == {False}:
        if records and all(r.get("answers") == "replayed" for r in records):
            return "real, replayed"
        return "real"
    return "mixed (some simulated)"


def banner(records: Iterable[dict]) -> str:
    label = answers_label(records)
    if label == "real, replayed":
        return (
            "Answers: real, replayed (published model answers, re-scored by codyn's own "
            "extraction and sandbox)."
        )
    if label == "real":
        return "Answers: real (scored model outputs or imported published results)."
    return (
        f"Answers: {label.upper()} — numbers come from a synthetic portfolio, not real LLM calls."
    )


def technique(router: str, router_type: str) -> str:
    base = TYPE_LABEL.get(router_type, router_type)
    return base if router.lower() == base.lower() else f"{base} ({router})"


def setting_label(setting: str, lambda2: float | None) -> str:
    return setting if lambda2 is None else f"{setting} (λ2={lambda2:g})"


def _fmt(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def to_markdown(df: pd.DataFrame, digits: int = 3) -> str:
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = [
        "| " + " | ".join(_fmt(v, digits) for v in row) + " |" for row in df.itertuples(index=False)
    ]
    return "\n".join([head, rule, *body]) + "\n"


def _tex_escape(text: str) -> str:
    for a, b in [
        ("\\", r"\textbackslash{}"),
        ("&", r"\&"),
        ("%", r"\%"),
        ("_", r"\_"),
        ("#", r"\#"),
        ("λ2", r"$\lambda_2$"),
        ("–", "--"),
        ("—", "---"),
    ]:
        text = text.replace(a, b)
    return text


def to_latex(df: pd.DataFrame, caption: str, label: str, digits: int = 2) -> str:
    cols = "l" * 2 + "r" * (len(df.columns) - 2)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{_tex_escape(caption)}}}",
        rf"\label{{{label}}}",
        r"\resizebox{\linewidth}{!}{%",
        rf"\begin{{tabular}}{{{cols}}}",
        r"\toprule",
        " & ".join(_tex_escape(str(c)) for c in df.columns) + r" \\",
        r"\midrule",
    ]
    for row in df.itertuples(index=False):
        lines.append(" & ".join(_tex_escape(_fmt(v, digits)) for v in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}}", r"\end{table}", ""]
    return "\n".join(lines)


def _rank(rtype: str) -> int:
    """Paper rows first, then other routers, then the verified cascade (beyond the paper)."""
    if rtype == "cascade":
        return len(ROW_ORDER) + 1
    return ROW_ORDER.index(rtype) if rtype in ROW_ORDER else len(ROW_ORDER)


def table2_frame(
    records: list[dict],
    settings: Mapping[str, float],
    routers: list[str] | None = None,
    cascade: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Wide Table 2: rows technique x setting, columns ``{dataset} E`` / ``{dataset} C``."""
    if not records:
        raise ValueError("no evaluation records")
    setting_names = list(settings)
    base_setting = setting_names[0]
    datasets = list(dict.fromkeys(r["dataset"] for r in records))
    router_order = routers or list(dict.fromkeys(r["router"] for r in records))
    types = {r["router"]: r["router_type"] for r in records}
    by_key = {(r["router"], r["setting"], r["dataset"]): r for r in records}

    rows = []

    def add_row(label: str, router: str, rtype: str, setting: str | None, cells: dict):
        rows.append(
            {
                "technique": label,
                "router": router,
                "type": rtype,
                "setting": setting or "",
                MALFORMED_COLUMN: float("nan"),
                **cells,
            }
        )

    # Oracle and SBS follow the paper's definitions on the raw scores (reference rows
    # below); the oracle router ranks by normalised RS targets, which can break raw ties
    # differently, so its own records feed the figures but not this table.
    ordered = sorted(
        [r for r in router_order if r in types and types[r] not in REFERENCE_TYPES],
        key=lambda r: (_rank(types[r]), router_order.index(r)),
    )
    for router in ordered:
        rtype = types[router]
        settings_here = [base_setting] if rtype in SINGLE_ROW_TYPES else setting_names
        for setting in settings_here:
            cells = {}
            for ds in datasets:
                rec = by_key.get((router, setting, ds))
                cells[f"{ds} E"] = rec["decision"]["effectiveness"] if rec else float("nan")
                cells[f"{ds} C"] = rec["decision"]["cost"] if rec else float("nan")
                cells[f"{ds} usd"] = _usd(rec["decision"]) if rec else float("nan")
            label_setting = (
                None if rtype in SINGLE_ROW_TYPES else setting_label(setting, settings[setting])
            )
            here = [
                by_key[(router, setting, ds)] for ds in datasets if (router, setting, ds) in by_key
            ]
            add_row(
                technique(router, rtype) + _options_label(here), router, rtype, label_setting, cells
            )
            counted = [r for r in here if r.get("malformed") is not None]
            if counted:
                rows[-1][MALFORMED_COLUMN] = (
                    100.0
                    * sum(r["malformed"] for r in counted)
                    / sum(r["n_tasks"] for r in counted)
                )
    for label, rtype, cells in _reference_rows(records, datasets) + _cascade_rows(
        cascade, datasets
    ):
        add_row(label, "", rtype, None, cells)
    df = pd.DataFrame(rows)
    df = df.iloc[sorted(range(len(df)), key=lambda i: (_rank(df["type"].iloc[i]), i))].reset_index(
        drop=True
    )
    # dollars per prompt only where some price is known (simulated portfolios have none)
    usd_cols = [c for c in df.columns if c.endswith(" usd")]
    df = df.drop(columns=[c for c in usd_cols if df[c].isna().all()])
    if df[MALFORMED_COLUMN].isna().all():
        df = df.drop(columns=[MALFORMED_COLUMN])  # no autoregressive router ran
    df["answers"] = answers_label(records)
    return df


def _reference_rows(records: list[dict], datasets: list[str]) -> list[tuple[str, str, dict]]:
    """(label, type, cells) of the Oracle and SBS rows, from the records' references."""
    refs = {}
    for r in records:
        refs.setdefault(r["dataset"], r["references"])
    out = []
    for rtype, label in (("oracle", "Oracle"), ("sbs", "SBS (best train mean)")):
        cells = {}
        for ds in datasets:
            cells[f"{ds} E"] = refs[ds][rtype]["effectiveness"]
            cells[f"{ds} C"] = refs[ds][rtype]["cost"]
            cells[f"{ds} usd"] = _usd(refs[ds][rtype])
        out.append((label, rtype, cells))
    return out


def _cascade_rows(cascade: pd.DataFrame | None, datasets: list[str]) -> list[tuple[str, str, dict]]:
    """(label, type, cells) of the verified cascade: the pipeline split, and the seeds' mean."""
    if cascade is None or cascade.empty:
        return []
    nan = float("nan")
    out = []
    for label, pick in (
        ("Verified cascade (chosen on train; pipeline split)", cascade["pipeline_split"]),
        ("Verified cascade (chosen on train; mean of {n} seeds)", None),
    ):
        cells, seeds = {}, set()
        for ds in datasets:
            part = cascade[cascade["dataset"] == ds]
            if pick is not None:
                part = part[pick.loc[part.index]]
            if len(part):
                seeds.add(len(part))
            cells[f"{ds} E"] = part["effectiveness"].mean() if len(part) else nan
            cells[f"{ds} C"] = part["cost"].mean() if len(part) else nan
            usd = part["usd_per_prompt"]
            cells[f"{ds} usd"] = usd.mean() if len(part) and usd.notna().all() else nan
        out.append((label.format(n="/".join(str(n) for n in sorted(seeds))), "cascade", cells))
    return out


def _options_label(records: list[dict]) -> str:
    """' [constrained, fallback]' when an AR router ran with options the paper did not use."""
    opts = []
    if any(r.get("decoding") == "constrained" for r in records):
        opts.append("constrained decoding")
    if any(r.get("on_malformed") == "fallback" for r in records):
        opts.append("malformed -> fallback")
    return f" [{', '.join(opts)}]" if opts else ""


def _usd(summary: dict) -> float:
    value = summary.get("usd_per_prompt")
    return float("nan") if value is None else float(value)


def sbs_models(records: list[dict]) -> dict[str, str]:
    out = {}
    for r in records:
        out.setdefault(r["dataset"], r["references"]["sbs"]["model"])
    return out


def write_table2(
    records: list[dict],
    settings: Mapping[str, float],
    out_csv,
    out_md,
    out_tex,
    routers=None,
    cascade: pd.DataFrame | None = None,
) -> pd.DataFrame:
    df = table2_frame(records, settings, routers, cascade)
    write_csv(df, out_csv)
    # the paper's layout: E and C per dataset; dollars stay in the CSV
    shown = df.drop(
        columns=["router", "type", "answers"] + [c for c in df.columns if c.endswith(" usd")]
    )
    sbs = ", ".join(f"{d}: {m}" for d, m in sbs_models(records).items())
    note = (
        f"{banner(records)}\n\nE = mean raw score of the chosen model (higher is better); "
        f"C = Eq. 2 cost relative to the most expensive model (lower is better); test split of each dataset. "
        f"malformed % (autoregressive routers) = prompts whose ranking output was malformed; "
        f"they score 0 (the paper's rule) unless the label says otherwise. "
        + (
            "Verified cascade (beyond the paper): cheap system first, escalate when its code "
            "fails the prompt's own examples; chosen on train only; C sums every stage called "
            "(cascade.md beside this table). "
            if cascade is not None and not cascade.empty
            else ""
        )
        + f"SBS per dataset (best train mean): {sbs}.\n\n"
    )
    write_text(
        out_md,
        "# Table 2: effectiveness and cost per technique and cost setting\n\n"
        + note
        + to_markdown(shown),
    )
    caption = f"Effectiveness (E, higher is better) and Eq. 2 cost (C, lower is better) of every technique and cost setting on the test split. {banner(records)}"
    write_text(out_tex, to_latex(shown, caption, "tab:table2"))
    return df


def operating_points_frame(records: list[dict]) -> pd.DataFrame:
    """One row per (dataset, router, setting, calibration target): the weight chosen on
    out-of-fold predictions of train, what it gave there, and on test beside the SBS."""
    rows = []
    for r in records:
        cal = r.get("calibration") or {}
        sbs = r["references"]["sbs"]
        for name, t in (cal.get("targets") or {}).items():
            diff = t["test_effectiveness_minus_sbs"]
            rows.append(
                {
                    "dataset": r["dataset"],
                    "router": r["router"],
                    "setting": r["setting"],
                    "target": name,
                    "w": t["cost_weight"],
                    "OOF E": t["oof"]["effectiveness"],
                    "OOF C": t["oof"]["cost"],
                    "test E": t["test"]["effectiveness"],
                    "test C": t["test"]["cost"],
                    "SBS test E": sbs["effectiveness"],
                    "SBS test C": sbs["cost"],
                    "E - SBS": diff["mean"],
                    "E - SBS lo": diff["lo"],
                    "E - SBS hi": diff["hi"],
                    "C / SBS C": t["test_cost_over_sbs"],
                    "test share": t["test"]["share_most_expensive"],
                }
            )
    return pd.DataFrame(rows)


def curves_frame(records: list[dict]) -> pd.DataFrame:
    """Curve metrics per router and setting, and per calibration target its test E and
    cost (wide; :func:`operating_points_frame` has the long form)."""
    rows = []
    for r in records:
        curve, cal = r.get("curve"), r.get("calibration")
        if not curve:
            continue
        row = {
            "dataset": r["dataset"],
            "router": r["router"],
            "type": r["router_type"],
            "setting": r["setting"],
            "weak": curve["weak"],
            "strong": curve["strong"],
            "APGR": curve["apgr"],
        }
        for level, value in curve["cpt"].items():
            row[f"CPT{round(float(level) * 100):d}"] = value
        row["AIQ"] = curve["aiq"]
        if cal:
            row["SBS test E"] = r["references"]["sbs"]["effectiveness"]
            row["SBS test C"] = r["references"]["sbs"]["cost"]
            for name, t in cal["targets"].items():
                row[f"{name} w"] = t["cost_weight"]
                row[f"{name} test E"] = t["test"]["effectiveness"]
                row[f"{name} test C"] = t["test"]["cost"]
                row[f"{name} E - SBS"] = t["test_effectiveness_minus_sbs"]["mean"]
        rows.append(row)
    df = pd.DataFrame(rows)
    if len(df):
        df = df.map(lambda v: float("nan") if v is None else v)
    df["answers"] = answers_label(records)
    return df


def write_curves(records: list[dict], out_csv, out_md) -> pd.DataFrame:
    df = curves_frame(records)
    write_csv(df, out_csv)
    curve_cols = [
        c
        for c in df.columns
        if not any(c.endswith(k) for k in (" w", " test E", " test C", " E - SBS"))
    ]
    curve_cols = [c for c in curve_cols if c not in ("type", "answers", "SBS test E", "SBS test C")]
    points = operating_points_frame(records)
    note = (
        f"{banner(records)}\n\nCurve descriptions (the whole test curve, no operating point chosen): "
        "APGR = mean performance gap recovered between the cheapest model (weak) and the "
        "single best model (strong) over their Eq. 2 cost range; CPT(x) = lowest Eq. 2 cost that recovers x of "
        "that gap; AIQ = RouterBench's area under the non-decreasing convex hull over the full cost range. "
        "A cost read off the test curve is an upper bound on what a deployer gets.\n\n"
    )
    points_note = (
        "\n\n## Operating points chosen out-of-fold\n\nEach cost weight w was chosen at training on "
        "out-of-fold predictions of the train split (K-fold cross-fitting; never on fitted rows or test) "
        "for its target: parity = cheapest w whose OOF effectiveness reaches the SBS's; budget-B = "
        "smallest w whose OOF cost is <= B x the SBS's; share-P = smallest w sending <= P of calls to "
        "the most expensive model. Test E / C are what that w gives on the test split; E - SBS is "
        "paired on the same test rows, with a 95% bootstrap interval [lo, hi].\n\n"
    )
    if len(points):
        shown = points.copy()
        shown["E - SBS [95% CI]"] = [
            f"{m:+.3f} [{lo:+.3f}, {hi:+.3f}]"
            for m, lo, hi in zip(
                shown["E - SBS"], shown["E - SBS lo"], shown["E - SBS hi"], strict=True
            )
        ]
        shown = shown.drop(columns=["E - SBS", "E - SBS lo", "E - SBS hi"])
        points_md = points_note + to_markdown(shown)
    else:
        points_md = points_note + "(no router records an out-of-fold calibration)\n"
    write_text(
        out_md,
        "# Deferral-curve metrics\n\n" + note + to_markdown(df[curve_cols]) + points_md,
    )
    return df


def generalisation_frame(records: list[dict], settings: Mapping[str, float]) -> pd.DataFrame:
    rows = []
    seen = set()
    for r in records:
        ds = r["dataset"]
        if ds not in seen:
            seen.add(ds)
            for model, ref in r["references"]["models"].items():
                rows.append(
                    {
                        "dataset": ds,
                        "technique": model,
                        "setting": "",
                        "kind": "single model",
                        "E": ref["effectiveness"],
                        "C": ref["cost"],
                        "usd/prompt": ref.get("usd_per_prompt"),
                    }
                )
            o = r["references"]["oracle"]
            rows.append(
                {
                    "dataset": ds,
                    "technique": "Oracle",
                    "setting": "",
                    "kind": "reference",
                    "E": o["effectiveness"],
                    "C": o["cost"],
                    "usd/prompt": o.get("usd_per_prompt"),
                }
            )
        d = r["decision"]
        rows.append(
            {
                "dataset": ds,
                "technique": technique(r["router"], r["router_type"]),
                "setting": setting_label(r["setting"], settings.get(r["setting"])),
                "kind": "router",
                "E": d["effectiveness"],
                "C": d["cost"],
                "usd/prompt": d.get("usd_per_prompt"),
            }
        )
    df = pd.DataFrame(rows)
    df["usd/prompt"] = df["usd/prompt"].map(lambda v: float("nan") if v is None else v)
    df["answers"] = answers_label(records)
    return df


def write_generalisation(
    records: list[dict], settings: Mapping[str, float], out_csv, out_md
) -> pd.DataFrame:
    df = generalisation_frame(records, settings)
    write_csv(df, out_csv)
    note = (
        f"{banner(records)}\n\nRouters trained on the training datasets, applied as-is to every row of the "
        "held-out dataset(s) (paper A.4). E = mean raw score, C = Eq. 2 cost.\n\n"
    )
    write_text(
        out_md,
        "# Generalisation to unseen tasks\n\n"
        + note
        + to_markdown(df.drop(columns=["answers"]), digits=4),
    )
    return df


def write_csv(df: pd.DataFrame, path) -> None:
    with atomic_open(path, newline="") as fh:
        df.to_csv(fh, index=False)
