"""Cost-weight sweep: the router's operating points (deferral curve) over the weight range.

The decision at each weight, the range [w_min, w_max] and the grid over it are the
routing policy's (:mod:`codyn.policy`); here each point is scored: Eq. 2 cost,
effectiveness, share of calls per model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codyn import policy
from codyn.evaluation import metrics


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
    """Evaluate the router on :func:`codyn.policy.weight_grid` (from w_min, every row at its
    most expensive reachable model, to w_max, every row at its cheapest)."""
    if n_points < 2:
        raise ValueError("a sweep needs at least two points")
    c = np.asarray(costs, dtype=float)
    top = int(np.argmax(c))
    out = []
    for w in policy.weight_grid(pred, c, n_points):
        idx = policy.choose(pred, c, float(w))
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
