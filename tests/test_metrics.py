"""Metrics against values computed by hand on tiny tables (see codyn.evaluation.metrics)."""

from __future__ import annotations

import numpy as np
import pytest

from codyn import policy
from codyn.evaluation import metrics

COSTS = [1.0, 5.0, 72.0]


def test_eq2_cost_by_hand():
    # half the calls to the cheapest, half to the most expensive
    assert metrics.eq2_cost([0.5, 0.0, 0.5], COSTS) == pytest.approx((0.5 * 1 + 0.5 * 72) / 72)
    assert metrics.eq2_cost([0, 0, 1], COSTS) == 1.0
    assert metrics.eq2_cost([1, 0, 0], COSTS) == pytest.approx(1 / 72)
    # the paper's 5-model portfolio, uniform routing: (1+1.6+5+16+72)/5/72
    paper = [1, 1.6, 5, 16, 72]
    assert metrics.eq2_cost([0.2] * 5, paper) == pytest.approx(95.6 / 5 / 72)
    assert metrics.choice_cost([0, 2, 2, 1], COSTS) == pytest.approx((1 + 72 + 72 + 5) / 4 / 72)
    with pytest.raises(ValueError):
        metrics.eq2_cost([1.0, 0.0], COSTS)


def test_effectiveness_and_shares_by_hand():
    scores = np.array([[1, 0, 0.5], [0, 1, 0.25], [1, 1, 1]])
    assert metrics.effectiveness(scores, [0, 0, 2]) == pytest.approx((1 + 0 + 1) / 3)
    assert metrics.effectiveness(scores, [2, 2, 2]) == pytest.approx((0.5 + 0.25 + 1) / 3)
    assert metrics.shares([0, 0, 2], 3).tolist() == pytest.approx([2 / 3, 0, 1 / 3])
    with pytest.raises(ValueError):
        metrics.effectiveness(scores, [0, 1])
    with pytest.raises(ValueError):
        metrics.effectiveness(scores, [0, 1, 3])


def test_oracle_sbs_and_dollars():
    scores = np.array([[1, 1, 1], [0, 1, 1], [0, 0, 0], [0, 0, 1]], dtype=float)
    # ties go to the cheaper model; an all-zero row goes to the cheapest
    assert metrics.oracle_choice(scores, COSTS).tolist() == [0, 1, 0, 2]
    assert metrics.single_best(scores, COSTS) == 2  # means .25 .5 .75
    assert metrics.single_best(scores[:2], COSTS) == 1  # mid and big tie at 1.0 -> cheaper
    usd = np.array([[0.1, 0.2, np.nan]] * 4)
    assert metrics.usd_per_prompt(usd, [0, 1, 0, 1]) == (pytest.approx(0.15), 4)
    mean, known = metrics.usd_per_prompt(usd, [0, 2, 0, 1])
    assert np.isnan(mean) and known == 3


# A two-model curve where every number is easy by hand: costs 1 and 2 give Eq. 2
# costs 0.5 (all weak) and 1.0 (all strong); E_w = 0.2, E_s = 0.6.
CURVE_C = [1.0, 0.75, 0.5]
CURVE_E = [0.6, 0.5, 0.2]


def test_pgr_and_apgr_by_hand():
    assert metrics.performance_gap_recovered(0.5, 0.2, 0.6) == pytest.approx(0.75)
    assert np.isnan(metrics.performance_gap_recovered(0.5, 0.6, 0.6))
    # PGR at the points: 0, .75, 1 -> trapezoids .25*(0+.75)/2 + .25*(.75+1)/2 = .3125 over width .5
    assert metrics.apgr(CURVE_C, CURVE_E, 0.2, 0.6, 0.5, 1.0) == pytest.approx(0.625)
    # a router that always matches the strong model recovers the whole gap
    assert metrics.apgr([0.5, 1.0], [0.6, 0.6], 0.2, 0.6, 0.5, 1.0) == pytest.approx(1.0)
    # a router whose cheapest point costs .75 gets no credit on [.5, .75)
    assert metrics.apgr([0.75, 1.0], [0.6, 0.6], 0.2, 0.6, 0.5, 1.0) == pytest.approx(0.5)
    # the curve is held flat beyond its dearest point
    assert metrics.apgr([0.5, 0.75], [0.2, 0.6], 0.2, 0.6, 0.5, 1.0) == pytest.approx(
        (0.125 + 0.25) / 0.5
    )
    assert np.isnan(metrics.apgr(CURVE_C, CURVE_E, 0.6, 0.6, 0.5, 1.0))


