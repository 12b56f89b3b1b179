"""The routing policy: how a router's predicted scores become a model, at which cost weight.

Every stage that turns scores into a decision uses this module and nothing else: routers
(:meth:`codyn.routers.base.Router.route_scores`), evaluation (sweeps, calibration, the
Table 2 choice), ``codyn route`` and ``codyn serve``.

Decision at cost weight ``w`` (:func:`choose`): the argmax of ``score + w * CS^-1``
(CS^-1 = :func:`codyn.ranking.affordability`); among models within ``atol`` of the row
maximum the cheapest wins. A model scored -inf or NaN cannot be picked (a router's
``-inf`` for a model outside its candidates). The fallback order (:func:`fallback_order`)
continues the same rule over the models not yet tried.

Cost-weight range. Per prompt the chosen model's affordability never falls as ``w`` grows
(argmax of a linear function in ``w``), so the share of calls to the most expensive model
and the Eq. 2 cost are non-increasing in ``w``; the grid and the bisection below rely on
that. ``w_max`` is the smallest weight at which every prompt goes to the cheapest model it
can reach: for prompt i with cheapest reachable model k, choosing k needs
``pred[i,k] + w*a_k >= pred[i,j] + w*a_j`` for all reachable j, i.e.
``w >= (pred[i,j] - pred[i,k]) / (a_k - a_j)``. The range also runs over NEGATIVE weights,
down to ``w_min``, the largest weight at which every prompt goes to the most expensive
model it can reach: a router whose plain argmax (w = 0) already sends some prompts away
from the strong model needs the negative side to start its curve at "always the strong
model" and trade cost away from there, prompt by prompt in order of predicted advantage
(as RouteLLM's threshold sweep does).

Calibration to a target (:func:`calibrate`, :func:`smallest_weight`): the smallest weight
meeting a monotone limit, by bisection on [w_min, w_max]. Which rows the predictions
cover is the caller's choice: :mod:`codyn.evaluation.calibration` passes out-of-fold
predictions of the training split and records the chosen weights in router.json
(``calibration``), which :func:`recorded_weight` reads back at deployment.

``codyn-auto`` (:data:`AUTO_MODEL`): the model name with which a client of ``codyn serve``
asks the router to decide, at the configured weight or at ``codyn-auto:<w>``.
"""

from __future__ import annotations

import math

import numpy as np

from codyn.errors import InputError
from codyn.ranking import affordability, cheap_first_order

AUTO_MODEL = "codyn-auto"
# router.json ``calibration.method`` of weights chosen on out-of-fold predictions.
CALIBRATION_METHOD = "out-of-fold"
NO_CALIBRATION = (
    "router.json records no out-of-fold calibration (saved before it existed, or trained with "
    "calibration_folds 0); retrain it for a cost weight chosen on held-out training rows"
)


# --- the decision -----------------------------------------------------------------------------


def adjusted_scores(scores, costs, cost_weight: float) -> np.ndarray:
    """What the decision maximises: score + cost_weight * CS^-1, per row."""
    s = np.asarray(scores, dtype=float)
    return s + cost_weight * affordability(costs)[None, :]


def choose(scores, costs, cost_weight: float = 0.0, atol: float = 1e-9) -> np.ndarray:
    """Index of the chosen model per row: argmax of scores + cost_weight * CS^-1.

    Among models within ``atol`` of the row maximum the cheapest wins; a model scored -inf
    or NaN is never chosen (a row with no finite score goes to the cheapest model).
    """
    s = np.asarray(scores, dtype=float)
    if s.ndim == 1:
        s = s[None, :]
    total = np.where(np.isfinite(s), adjusted_scores(s, costs, cost_weight), -np.inf)
    best = total.max(axis=1, keepdims=True)
    order = cheap_first_order(costs)
    near = np.isclose(total[:, order], best, rtol=0.0, atol=atol)
    return order[near.argmax(axis=1)]


