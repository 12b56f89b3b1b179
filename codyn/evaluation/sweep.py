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


def w_max(pred, costs, margin: float = 1e-6) -> float:
    """Smallest cost weight sending every row to its cheapest reachable model (+margin)."""
    need = switch_weights(pred, costs)
    return float(need.max(initial=0.0)) * (1 + 1e-6) + margin


def weight_grid(pred, costs, n_points: int) -> np.ndarray:
    """``n_points`` weights evenly spaced on [0, w_max] plus ``n_points`` quantiles of the
    per-row switch weights.

    The even grid alone wastes most points: w_max is set by the one row with the
    widest preference gap, while most rows switch at small weights. The quantiles put
    points where the curve moves (evenly in the share of rows already at their
    cheapest model).
    """
    hi = w_max(pred, costs)
    need = switch_weights(pred, costs)
    quant = np.quantile(need * (1 + 1e-6) + 1e-9, np.linspace(0, 1, n_points)) if len(need) else []
    return np.unique(np.clip(np.r_[np.linspace(0.0, hi, n_points), quant], 0.0, hi))


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
    """Evaluate the router on :func:`weight_grid` (from 0 to w_max, so the last point
    routes every row to its cheapest reachable model)."""
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


def calibrate(pred_train, costs, target_share: float, iterations: int = 60) -> float:
    """Smallest cost weight whose share of calls to the most expensive model is <= target.

    Found by bisection on [0, w_max] of the train rows (the share is a non-increasing
    step function of the weight, so the realised share can sit below the target).
    """
    if not 0.0 <= target_share <= 1.0:
        raise ValueError("target_share must lie in [0, 1]")
    if share_most_expensive(pred_train, costs, 0.0) <= target_share:
        return 0.0
    lo, hi = 0.0, w_max(pred_train, costs)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if share_most_expensive(pred_train, costs, mid) <= target_share:
            hi = mid
        else:
            lo = mid
    return hi
