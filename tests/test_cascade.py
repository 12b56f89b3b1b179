"""The verified cascade: accept rule, cost accounting across stages, train-only choice."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from codyn.errors import InputError
from codyn.matrix import SCORE_PREFIX, USD_PREFIX, VISIBLE_PREFIX, Matrix
from codyn.routers.cascade import (
    Arrays,
    Cascade,
    candidate_cascades,
    choose_cascade,
    evaluate_seeds,
    evaluate_split,
    run_cascade,
    summarise_seeds,
)

NAN = math.nan
MODELS = ["cheap", "mid", "big"]
COSTS = np.array([1.0, 4.0, 20.0])


def _arrays(scores, visible, usd=None, router=None):
    scores = np.asarray(scores, dtype=float)
    n = scores.shape[0]
    usd = np.tile(COSTS / 1000, (n, 1)) if usd is None else np.asarray(usd, dtype=float)
    return Arrays(
        [f"t{i}" for i in range(n)], MODELS, scores, np.asarray(visible, dtype=float),
        COSTS, usd, None if router is None else np.asarray(router),
    )  # fmt: skip


def test_accept_rule_no_example_rule_and_costs():
    scores = [[1, 1, 1], [0, 1, 1], [0, 0, 1], [1, 0, 1], [0, 0, 0]]
    visible = [
        [1.0, 1.0, 1.0],  # cheap passes its examples: stop at stage 0
        [0.0, 1.0, 1.0],  # cheap fails, mid passes: stop at 1
        [0.5, 0.5, 0.0],  # both fail (half the examples): the last stage answers
        [NAN, 1.0, 1.0],  # no examples: accept or escalate by rule
        [1.0, NAN, NAN],  # cheap passes but is wrong: a false accept
    ]
    arrays = _arrays(scores, visible)
    per, summ = run_cascade(arrays, Cascade(("cheap", "mid", "big")))
    assert per["stop_stage"].tolist() == [0, 1, 2, 0, 0]
    assert per["model"].tolist() == ["cheap", "mid", "big", "cheap", "cheap"]
    assert per["reason"].tolist() == [
        "examples passed", "examples passed", "last stage", "no examples", "examples passed"
    ]  # fmt: skip
    # Every stage called is paid: 1, 1+4, 1+4+20, 1, 1 over the max cost 20.
    assert np.allclose(per["cost"], np.array([1, 5, 25, 1, 1]) / 20)
    assert np.allclose(per["usd"], np.array([1, 5, 25, 1, 1]) / 1000)
    assert per["n_calls"].tolist() == [1, 2, 3, 1, 1]
    assert summ["effectiveness"] == pytest.approx(4 / 5)
    assert summ["cost"] == pytest.approx(33 / 100)
    assert summ["stop_share"] == pytest.approx([0.6, 0.2, 0.2])
    assert summ["accepted_by_rule"] == [3, 1, 0]
    assert summ["accept_precision"][0] == pytest.approx(2 / 3)  # t0, t3 right; t4 wrong
    assert summ["accept_precision"][1] == 1.0 and math.isnan(summ["accept_precision"][2])
    assert summ["call_share"] == pytest.approx({"cheap": 1.0, "mid": 0.4, "big": 0.2})

    per, _ = run_cascade(arrays, Cascade(("cheap", "mid", "big"), no_examples="escalate"))
    assert per["stop_stage"].tolist()[3] == 1  # no examples: on to mid, which passes
    # Accept share 0.5: the half-passing cheap answer of t2 is accepted.
    per, _ = run_cascade(arrays, Cascade(("cheap", "mid", "big"), accept_share=0.5))
    assert per["stop_stage"].tolist()[2] == 0
    # One stage: exactly the model alone (Eq. 2 cost of always calling it).
    per, summ = run_cascade(arrays, Cascade(("big",)))
    assert summ["cost"] == pytest.approx(1.0) and summ["effectiveness"] == pytest.approx(0.8)


def test_unknown_dollars_make_the_mean_unknown():
    usd = np.tile(COSTS / 1000, (2, 1))
    usd[1, 1] = NAN  # mid's price unknown on t1, which calls mid
    arrays = _arrays([[1, 1, 1], [0, 1, 1]], [[1, 1, 1], [0, 1, 1]], usd=usd)
    per, summ = run_cascade(arrays, Cascade(("cheap", "mid")))
    assert per["usd"].iloc[0] == pytest.approx(0.001) and math.isnan(per["usd"].iloc[1])
    assert math.isnan(summ["usd_per_prompt"]) and summ["usd_known"] == 1


def test_router_stage_and_no_double_payment():
    scores = [[0, 1, 1], [0, 0, 1]]
    visible = [[0.0, 1.0, 1.0], [0.0, 0.0, 1.0]]
    # The router picks mid for t0 and cheap for t1 (already asked: not paid twice).
    arrays = _arrays(scores, visible, router=[1, 0])
    per, _ = run_cascade(arrays, Cascade(("cheap", "router", "big")))
    assert per["model"].tolist() == ["mid", "big"]
    assert per["called"].tolist() == ["cheap;mid", "cheap;big"]
    assert np.allclose(per["cost"], [5 / 20, 21 / 20])
    with pytest.raises(InputError, match="router picks"):
        run_cascade(_arrays(scores, visible), Cascade(("router", "big")))
    with pytest.raises(InputError, match="not a portfolio model"):
        run_cascade(arrays, Cascade(("huge",)))
    with pytest.raises(InputError, match="no_examples"):
        Cascade(("cheap",), no_examples="maybe")


def test_candidates_are_cost_ordered_chains_of_the_train_pareto_front():
    # mid is dominated (as costly as needed, worse than cheap): not in the pool.
    scores = [[1, 0, 1], [1, 0, 1], [0, 0, 1], [1, 0, 1]]
    arrays = _arrays(scores, np.ones((4, 3)))
    cands = candidate_cascades(arrays, max_len=3)
    names = {c.stages for c in cands}
    assert names == {("cheap",), ("big",), ("cheap", "big")}
    assert len(cands) == 4  # the two-stage chain under both no-example rules


def _choice_data(n_train=40, n_test=40):
    """Train: cheap's visible pass is trustworthy (cheap > big chain reaches big's score).
    Test: cheap's passes are all wrong, so on test the chain would lose to big alone."""
    rows_s, rows_v = [], []
    for i in range(n_train):
        good = i % 2 == 0
        rows_s.append([1.0 if good else 0.0, 0.0, 1.0])
        rows_v.append([1.0 if good else 0.0, 0.0, 1.0])
    for _ in range(n_test):
        rows_s.append([0.0, 0.0, 1.0])
        rows_v.append([1.0, 0.0, 1.0])  # cheap passes its examples but is wrong
    return _arrays(rows_s, rows_v)