def fallback_order(scores_row, costs, cost_weight: float = 0.0) -> list[int]:
    """Model indices in the order to try them: the choice of :func:`choose`, then its choice
    among the rest, and so on. Models scored -inf or NaN (the router cannot pick them) are
    left out."""
    row = np.asarray(scores_row, dtype=float).copy()
    order: list[int] = []
    while np.isfinite(row).any():
        pick = int(choose(row, costs, cost_weight)[0])
        order.append(pick)
        row[pick] = -np.inf
    return order


def pareto_frontier(cost, eff) -> np.ndarray:
    """Indices of the non-dominated (cost, effectiveness) points, sorted by cost."""
    c = np.asarray(cost, dtype=float)
    e = np.asarray(eff, dtype=float)
    order = np.lexsort((-e, c))
    keep, best = [], -np.inf
    for i in order:
        if e[i] > best:
            keep.append(int(i))
            best = e[i]
    return np.array(keep, dtype=int)


def score_dict(models, row) -> dict[str, float | None]:
    """Scores by model; -inf / nan become None so the result is valid JSON."""
    return {m: (float(v) if np.isfinite(v) else None) for m, v in zip(models, row, strict=True)}


# --- the cost-weight range (module docstring) -------------------------------------------------


def switch_weights(pred, costs) -> np.ndarray:
    """Per row, the cost weight from which it goes to its cheapest reachable model."""
    p = np.asarray(pred, dtype=float)
    aff = affordability(costs)
    ok = np.isfinite(p)
    order = cheap_first_order(costs)
    first = order[np.argmax(ok[:, order], axis=1)]  # cheapest reachable model per row
    need = np.zeros(len(p))
    for i, k in enumerate(first):
        others = ok[i] & (aff < aff[k])
        if others.any():
            gain = p[i, others] - p[i, k]
            need[i] = max(0.0, float((gain / (aff[k] - aff[others])).max()))
    return need


def switch_weights_down(pred, costs) -> np.ndarray:
    """Per row, the (non-positive) weight at or below which it goes to its most
    expensive reachable model."""
    p = np.asarray(pred, dtype=float)
    aff = affordability(costs)
    ok = np.isfinite(p)
    order = cheap_first_order(costs)[::-1]
    first = order[np.argmax(ok[:, order], axis=1)]
    need = np.zeros(len(p))
    for i, e in enumerate(first):
        others = ok[i] & (aff > aff[e])
        if others.any():
            # pred_e + w*a_e >= pred_j + w*a_j  <=>  w <= (pred_e - pred_j) / (a_j - a_e)
            bound = (p[i, e] - p[i, others]) / (aff[others] - aff[e])
            need[i] = min(0.0, float(bound.min()))
    return need


def w_min(pred, costs, margin: float = 1e-6) -> float:
    """Largest weight sending every row to its most expensive reachable model (-margin)."""
    need = switch_weights_down(pred, costs)
    return float(need.min(initial=0.0)) * (1 + 1e-6) - margin


def w_max(pred, costs, margin: float = 1e-6) -> float:
    """Smallest cost weight sending every row to its cheapest reachable model (+margin)."""
    need = switch_weights(pred, costs)
    return float(need.max(initial=0.0)) * (1 + 1e-6) + margin


def weight_grid(pred, costs, n_points: int) -> np.ndarray:
    """Weights on [w_min, w_max]: ``n_points`` evenly spaced on [0, w_max] and on
    [w_min, 0], plus ``n_points`` quantiles of the per-row switch weights on each side.

    The even grid alone wastes most points: w_max is set by the one row with the
    widest preference gap, while most rows switch at small weights. The quantiles put
    points where the curve moves (evenly in the share of rows already at their
    cheapest, or most expensive, model).
    """
    lo, hi = w_min(pred, costs), w_max(pred, costs)
    up = switch_weights(pred, costs)
    down = switch_weights_down(pred, costs)
    q = np.linspace(0, 1, n_points)
    parts = [np.linspace(0.0, hi, n_points)]
    if len(up):
        parts.append(np.quantile(up * (1 + 1e-6) + 1e-9, q))
    if lo < 0:
        parts.append(np.linspace(lo, 0.0, n_points))
        parts.append(np.quantile(down * (1 + 1e-6) - 1e-9, q))
    return np.unique(np.clip(np.concatenate(parts), lo, hi))


