"""Routing metrics: the paper's (section 6, A.3) and the field's (RouteLLM, RouterBench).

Notation. A router on ``n`` prompts and a portfolio of ``M`` models with relative
per-call costs ``cost_m`` chooses model ``r(i)`` for prompt ``i``; ``s[i, m]`` is the raw
score of model ``m`` on prompt ``i`` (the matrix ``score::m``).

Paper metrics
-------------
- effectiveness  E = (1/n) * sum_i s[i, r(i)]                              (6.2)
- share          share_m = |{i : r(i) = m}| / n   (diversity, A.3: share of calls)
- cost (Eq. 2)   C = sum_m share_m * cost_m / max_m cost_m                   (6.1.2)
  C is 1 when every call goes to the most expensive model and
  cost_cheapest / cost_max when every call goes to the cheapest one.
- dollars        usd = (1/n) * sum_i usd[i, r(i)] where every chosen call's dollar
  cost is known (NaN otherwise).
- oracle         r(i) = argmax_m s[i, m], cheapest among ties.
- SBS            the single model with the best mean score on the reference rows
  (the train split in Table 2), cheapest among ties.

Curve metrics (beyond the paper), generalised from two models to ``M``
------------------------------------------------------------------------
A router with a cost knob is swept over cost weights ``w`` (see
:mod:`codyn.evaluation.sweep`); each ``w`` gives a point ``(C(w), E(w))``. The
*deferral curve* ``D`` is the piecewise-linear interpolation of those points sorted by
cost (for equal costs the best effectiveness counts). For ``c`` above the highest
swept cost ``D`` stays at that point's effectiveness (spending more is never
forced); below the lowest swept cost the router has no operating point, so ``D``
gives no credit there (weak model's effectiveness for PGR, 0 for AIQ).

Let *weak* = the cheapest model (lowest cost) and *strong* = the SBS of the rows
evaluated, with effectiveness ``E_w``, ``E_s`` and Eq. 2 costs ``c_w``, ``c_s``.

- performance gap recovered  PGR(E) = (E - E_w) / (E_s - E_w)          (RouteLLM)
- APGR = (1 / (c_s - c_w)) * integral_{c_w}^{c_s} PGR(D(c)) dc
  With two models Eq. 2 cost is an affine map of the share of strong calls, so this
  is exactly RouteLLM's area under PGR versus "% calls to the strong model".
- CPT(x) = min { c : PGR(D(c)) >= x }, in Eq. 2 cost units (RouteLLM's "calls to
  strong model needed for x% of the gap"); NaN when the curve never gets there.
- AIQ (RouterBench) = (1 / (c_hi - c_lo)) * integral_{c_lo}^{c_hi} H(c) dc over
  the full cost range c_lo = cost_cheapest / cost_max, c_hi = 1, where ``H`` is the
  non-decreasing upper convex hull of the router's points (mixing two operating
  points at random reaches any point on the segment between them), flat after its
  best point and 0 below the router's cheapest point (as RouterBench integrates from
  the first point).
- Pareto frontier (:func:`codyn.policy.pareto_frontier`, also the routers' ``pareto``
  candidates): the points no other point dominates (cost <= and effectiveness >= with
  one of them strict), sorted by cost.

APGR and CPT are NaN when the gap is empty (E_s <= E_w or c_s <= c_w, e.g. the
cheapest model is also the best).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from codyn import policy, ranking


def _as_choice(choice, n_models: int) -> np.ndarray:
    idx = np.asarray(choice, dtype=int).ravel()
    if idx.size and (idx.min() < 0 or idx.max() >= n_models):
        raise ValueError(f"model index out of range 0..{n_models - 1}")
    return idx


def effectiveness(scores, choice) -> float:
    """Mean raw score of the chosen model per row."""
    s = np.asarray(scores, dtype=float)
    idx = _as_choice(choice, s.shape[1])
    if len(idx) != s.shape[0]:
        raise ValueError(f"{len(idx)} choices for {s.shape[0]} rows")
    if len(idx) == 0:
        return float("nan")
    return float(s[np.arange(len(idx)), idx].mean())


def shares(choice, n_models: int) -> np.ndarray:
    """Share of calls per model (diversity, A.3); sums to 1."""
    idx = _as_choice(choice, n_models)
    if len(idx) == 0:
        return np.zeros(n_models)
    return np.bincount(idx, minlength=n_models) / len(idx)


def eq2_cost(share, costs) -> float:
    """Eq. 2: sum_m share_m * cost_m / max_m cost_m."""
    share = np.asarray(share, dtype=float)
    c = np.asarray(costs, dtype=float)
    if share.shape != c.shape:
        raise ValueError(f"{share.shape[0]} shares for {c.shape[0]} costs")
    if c.max() <= 0:
        raise ValueError("the most expensive model must have a positive cost")
    return float((share * c).sum() / c.max())


def choice_cost(choice, costs) -> float:
    """Eq. 2 cost of a routing decision."""
    c = np.asarray(costs, dtype=float)
    return eq2_cost(shares(choice, len(c)), c)


def usd_per_prompt(usd, choice) -> tuple[float, int]:
    """(mean dollars of the chosen calls, how many of them have a known price).

    The mean is NaN unless every chosen call's price is known: a mean over the known
    ones alone would look cheaper than it is.
    """
    u = np.asarray(usd, dtype=float)
    idx = _as_choice(choice, u.shape[1])
    picked = u[np.arange(len(idx)), idx]
    known = int(np.isfinite(picked).sum())
    if len(picked) == 0 or known < len(picked):
        return float("nan"), known
    return float(picked.mean()), known


def oracle_choice(scores, costs) -> np.ndarray:
    """Best score per row, cheapest among ties."""
    return policy.choose(scores, costs, cost_weight=0.0)


def single_best(scores, costs) -> int:
    """Index of the model with the best mean score, cheapest among ties."""
    mean = np.asarray(scores, dtype=float).mean(axis=0)
    return int(policy.choose(mean[None, :], costs, cost_weight=0.0)[0])


def cheapest(costs) -> int:
    return int(ranking.cheap_first_order(costs)[0])


def performance_gap_recovered(e, e_weak: float, e_strong: float):
    """(E - E_w) / (E_s - E_w); NaN when the gap is empty."""
    gap = e_strong - e_weak
    e = np.asarray(e, dtype=float)
    if not gap > 0:
        return np.full_like(e, np.nan) if e.ndim else float("nan")
    out = (e - e_weak) / gap
    return out if out.ndim else float(out)


def deferral_curve(cost, eff) -> tuple[np.ndarray, np.ndarray]:
    """Sweep points sorted by cost, one per distinct cost (best effectiveness kept)."""
    c = np.asarray(cost, dtype=float)
    e = np.asarray(eff, dtype=float)
    if c.shape != e.shape or c.ndim != 1 or len(c) == 0:
        raise ValueError("cost and effectiveness must be equal-length non-empty 1-D arrays")
    if not (np.isfinite(c).all() and np.isfinite(e).all()):
        raise ValueError("non-finite cost or effectiveness on the curve")
    order = np.lexsort((-e, c))
    c, e = c[order], e[order]
    keep = np.r_[True, np.diff(c) > 0]
    return c[keep], e[keep]


def _curve_value(xc: np.ndarray, ye: np.ndarray, x, below: float) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    out = np.interp(x, xc, ye)
    return np.where(x < xc[0], below, out)


def _integrate(xc, ye, lo: float, hi: float, below: float) -> float:
    """Exact integral of the piecewise-linear curve over [lo, hi]."""
    inner = xc[(xc > lo) & (xc < hi)]
    # Just below the first point the curve jumps from `below` to its first value.
    pts = np.unique(np.r_[lo, inner, hi])
    total = 0.0
    for a, b in zip(pts[:-1], pts[1:], strict=True):
        if b <= xc[0]:
            total += below * (b - a)
            continue
        a2 = max(a, xc[0])
        total += below * (a2 - a)
        ya, yb = np.interp([a2, b], xc, ye)
        total += 0.5 * (ya + yb) * (b - a2)
    return float(total)


def apgr(cost, eff, e_weak: float, e_strong: float, c_weak: float, c_strong: float) -> float:
    """Average performance gap recovered over [c_weak, c_strong] (see module docstring)."""
    if not (e_strong > e_weak and c_strong > c_weak):
        return float("nan")
    xc, ye = deferral_curve(cost, eff)
    pgr = performance_gap_recovered(ye, e_weak, e_strong)
    return _integrate(xc, pgr, c_weak, c_strong, below=0.0) / (c_strong - c_weak)


def cpt(cost, eff, level: float, e_weak: float, e_strong: float) -> float:
    """Lowest Eq. 2 cost at which the deferral curve recovers ``level`` of the gap."""
    if not e_strong > e_weak:
        return float("nan")
    xc, ye = deferral_curve(cost, eff)
    pgr = performance_gap_recovered(ye, e_weak, e_strong)
    if pgr[0] >= level:
        return float(xc[0])
    for i in range(1, len(xc)):
        if pgr[i] >= level:
            # linear crossing inside the segment (pgr[i-1] < level <= pgr[i])
            t = (level - pgr[i - 1]) / (pgr[i] - pgr[i - 1])
            return float(xc[i - 1] + t * (xc[i] - xc[i - 1]))
    return float("nan")


def nondecreasing_hull(cost, eff) -> tuple[np.ndarray, np.ndarray]:
    """Upper convex hull of the points, cut at its best point (non-decreasing)."""
    xc, ye = deferral_curve(cost, eff)
    hull: list[int] = []
    for i in range(len(xc)):
        # pop while the last two hull points and i do not turn clockwise (upper hull)
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            cross = (xc[b] - xc[a]) * (ye[i] - ye[a]) - (ye[b] - ye[a]) * (xc[i] - xc[a])
            if cross >= 0:
                hull.pop()
            else:
                break
        hull.append(i)
    hx, hy = xc[hull], ye[hull]
    top = int(np.argmax(hy))
    return hx[: top + 1], hy[: top + 1]


def aiq(cost, eff, c_lo: float, c_hi: float = 1.0) -> float:
    """RouterBench's AIQ over [c_lo, c_hi] (see module docstring)."""
    if not c_hi > c_lo:
        raise ValueError("c_hi must exceed c_lo")
    hx, hy = nondecreasing_hull(cost, eff)
    return _integrate(hx, hy, c_lo, c_hi, below=0.0) / (c_hi - c_lo)


