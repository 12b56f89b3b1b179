"""Ranking scores (paper 6.1.3): the routers' regression targets and the cost term.

RS = lambda1 * ES + lambda2 * CS^-1 with affordability CS^-1 = 1 - (CS - 1)/(max CS - 1)
(1 for the cheapest model, 0 for the most expensive). The decision built on them (argmax
of score + w * CS^-1, ties to the cheaper model) is :mod:`codyn.policy`.
"""

from __future__ import annotations

import numpy as np


def affordability(costs) -> np.ndarray:
    """CS^-1 per model, in [0, 1]; 1 = cheapest, 0 = most expensive."""
    c = np.asarray(costs, dtype=float)
    if c.ndim != 1 or len(c) == 0:
        raise ValueError("costs must be a non-empty 1-D sequence")
    if (c < 0).any():
        raise ValueError("costs must be non-negative")
    lo, hi = c.min(), c.max()
    if hi == lo:
        return np.ones_like(c)
    # With costs rescaled so the cheapest is 1 (the paper's ratios 1 ... 72),
    # (CS - 1)/(max CS - 1) equals (c - min)/(max - min); this form also allows a free model.
    return 1.0 - (c - lo) / (hi - lo)


def ranking_score(es, costs, lambda1: float = 1.0, lambda2: float = 0.0) -> np.ndarray:
    """RS for an (n x m) effectiveness array and m costs."""
    es = np.asarray(es, dtype=float)
    return lambda1 * es + lambda2 * affordability(costs)[None, :]


def cheap_first_order(costs) -> np.ndarray:
    """Model indices from cheapest to most expensive (stable)."""
    return np.argsort(np.asarray(costs, dtype=float), kind="stable")