# --- calibration to a target ------------------------------------------------------------------


def share_most_expensive(pred, costs, cost_weight: float) -> float:
    """Share of rows sent to the most expensive model at ``cost_weight`` (0 for no rows)."""
    c = np.asarray(costs, dtype=float)
    idx = choose(pred, c, cost_weight)
    return float(np.mean(idx == int(np.argmax(c)))) if len(idx) else 0.0


def smallest_weight(pred, costs, measure, limit: float, iterations: int = 60) -> float:
    """Smallest cost weight w with ``measure(w) <= limit``, for a ``measure`` that does not
    increase with w (the share of calls to the most expensive model, the Eq. 2 cost).

    Bisection on [w_min, w_max] of ``pred`` (a step function: the realised value can sit
    below the limit). w_max itself is returned when even it does not meet the limit.
    """
    lo, hi = w_min(pred, costs), w_max(pred, costs)
    if measure(lo) <= limit:
        return lo
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if measure(mid) <= limit:
            hi = mid
        else:
            lo = mid
    return hi


def calibrate(pred, costs, target_share: float, iterations: int = 60) -> float:
    """Smallest cost weight whose share of calls to the most expensive model is <= target.

    A negative weight means the router's plain choice sends fewer calls to the most
    expensive model than the target allows.
    """
    if not 0.0 <= target_share <= 1.0:
        raise ValueError("target_share must lie in [0, 1]")
    return smallest_weight(
        pred,
        costs,
        lambda w: share_most_expensive(pred, costs, w),
        target_share,
        iterations,
    )


def recorded_weight(meta: dict, target: str) -> float | None:
    """The weight router.json records for ``target`` (None: no out-of-fold calibration)."""
    cal = meta.get("calibration") or {}
    if cal.get("method") != CALIBRATION_METHOD:
        return None
    entry = (cal.get("targets") or {}).get(target)
    if entry is None:
        known = ", ".join(cal.get("targets") or {}) or "none"
        raise InputError(
            f"router.json records no calibration target {target!r} (recorded: {known})",
            field="calibration.targets",
        )
    return float(entry["cost_weight"])


# --- codyn-auto -------------------------------------------------------------------------------


def auto_weight(router, configured: float | None, target: str) -> tuple[float, str]:
    """The cost weight of ``codyn-auto`` and where it came from: ``configured`` when set,
    else the weight router.json records for ``target``, else 0 (said so)."""
    if configured is not None:
        return float(configured), "serve.cost_weight"
    meta = {"calibration": getattr(router, "calibration", None)}
    weight = recorded_weight(meta, target)
    if weight is None:
        return 0.0, f"w = 0: {NO_CALIBRATION}"
    cal = meta["calibration"]
    return weight, (
        f"target {target}, chosen on out-of-fold predictions of {cal['n_rows']} training "
        f"prompts ({cal['folds']} folds)"
    )


def parse_auto_model(name: str, default_weight: float) -> float | None:
    """Cost weight for ``codyn-auto`` / ``codyn-auto:W``; None when ``name`` is not an auto model.

    Raises ValueError for a malformed or negative weight."""
    if name == AUTO_MODEL:
        return float(default_weight)
    prefix = AUTO_MODEL + ":"
    if not name.startswith(prefix):
        return None
    weight = float(name[len(prefix) :])
    if not math.isfinite(weight) or weight < 0:
        raise ValueError(f"cost weight must be a finite number >= 0, got {weight}")
    return weight
