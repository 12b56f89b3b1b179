"""The paper's figures (2-5) and the deferral curves, drawn from evaluation records.

- :func:`cost_performance` — Figures 2/3: one panel per dataset; single models (blue
  circles), every router/setting (labelled; marker shape = cost setting), the
  oracle's cost and effectiveness as dashed lines.
- :func:`diversity` — Figure 4: share of calls per model, per router and setting,
  pooled over the datasets' evaluated rows (A.3).
- :func:`generalisation` — Figure 5: cost-performance on the held-out dataset(s)
  (left) and the routers' share of calls there (right).
- :func:`deferral_curves` — beyond the paper: each swept router's deferral curve at
  the base setting and the Pareto frontier of all operating points.

Every figure says in its title whether the answers were simulated. Labels are placed
greedily at the first of several offsets around their point whose box overlaps no
other label, marker or the axes edge (a small repel step, no extra dependency).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib
import matplotlib.patches

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from codyn import policy  # noqa: E402
from codyn.evaluation import metrics, tables  # noqa: E402
from codyn.evaluation.evaluate import SWEPT_TYPES  # noqa: E402
from codyn.io import atomic_path  # noqa: E402

SETTING_MARKERS = ["o", "s", "^", "D", "v", "P", "X"]
# tab10 then Dark2: 18 colours that stay apart; routers beyond that repeat a colour.
ROUTER_COLORS = list(plt.get_cmap("tab10").colors) + list(plt.get_cmap("Dark2").colors)
MODEL_COLOR = "#1f5fa8"
ORACLE_COLOR = "#444444"
# Candidate label offsets (points) tried in order; farther rings get a leader line.
_OFFSETS = [(6, 5), (6, -11), (-6, 5), (-6, -11), (0, 9), (0, -14), (9, -3), (-9, -3)]


def title_banner(records) -> str:
    label = tables.answers_label(records)
    return (
        "SIMULATED answers"
        if label == "simulated"
        else (
            "real answers"
            if label == "real"
            else (
                "real answers, replayed"
                if label == "real, replayed"
                else "answers: mixed, some SIMULATED"
            )
        )
    )


def save(fig, png: str | Path, pdf: str | Path | None = None) -> None:
    for path, fmt in ((png, "png"), (pdf, "pdf")):
        if path is None:
            continue
        # No CreationDate in the PDF: the same results give the same bytes on every run.
        metadata = {"CreationDate": None} if fmt == "pdf" else None
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight", metadata=metadata)
    plt.close(fig)


def _overlap(a, b) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return max(w, 0) * max(h, 0)


def place_labels(ax, xs, ys, labels, fontsize: float = 7.0, color="black", obstacles=()) -> list:
    """Annotate each point, choosing the first offset whose box overlaps nothing placed
    (other labels, the labelled points, and the unlabelled ``obstacles`` points)."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axes_box = ax.get_window_extent(renderer)
    taken = []
    for x, y in [*zip(xs, ys, strict=True), *obstacles]:
        px, py = ax.transData.transform((x, y))
        r = 4.0
        taken.append(matplotlib.transforms.Bbox([[px - r, py - r], [px + r, py + r]]))
    placed = []
    for x, y, text in zip(xs, ys, labels, strict=True):
        best, best_score = None, None
        for ring in (1.0, 2.0, 3.2):
            for dx, dy in _OFFSETS:
                ann = ax.annotate(
                    text,
                    (x, y),
                    xytext=(dx * ring, dy * ring),
                    textcoords="offset points",
                    ha="left" if dx > 0 else ("right" if dx < 0 else "center"),
                    va="bottom" if dy > 0 else "top" if dy < -5 else "center",
                    fontsize=fontsize,
                    color=color,
                    arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.5"} if ring > 1 else None,
                )
                box = ann.get_window_extent(renderer).expanded(1.05, 1.1)
                outside = (
                    box.x0 < axes_box.x0
                    or box.x1 > axes_box.x1
                    or box.y0 < axes_box.y0
                    or box.y1 > axes_box.y1
                )
                score = sum(_overlap(box, t) for t in taken) + (1e6 if outside else 0)
                if best_score is None or score < best_score:
                    if best is not None:
                        best.remove()
                    best, best_score, best_box = ann, score, box
                else:
                    ann.remove()
                if score == 0:
                    break
            if best_score == 0:
                break
        taken.append(best_box)
        placed.append(best)
    return placed


