"""The routing policy (codyn.policy): one decision for routers, evaluation, route and serve."""

from __future__ import annotations

import numpy as np
import pytest

from codyn import policy
from codyn.errors import InputError
from codyn.routers.baselines import RandomRouter

COSTS = np.array([1.0, 5.0, 72.0])
MODELS = ["small", "mid", "big"]


def fitted_router() -> RandomRouter:
    router = RandomRouter()
    router.models, router.costs = list(MODELS), COSTS.copy()
    return router


def test_router_route_and_fallback_make_the_same_choice():
    rng = np.random.default_rng(0)
    scores = rng.random((200, 3))
    scores[rng.random((200, 3)) < 0.2] = -np.inf  # models a router cannot pick
    scores[rng.random((200, 3)) < 0.05] = np.nan
    scores[:5] = [0.5, 0.5, 0.5]  # ties: the cheapest wins
    router = fitted_router()
    for w in (-0.5, 0.0, 0.1, 2.0):
        chosen = policy.choose(scores, COSTS, w)
        assert router.route_scores(scores, w) == [MODELS[i] for i in chosen]
        for row, pick in zip(scores, chosen, strict=True):
            order = policy.fallback_order(row, COSTS, w)
            assert (order[0] if order else 0) == pick
            assert sorted(order) == np.flatnonzero(np.isfinite(row)).tolist()
    assert (policy.choose(scores[:5], COSTS, 0.0) == 0).all()


def test_models_without_a_finite_score_are_never_chosen():
    assert policy.choose([[np.nan, 0.1, 0.2]], COSTS).tolist() == [2]
    assert policy.choose([[0.9, -np.inf, 0.2]], COSTS, 0.0).tolist() == [0]
    # a row with nothing to pick goes to the cheapest model (what route_scores always did)
    assert policy.choose([[np.nan, -np.inf, np.nan]], COSTS).tolist() == [0]


def test_calibrate_meets_the_share_and_is_the_smallest_such_weight():
    rng = np.random.default_rng(1)
    pred = rng.random((300, 3))
    w = policy.calibrate(pred, COSTS, 0.3)
    assert policy.share_most_expensive(pred, COSTS, w) <= 0.3
    assert policy.share_most_expensive(pred, COSTS, w - 1e-6) > 0.3
    lo, hi = policy.w_min(pred, COSTS), policy.w_max(pred, COSTS)
    assert (policy.choose(pred, COSTS, lo) == 2).all()
    assert (policy.choose(pred, COSTS, hi) == 0).all()
    grid = policy.weight_grid(pred, COSTS, 11)
    assert grid[0] == pytest.approx(lo) and grid[-1] == pytest.approx(hi)
    with pytest.raises(ValueError):
        policy.calibrate(pred, COSTS, 1.5)


def test_auto_weight_prefers_configured_then_recorded_then_zero():
    router = fitted_router()
    assert policy.auto_weight(router, 0.25, "parity") == (0.25, "serve.cost_weight")
    weight, source = policy.auto_weight(router, None, "parity")
    assert weight == 0.0 and policy.NO_CALIBRATION in source
    router.calibration = {
        "method": policy.CALIBRATION_METHOD,
        "n_rows": 40,
        "folds": 5,
        "targets": {"parity": {"cost_weight": 0.125}},
    }
    weight, source = policy.auto_weight(router, None, "parity")
    assert weight == 0.125 and "40 training prompts (5 folds)" in source
    with pytest.raises(InputError, match="budget-0.5"):
        policy.auto_weight(router, None, "budget-0.5")


def test_score_dict_is_json_safe():
    assert policy.score_dict(MODELS, [0.5, -np.inf, np.nan]) == {
        "small": 0.5,
        "mid": None,
        "big": None,
    }


def test_fallback_order_follows_choose_and_skips_unpickable():
    row = np.array([0.2, 0.9, 0.9])
    assert policy.fallback_order(row, COSTS, 0.0) == [1, 2, 0]  # tie 1/2 -> cheaper first
    assert policy.fallback_order(row, COSTS, 0.0)[0] == policy.choose(row, COSTS, 0.0)[0]
    assert policy.fallback_order(row, COSTS, 100.0) == [0, 1, 2]
    assert policy.fallback_order(np.array([0.5, -np.inf, 0.1]), COSTS, 0.0) == [0, 2]
    assert policy.fallback_order(np.array([-np.inf] * 3), COSTS, 0.0) == []


def test_parse_auto_model():
    assert policy.parse_auto_model("codyn-auto", 0.3) == 0.3
    assert policy.parse_auto_model("codyn-auto:0.25", 0.3) == 0.25
    assert policy.parse_auto_model("sim-small", 0.3) is None
    for bad in ("codyn-auto:x", "codyn-auto:-1", "codyn-auto:nan", "codyn-auto:inf"):
        with pytest.raises(ValueError):
            policy.parse_auto_model(bad, 0.0)