def test_choice_reads_train_rows_only():
    arrays = _choice_data()
    train, test = arrays.rows(range(40)), arrays.rows(range(40, 80))
    chosen, record = choose_cascade(train, candidate_cascades(train), k_folds=5, seed=0)
    assert chosen.stages == ("cheap", "big")  # reaches big's train score at ~half its cost
    assert record["sbs_oof_effectiveness"] == 1.0
    # Choosing on test would have picked big alone: the chain loses there.
    on_test, _ = choose_cascade(test, candidate_cascades(test), k_folds=5, seed=0)
    assert on_test.stages == ("big",)
    # And the test evaluation shows the cost of that honest choice.
    _, summ = run_cascade(test, chosen)
    assert summ["effectiveness"] == 0.0
    # evaluate_split chooses the same way, whatever the test rows hold.
    record, per_task = evaluate_split(arrays, range(40), range(40, 80), seed=0)
    assert record["choice"]["chosen"]["stages"] == ["cheap", "big"]
    assert record["test"]["effectiveness"] == 0.0 and record["sbs"]["effectiveness"] == 1.0
    assert set(per_task["task_id"]) == {f"t{i}" for i in range(40, 80)}
    flipped = Arrays(**{**arrays.__dict__, "visible": arrays.visible.copy()})
    flipped.visible[40:, 0] = 0.0
    again, _ = evaluate_split(flipped, range(40), range(40, 80), seed=0)
    assert again["choice"] == record["choice"]


def test_choice_falls_back_and_budget_target():
    # Nothing reaches the SBS: the best effectiveness, cheapest among ties.
    scores = [[1, 1, 1], [0, 1, 1], [0, 0, 1], [0, 0, 1]]
    visible = [[1, 1, 1], [1, 1, 1], [1, 1, 1], [1, 1, 1]]  # passes say nothing here
    arrays = _arrays(scores, visible)
    chosen, record = choose_cascade(arrays, candidate_cascades(arrays), tolerance=0.0)
    assert chosen.stages == ("big",) and "cheapest with" in record["rule"]
    chosen, record = choose_cascade(arrays, candidate_cascades(arrays), target="budget", budget=0.3)
    assert chosen.stages == ("mid",) and record["chosen_train_cost"] <= 0.3
    with pytest.raises(InputError, match="budget"):
        choose_cascade(arrays, candidate_cascades(arrays), target="budget")