def _setting_marker(settings: list[str], setting: str) -> str:
    return (
        SETTING_MARKERS[settings.index(setting) % len(SETTING_MARKERS)]
        if setting in settings
        else "o"
    )


def _short(model: str) -> str:
    return model.removeprefix("sim-")


def _panel_grid(n: int, width: float = 5.2, height: float = 4.2):
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _drawn_routers(records: list[dict], routers) -> list[str]:
    """Routers drawn as points: all but oracle/SBS, which the references show (the
    oracle's dashed lines, the single model marked "(SBS)") by the paper's definitions."""
    types = {r["router"]: r["router_type"] for r in records}
    names = routers or list(dict.fromkeys(r["router"] for r in records))
    return [r for r in names if types.get(r) not in tables.REFERENCE_TYPES]


def _router_color(routers: list[str], router: str):
    return ROUTER_COLORS[routers.index(router) % len(ROUTER_COLORS)] if router in routers else "k"


CASCADE_COLOR = "#f2b800"  # gold: not one of the router colours (tab10, Dark2)


def _cascade_points(ax, cascade, dataset: str) -> list[tuple[float, float]]:
    """The verified cascade (cascade.csv) on one panel: the pipeline split's test point (the
    same test rows as the routers) and the mean over the seeded splits; returns the points."""
    if cascade is None or cascade.empty:
        return []
    part = cascade[cascade["dataset"] == dataset]
    if part.empty:
        return []
    here = part[part["pipeline_split"]]
    points = []
    if not here.empty:
        c, e = float(here["cost"].iloc[0]), float(here["effectiveness"].iloc[0])
        ax.scatter(c, e, s=150, marker="*", color=CASCADE_COLOR, edgecolor="k", lw=0.5, zorder=5)
        points.append((c, e))
    c, e = float(part["cost"].mean()), float(part["effectiveness"].mean())
    ax.scatter(c, e, s=150, marker="*", facecolors="none", edgecolors=CASCADE_COLOR, zorder=5)
    return [*points, (c, e)]


def _cascade_handles(cascade) -> list:
    if cascade is None or cascade.empty:
        return []
    n = cascade.groupby("dataset").size().max()
    return [
        Line2D([], [], ls="", marker="*", ms=11, color=CASCADE_COLOR, markeredgecolor="k",
               label="verified cascade, chosen on train (this test split)"),
        Line2D([], [], ls="", marker="*", ms=11, color="none", markeredgecolor=CASCADE_COLOR,
               label=f"verified cascade, mean of {n} seeded splits"),
    ]  # fmt: skip


def _scatter_panel(
    ax, recs: list[dict], settings: Mapping[str, float], routers: list[str], cascade=None
) -> None:
    """Single models (labelled), routers (colour = router, marker = setting), oracle lines."""
    ref = recs[0]["references"]
    models = recs[0]["models"]
    mx = [ref["models"][m]["cost"] for m in models]
    my = [ref["models"][m]["effectiveness"] for m in models]
    ax.scatter(mx, my, s=40, color=MODEL_COLOR, alpha=0.55, zorder=2)
    ax.axvline(ref["oracle"]["cost"], ls="--", lw=0.9, color=ORACLE_COLOR, zorder=1)
    ax.axhline(ref["oracle"]["effectiveness"], ls="--", lw=0.9, color=ORACLE_COLOR, zorder=1)
    ys = [*my, ref["oracle"]["effectiveness"]]
    drawn = []
    setting_names = list(settings)
    for rec in recs:
        if rec["router_type"] in tables.REFERENCE_TYPES:
            continue  # oracle and SBS are the dashed lines and the "(SBS)" model
        if rec["router_type"] in tables.SINGLE_ROW_TYPES and rec["setting"] != setting_names[0]:
            continue  # a baseline ignores the setting: draw it once
        d = rec["decision"]
        ax.scatter(
            d["cost"],
            d["effectiveness"],
            s=46,
            marker=_setting_marker(setting_names, rec["setting"]),
            color=_router_color(routers, rec["router"]),
            edgecolor="k",
            linewidth=0.5,
            zorder=3,
        )
        ys.append(d["effectiveness"])
        drawn.append((d["cost"], d["effectiveness"]))
    shown = _cascade_points(ax, cascade, recs[0]["dataset"])
    ys += [e for _, e in shown]
    drawn += shown
    ax.set_xlabel("cost (Eq. 2, relative to the most expensive model)")
    ax.set_ylabel("effectiveness (mean raw score)")
    ax.set_xlim(-0.04, 1.08)
    lo, hi = min(ys), max(ys)
    pad = max(0.05, 0.12 * (hi - lo))
    ax.set_ylim(lo - pad, hi + pad)
    ax.grid(alpha=0.25)
    sbs = ref["sbs"]["model"]
    labels = [_short(m) + (" (SBS)" if m == sbs else "") for m in models]
    place_labels(ax, mx, my, labels, color="#1f3f6f", obstacles=drawn)


