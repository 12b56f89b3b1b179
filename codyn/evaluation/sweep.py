"""Cost-weight sweep, deferral curve and calibration of the cost weight.

A learned router outputs one preference per model (higher = better; -inf where it
cannot pick that model). At deployment the choice for cost weight ``w`` is
``codyn.ranking.choose(pred, costs, w)``: the argmax of pred + w * CS^-1, cheaper
model on ties. Per prompt the chosen model's affordability never falls as ``w``
grows (argmax of a linear function in ``w``), so the share of calls to the most
expensive model and the Eq. 2 cost are non-increasing in ``w``; the sweep and the
bisection below rely on that.

``w_max`` is the smallest weight at which every prompt goes to the cheapest model it
can reach: for prompt i with cheapest reachable model k, choosing k needs
``pred[i,k] + w*a_k >= pred[i,j] + w*a_j`` for all reachable j, i.e.
``w >= (pred[i,j] - pred[i,k]) / (a_k - a_j)``.

The sweep also runs over NEGATIVE weights, down to ``w_min``, the largest weight at
which every prompt goes to the most expensive model it can reach. A learned router
whose plain argmax (w = 0) already sends some prompts away from the strong model may
sit below the single best model at w = 0; the negative side of the knob is what lets
its curve start at "always the strong model" and trade away cost from there, prompt by
prompt in order of predicted advantage, as RouteLLM's threshold sweep does. Without it
such a router can never be credited with reaching the strong model's quality.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codyn import ranking
from codyn.evaluation import metrics


def _reachable(pred: np.ndarray) -> np.ndarray:
    return np.isfinite(pred)


def switch_weights(pred, costs) -> np.ndarray:
    """Per row, the cost weight from which it goes to its cheapest reachable model."""
    p = np.asarray(pred, dtype=float)
    aff = ranking.affordability(costs)
    ok = _reachable(p)
    order = ranking.cheap_first_order(costs)
    # cheapest reachable model per row
    first = order[np.argmax(ok[:, order], axis=1)]
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
    aff = ranking.affordability(costs)
    ok = _reachable(p)
    order = ranking.cheap_first_order(costs)[::-1]
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


def decide(pred, costs, cost_weight: float) -> np.ndarray:
    """Model index per row at ``cost_weight``."""
    return ranking.choose(pred, costs, cost_weight=cost_weight)


@dataclass
class SweepPoint:
    cost_weight: float
    cost: float
    effectiveness: float
    share_most_expensive: float
    shares: list[float]

    def as_dict(self, models) -> dict:
        return {
            "cost_weight": self.cost_weight,
            "cost": self.cost,
            "effectiveness": self.effectiveness,
            "share_most_expensive": self.share_most_expensive,
            "shares": dict(zip(models, self.shares, strict=True)),
        }


def sweep(pred, scores, costs, n_points: int) -> list[SweepPoint]:
    """Evaluate the router on :func:`weight_grid` (from w_min, every row at its most
    expensive reachable model, to w_max, every row at its cheapest)."""
    if n_points < 2:
        raise ValueError("a sweep needs at least two points")
    c = np.asarray(costs, dtype=float)
    top = int(np.argmax(c))
    out = []
    for w in weight_grid(pred, c, n_points):
        idx = decide(pred, c, float(w))
        share = metrics.shares(idx, len(c))
        out.append(
            SweepPoint(
                cost_weight=float(w),
                cost=metrics.eq2_cost(share, c),
                effectiveness=metrics.effectiveness(scores, idx),
                share_most_expensive=float(share[top]),
                shares=share.tolist(),
            )
        )
    return out


def share_most_expensive(pred, costs, cost_weight: float) -> float:
    c = np.asarray(costs, dtype=float)
    idx = decide(pred, c, cost_weight)
    return float(metrics.shares(idx, len(c))[int(np.argmax(c))])


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
    expensive model than the target allows. Which rows ``pred`` holds is the caller's
    choice: :mod:`codyn.evaluation.calibration` passes out-of-fold predictions of the
    training split, never the rows the router was fitted on.
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