def _matrix(n=80, seed=0):
    rng = np.random.default_rng(seed)
    cheap_ok = rng.random(n) < 0.6
    mid_ok = cheap_ok | (rng.random(n) < 0.5)
    big_ok = mid_ok | (rng.random(n) < 0.5)
    frame = pd.DataFrame({"task_id": [f"t{i:03d}" for i in range(n)], "dataset": "d",
                          "kind": "generate", "prompt": "p"})  # fmt: skip
    for m, ok, c in zip(MODELS, (cheap_ok, mid_ok, big_ok), COSTS, strict=True):
        frame[SCORE_PREFIX + m] = ok.astype(float)
        vis = np.where(ok, 1.0, (rng.random(n) < 0.1).astype(float))  # 10% false passes
        vis[rng.random(n) < 0.1] = np.nan  # 10% without examples
        frame[VISIBLE_PREFIX + m] = vis
        frame[USD_PREFIX + m] = c / 1000
    return Matrix(frame, MODELS, dict(zip(MODELS, COSTS.tolist(), strict=True)), False, "test",
                  {"dataset": "d"})  # fmt: skip


def test_five_seeds_loop_uses_the_project_splits():
    matrix = _matrix()
    records, per_task = evaluate_seeds(matrix, seeds=(0, 1, 2), test_size=0.25)
    assert [r["seed"] for r in records] == [0, 1, 2]
    for r in records:
        assert r["n_test"] == 20 and r["n_train"] == 60
        test_ids = set(per_task.loc[per_task["seed"] == r["seed"], "task_id"])
        assert len(test_ids) == 20
        lo, hi = r["cascade_minus_sbs"]["ci95"]
        assert lo <= r["cascade_minus_sbs"]["mean"] <= hi
        assert r["test"]["cost"] <= 1.25  # at most every stage: (1+4+20)/20
    summary = summarise_seeds(records)
    assert summary["seeds"] == 3 and len(summary["chosen"]) == 3
    # The same seed gives the same split and choice.
    again, _ = evaluate_seeds(matrix, seeds=(0,), test_size=0.25)
    assert again[0]["choice"]["chosen"] == records[0]["choice"]["chosen"]


def test_matrix_without_visible_columns_is_refused():
    matrix = _matrix()
    matrix.frame = matrix.frame.drop(columns=[VISIBLE_PREFIX + m for m in MODELS])
    with pytest.raises(InputError, match="scoring.visible"):
        Arrays.from_matrix(matrix)


def test_router_stage_in_the_seed_loop():
    matrix = _matrix()
    ids = matrix.task_ids
    calls = []

    def picks(seed):
        calls.append(seed)
        return {t: ("mid" if i % 2 else "big") for i, t in enumerate(ids)}

    records, per_task = evaluate_seeds(
        matrix, seeds=(0, 1), router_picks=picks,
        candidate_kwargs={"router_first": True, "max_len": 2},
    )  # fmt: skip
    assert calls == [0, 1]
    names = [c["name"] for c in records[0]["choice"]["candidates"]]
    assert any(n.startswith("router") for n in names)


def test_no_example_default_is_the_config_schemas():
    from codyn.config import load_schema
    from codyn.routers.cascade import DEFAULT_NO_EXAMPLES

    spec = load_schema()["properties"]["serve"]["properties"]["cascade"]["properties"]
    # serve reads this schema default; the offline cascade must use the same rule
    assert Cascade(("cheap",)).no_examples == DEFAULT_NO_EXAMPLES == spec["no_examples"]["default"]


def test_no_example_rule_comparison_per_seed():
    from codyn.routers.cascade import compare_no_example_rules

    rows = compare_no_example_rules(_matrix(), seeds=(0, 1))
    assert [r["seed"] for r in rows] == [0, 1]
    for r in rows:
        assert "[no examples: escalate" not in r["accept"]["chosen"]
        assert "[no examples: accept" not in r["escalate"]["chosen"]
        # escalating more can only cost more on the same chains
        assert r["escalate_minus_accept_train"]["cost"] >= 0 and r["chains"] > 0
        # the comparator is the out-of-fold SBS of train rows, the same for both rules
        assert r["accept"]["sbs_oof_effectiveness"] == r["escalate"]["sbs_oof_effectiveness"]