def _legend_handles(settings: Mapping[str, float], routers: list[str]) -> list:
    handles = [
        Line2D(
            [],
            [],
            ls="",
            marker="o",
            color=MODEL_COLOR,
            alpha=0.55,
            label="single model; (SBS) = single best solver",
        ),
        Line2D([], [], ls="--", color=ORACLE_COLOR, label="oracle cost / effectiveness"),
    ]
    for i, (name, lam) in enumerate(settings.items()):
        marker = SETTING_MARKERS[i % len(SETTING_MARKERS)]
        handles.append(
            Line2D(
                [],
                [],
                ls="",
                marker=marker,
                color="0.75",
                markeredgecolor="k",
                label=f"{name} (λ2={lam:g})",
            )
        )
    for router in routers:
        handles.append(
            Line2D(
                [],
                [],
                ls="",
                marker="o",
                color=_router_color(routers, router),
                markeredgecolor="k",
                label=router,
            )
        )
    return handles


def _side_legend(fig, handles, title: str = "marker = setting, colour = router") -> None:
    fig.legend(
        handles=handles,
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        fontsize=8,
        frameon=False,
        title=title,
        title_fontsize=8,
    )


def _by_dataset(records: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in records:
        out.setdefault(r["dataset"], []).append(r)
    return out


def cost_performance(
    records: list[dict],
    settings: Mapping[str, float],
    png,
    pdf=None,
    routers=None,
    title="Cost–performance trade-off per dataset",
    cascade=None,
) -> None:
    """Figures 2 and 3: one panel per dataset (with the verified cascade when ``cascade``,
    the rows of cascade.csv, is given)."""
    groups = _by_dataset(records)
    routers = _drawn_routers(records, routers)
    fig, axes = _panel_grid(len(groups))
    for ax, (ds, recs) in zip(axes, groups.items(), strict=True):
        _scatter_panel(ax, recs, settings, routers, cascade)
        ax.set_title(
            f"{ds} (test split, n={recs[0]['n_tasks']})"
            if recs[0]["scope"] == "test"
            else f"{ds} (all rows, n={recs[0]['n_tasks']})",
            fontsize=10,
        )
    fig.suptitle(f"{title} — {title_banner(records)}", fontsize=12, y=1.0)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    _side_legend(fig, _legend_handles(settings, routers) + _cascade_handles(cascade))
    save(fig, png, pdf)


def pooled_shares(records: list[dict]) -> dict[tuple[str, str], dict[str, float]]:
    """Share of calls per model for each (router, setting), pooled over datasets by row count."""
    counts: dict[tuple[str, str], dict[str, float]] = {}
    for r in records:
        key = (r["router"], r["setting"])
        acc = counts.setdefault(key, {m: 0.0 for m in r["models"]})
        for m, share in r["decision"]["shares"].items():
            acc[m] += share * r["n_tasks"]
    return {k: {m: c / sum(v.values()) for m, c in v.items()} for k, v in counts.items()}


def _diversity_panel(
    ax, shares: dict, router: str, settings: Mapping[str, float], models: list[str]
) -> None:
    names = [s for s in settings if (router, s) in shares]
    colour = {s: SETTING_COLORS[i % len(SETTING_COLORS)] for i, s in enumerate(settings)}
    width = 0.8 / max(len(names), 1)
    x = np.arange(len(models))
    for i, s in enumerate(names):
        vals = [100 * shares[(router, s)][m] for m in models]
        ax.bar(
            x + (i - (len(names) - 1) / 2) * width,
            vals,
            width,
            label=f"{s} (λ2={settings[s]:g})",
            color=colour[s],
        )
    ax.set_xticks(x, [_short(m) for m in models], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("% of calls")
    ax.set_ylim(0, 105)
    ax.set_title(router, fontsize=10)
    ax.grid(axis="y", alpha=0.25)


SETTING_COLORS = ["#3b75af", "#519e3e", "#ef8636", "#c53a32", "#8d69b8"]


def _setting_legend(fig, settings: Mapping[str, float]) -> None:
    handles = [
        matplotlib.patches.Patch(
            color=SETTING_COLORS[i % len(SETTING_COLORS)], label=f"{name} (λ2={lam:g})"
        )
        for i, (name, lam) in enumerate(settings.items())
    ]
    _side_legend(fig, handles, "bar colour = cost setting")


def diversity(
    records: list[dict],
    settings: Mapping[str, float],
    png,
    pdf=None,
    routers=None,
    router_types=None,
) -> None:
    """Figure 4: % of calls per model per router, bars grouped by setting."""
    shares = pooled_shares(records)
    types = {r["router"]: r["router_type"] for r in records}
    keep = router_types or set(SWEPT_TYPES)
    routers = [
        r for r in (routers or list(dict.fromkeys(types))) if r in types and types[r] in keep
    ]
    if not routers:
        routers = list(dict.fromkeys(types))
    models = records[0]["models"]
    fig, axes = _panel_grid(len(routers), width=4.6, height=3.6)
    for ax, router in zip(axes, routers, strict=True):
        _diversity_panel(ax, shares, router, settings, models)
    datasets = ", ".join(dict.fromkeys(r["dataset"] for r in records))
    fig.suptitle(
        f"Share of calls per model (pooled over {datasets}) — {title_banner(records)}",
        fontsize=11,
        y=1.0,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    _setting_legend(fig, settings)
    save(fig, png, pdf)


def _stacked_shares(
    ax, shares: dict, rows: list[tuple[str, str]], models: list[str], baseline: Mapping[str, bool]
) -> None:
    """One horizontal bar per (router, setting), split into the models' shares of calls."""
    cmap = plt.get_cmap("viridis")
    colours = [cmap(i / max(len(models) - 1, 1)) for i in range(len(models))]
    y = np.arange(len(rows))[::-1]
    left = np.zeros(len(rows))
    for j, m in enumerate(models):
        vals = np.array([100 * shares[row][m] for row in rows])
        ax.barh(
            y, vals, left=left, color=colours[j], edgecolor="white", linewidth=0.5, label=_short(m)
        )
        left += vals
    ax.set_yticks(y, [r if baseline.get(r) else f"{r} · {s}" for r, s in rows], fontsize=8)
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of calls (cheapest model left, dearest right)")
    ax.legend(
        fontsize=7,
        ncol=min(len(models), 5),
        loc="upper center",
        bbox_to_anchor=(0.5, -0.14),
        frameon=False,
    )


def generalisation(
    records: list[dict], settings: Mapping[str, float], png, pdf=None, routers=None
) -> None:
    """Figure 5: per held-out dataset, cost-performance (left) and share of calls (right)."""
    groups = _by_dataset(records)
    routers = _drawn_routers(records, routers)
    n_rows = max(len({(r["router"], r["setting"]) for r in recs}) for recs in groups.values())
    height = max(4.6, 0.28 * n_rows + 1.6)
    fig, axes = plt.subplots(
        len(groups),
        2,
        figsize=(13, height * len(groups)),
        squeeze=False,
        gridspec_kw={"width_ratios": [1.1, 1]},
    )
    for row, (ds, recs) in enumerate(groups.items()):
        _scatter_panel(axes[row][0], recs, settings, routers)
        axes[row][0].set_title(f"{ds}: routers applied as-is (n={recs[0]['n_tasks']})", fontsize=10)
        shares = pooled_shares(recs)
        order = [(r, s) for r in routers for s in settings if (r, s) in shares]
        # a baseline ignores the setting: one bar
        types = {x["router"]: x["router_type"] for x in recs}
        order = [
            (r, s)
            for r, s in order
            if types.get(r) not in tables.SINGLE_ROW_TYPES or s == list(settings)[0]
        ]
        baseline = {r: types.get(r) in tables.SINGLE_ROW_TYPES for r in routers}
        _stacked_shares(axes[row][1], shares, order, recs[0]["models"], baseline)
        axes[row][1].set_title(f"{ds}: share of calls per router and setting", fontsize=10)
    fig.suptitle(f"Generalisation to unseen tasks — {title_banner(records)}", fontsize=12, y=1.0)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    _side_legend(fig, _legend_handles(settings, routers))
    save(fig, png, pdf)


def deferral_curves(
    records: list[dict],
    settings: Mapping[str, float],
    png,
    pdf=None,
    routers=None,
    setting=None,
    cascade=None,
) -> None:
    """Deferral curve per swept router at ``setting`` (default: the first) and the Pareto frontier."""
    setting = setting or list(settings)[0]
    swept = [r for r in records if r.get("sweep") and r["setting"] == setting]
    groups = _by_dataset(records)
    routers = routers or list(dict.fromkeys(r["router"] for r in records))
    fig, axes = _panel_grid(len(groups))
    for ax, (ds, recs) in zip(axes, groups.items(), strict=True):
        ref = recs[0]["references"]
        models = recs[0]["models"]
        allc, alle = [], []
        for m in models:
            allc.append(ref["models"][m]["cost"])
            alle.append(ref["models"][m]["effectiveness"])
        ax.scatter(allc, alle, s=36, color=MODEL_COLOR, alpha=0.55, zorder=3)
        for rec in (r for r in swept if r["dataset"] == ds):
            pts = rec["sweep"]["points"]
            c, e = metrics.deferral_curve(
                [p["cost"] for p in pts], [p["effectiveness"] for p in pts]
            )
            color = _router_color(routers, rec["router"])
            ax.plot(c, e, "-", marker=".", ms=3, lw=1.2, color=color)
            allc.extend(c)
            alle.extend(e)
        _cascade_points(ax, cascade, ds)  # beside the curves, not part of their frontier
        front = policy.pareto_frontier(allc, alle)
        fc, fe = np.asarray(allc)[front], np.asarray(alle)[front]
        ax.step(
            np.r_[fc, 1.0], np.r_[fe, fe[-1]], where="post", color="k", ls=":", lw=1.4, zorder=4
        )
        ax.axvline(ref["oracle"]["cost"], ls="--", lw=0.9, color=ORACLE_COLOR)
        ax.axhline(ref["oracle"]["effectiveness"], ls="--", lw=0.9, color=ORACLE_COLOR)
        ax.set_xlabel("cost (Eq. 2)")
        ax.set_ylabel("effectiveness (mean raw score)")
        ax.set_xlim(-0.04, 1.08)
        ax.grid(alpha=0.25)
        ax.set_title(f"{ds} ({recs[0]['scope']} rows, n={recs[0]['n_tasks']})", fontsize=10)
        place_labels(
            ax,
            list(np.asarray(allc[: len(models)])),
            list(np.asarray(alle[: len(models)])),
            [_short(m) for m in models],
            color="#1f3f6f",
        )
    lam = settings.get(setting)
    fig.suptitle(
        f"Deferral curves over the cost weight, {setting} (λ2={lam:g}) — {title_banner(records)}",
        fontsize=12,
        y=1.0,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    handles = [
        Line2D([], [], ls="", marker="o", color=MODEL_COLOR, alpha=0.55, label="single model"),
        Line2D([], [], ls="--", color=ORACLE_COLOR, label="oracle cost / effectiveness"),
        Line2D([], [], ls=":", color="k", lw=1.4, label="Pareto frontier (all points)"),
    ]
    handles += [
        Line2D([], [], marker=".", color=_router_color(routers, r), label=r)
        for r in dict.fromkeys(x["router"] for x in swept)
    ] + _cascade_handles(cascade)
    _side_legend(fig, handles, "one curve per router\n(APGR, CPT, AIQ: curves table)")
    save(fig, png, pdf)


def write_paper_figures(
    records: list[dict],
    settings: Mapping[str, float],
    outputs: Mapping[str, str],
    routers=None,
    cascade=None,
) -> None:
    """Figures 2-4 and the deferral curves; ``outputs`` keys: fig2_png, fig2_pdf,
    fig4_png, fig4_pdf, deferral_png, deferral_pdf. ``cascade``: cascade.csv's rows
    (codyn.evaluation.cascade_report.read_cascade_table), drawn on Figure 2 and the curves."""
    cost_performance(
        records,
        settings,
        outputs["fig2_png"],
        outputs.get("fig2_pdf"),
        routers=routers,
        cascade=cascade,
    )
    diversity(records, settings, outputs["fig4_png"], outputs.get("fig4_pdf"), routers=routers)
    deferral_curves(
        records,
        settings,
        outputs["deferral_png"],
        outputs.get("deferral_pdf"),
        routers=routers,
        cascade=cascade,
    )


def write_generalisation(
    records: list[dict], settings: Mapping[str, float], outputs: Mapping[str, str], routers=None
):
    """The A.4 table (csv, md) and Figure 5 (png, pdf); returns the table."""
    table = tables.write_generalisation(records, settings, outputs["csv"], outputs["md"])
    generalisation(records, settings, outputs["png"], outputs.get("pdf"), routers=routers)
    return table