def test_two_model_apgr_equals_routellm_definition():
    # With two models Eq. 2 cost is affine in the share of strong calls, so APGR equals
    # the area under PGR versus % strong calls (RouteLLM), computed here directly.
    strong_share = np.array([0.0, 0.1, 0.3, 0.6, 1.0])
    eff = np.array([0.3, 0.42, 0.55, 0.6, 0.62])
    costs = [2.0, 9.0]
    eq2 = np.array([metrics.eq2_cost([1 - s, s], costs) for s in strong_share])
    pgr = (eff - 0.3) / (0.62 - 0.3)
    routellm = float(np.sum((pgr[1:] + pgr[:-1]) / 2 * np.diff(strong_share)))
    assert metrics.apgr(eq2, eff, 0.3, 0.62, eq2[0], eq2[-1]) == pytest.approx(routellm)


def test_cpt_by_hand():
    # 50%: on segment .5 -> .75 (PGR 0 -> .75): .5 + .25 * (.5/.75)
    assert metrics.cpt(CURVE_C, CURVE_E, 0.5, 0.2, 0.6) == pytest.approx(0.5 + 0.25 * 2 / 3)
    # 80%: on segment .75 -> 1 (PGR .75 -> 1): .75 + .25 * .2
    assert metrics.cpt(CURVE_C, CURVE_E, 0.8, 0.2, 0.6) == pytest.approx(0.8)
    assert metrics.cpt(CURVE_C, CURVE_E, 0.0, 0.2, 0.6) == pytest.approx(0.5)
    assert np.isnan(metrics.cpt([0.5, 1.0], [0.2, 0.4], 0.8, 0.2, 0.6))  # never gets there
    # a curve already above the level at its cheapest point
    assert metrics.cpt([0.3, 1.0], [0.7, 0.7], 0.5, 0.2, 0.6) == pytest.approx(0.3)


def test_aiq_by_hand():
    # concave curve: area .25*(.2+.5)/2 + .25*(.5+.6)/2 = .225 over [.5, 1]
    assert metrics.aiq(CURVE_C, CURVE_E, c_lo=0.5) == pytest.approx(0.45)
    # a point under the chord is bridged by the hull: area .5*(.2+.6)/2 = .2
    assert metrics.aiq([0.5, 0.6, 1.0], [0.2, 0.2, 0.6], c_lo=0.5) == pytest.approx(0.4)
    # a dearer but worse point is cut: hull (.5,.2) -> (.9,.7) then flat .7 to 1
    expected = (0.4 * (0.2 + 0.7) / 2 + 0.1 * 0.7) / 0.5
    assert metrics.aiq([0.5, 0.9, 1.0], [0.2, 0.7, 0.6], c_lo=0.5) == pytest.approx(expected)
    # nothing below the router's cheapest point: [.5,.75) counts 0
    assert metrics.aiq([0.75, 1.0], [0.4, 0.4], c_lo=0.5) == pytest.approx(0.2)
    hx, hy = metrics.nondecreasing_hull([0.5, 0.6, 0.9, 1.0], [0.2, 0.2, 0.7, 0.6])
    assert hx.tolist() == [0.5, 0.9] and hy.tolist() == [0.2, 0.7]


def test_pareto_frontier_by_hand():
    c = [0.1, 0.2, 0.3, 0.3, 0.05, 0.9]
    e = [0.3, 0.2, 0.5, 0.4, 0.1, 0.5]
    assert policy.pareto_frontier(c, e).tolist() == [4, 0, 2]


def test_deferral_curve_keeps_best_point_per_cost():
    c, e = metrics.deferral_curve([0.5, 0.2, 0.5], [0.1, 0.3, 0.4])
    assert c.tolist() == [0.2, 0.5] and e.tolist() == [0.3, 0.4]
    with pytest.raises(ValueError):
        metrics.deferral_curve([0.1, np.nan], [0.1, 0.2])


def test_choose_handles_blocked_models():
    # -inf marks a model the router cannot pick (RoRF pairs); it is never chosen
    pred = np.array([[-np.inf, 0.1, 0.5], [-np.inf, 0.9, -np.inf]])
    assert policy.choose(pred, COSTS, cost_weight=0.0).tolist() == [2, 1]
    assert policy.choose(pred, COSTS, cost_weight=100.0).tolist() == [1, 1]


def test_summarise_choice():
    scores = np.array([[1, 0, 1], [0, 0, 1]], dtype=float)
    out = metrics.summarise_choice(scores, COSTS, [0, 2], models=["a", "b", "c"])
    assert out["effectiveness"] == pytest.approx(1.0)  # row 0 -> a (1), row 1 -> c (1)
    assert out["cost"] == pytest.approx((1 + 72) / 2 / 72)
    assert out["share_most_expensive"] == pytest.approx(0.5)
    assert out["shares"] == {"a": 0.5, "b": 0.0, "c": 0.5}