def summarise_choice(scores, costs, choice, usd=None, models: Sequence[str] | None = None) -> dict:
    """Effectiveness, Eq. 2 cost, dollars and shares of one routing decision."""
    s = np.asarray(scores, dtype=float)
    c = np.asarray(costs, dtype=float)
    idx = _as_choice(choice, s.shape[1])
    share = shares(idx, len(c))
    names = list(models) if models is not None else [str(i) for i in range(len(c))]
    out = {
        "effectiveness": effectiveness(s, idx),
        "cost": eq2_cost(share, c),
        "shares": dict(zip(names, share.tolist(), strict=True)),
        "share_most_expensive": float(share[int(np.argmax(c))]),
        "n": len(idx),
    }
    if usd is not None:
        out["usd_per_prompt"], out["usd_known"] = usd_per_prompt(usd, idx)
    return out


def curve_metrics(
    cost,
    eff,
    e_weak: float,
    e_strong: float,
    c_weak: float,
    c_strong: float,
    c_lo: float,
    levels: Sequence[float] = (0.5, 0.8),
) -> dict:
    """APGR, CPT at each level and AIQ of one swept router."""
    return {
        "apgr": apgr(cost, eff, e_weak, e_strong, c_weak, c_strong),
        "cpt": {f"{lv:g}": cpt(cost, eff, lv, e_weak, e_strong) for lv in levels},
        "aiq": aiq(cost, eff, c_lo, 1.0),
    }


def paired_bootstrap(diff, n_resamples: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Mean of per-row paired differences (router minus reference on the same rows) and its
    percentile bootstrap interval: rows are resampled with replacement, so the interval
    carries the test split's sampling noise, which is what a single split's number hides."""
    d = np.asarray(diff, dtype=float)
    if d.ndim != 1 or len(d) == 0:
        raise ValueError("paired_bootstrap needs a non-empty 1-D array of differences")
    if n_resamples < 1:
        raise ValueError("n_resamples must be >= 1")
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(int(n_resamples), len(d)))].mean(axis=1)
    alpha = (1.0 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return {"mean": float(d.mean()), "lo": float(lo), "hi": float(hi), "level": level,
            "n_resamples": int(n_resamples), "seed": int(seed)}  # fmt: skip
