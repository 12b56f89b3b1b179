"""Evaluation records, sweeps, calibration and tables on small hand-made inputs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from codyn import policy
from codyn.errors import InputError
from codyn.evaluation import calibration, evaluate, metrics, sweep, tables
from codyn.matrix import Matrix

MODELS = ["m-small", "m-mid", "m-big"]
COSTS = {"m-small": 1.0, "m-mid": 5.0, "m-big": 72.0}
SETTINGS = {"setting1": 0.0, "setting2": 0.25}


def write_matrix(path, scores: np.ndarray, dataset="toy", simulated=True, usd=None) -> list[str]:
    n = scores.shape[0]
    ids = [f"{dataset}/{i}" for i in range(n)]
    frame = pd.DataFrame(
        {
            "task_id": ids,
            "dataset": dataset,
            "kind": "generate",
            "prompt": [f"p{i}" for i in range(n)],
        }
    )
    for j, m in enumerate(MODELS):
        frame[f"score::{m}"] = scores[:, j]
        frame[f"usd::{m}"] = np.nan if usd is None else usd[:, j]
    Matrix(frame, list(MODELS), dict(COSTS), simulated=simulated, source="test").save(path)
    return ids


def write_predictions(path, ids, pred: np.ndarray, splits, calibration_block=None) -> None:
    df = pd.DataFrame({"task_id": ids, "split": splits})
    for j, m in enumerate(MODELS):
        df[f"pred::{m}"] = pred[:, j]
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(df, preserve_index=False)
    if calibration_block is not None:  # what codyn.routers.pipeline.predict_router carries
        table = table.replace_schema_metadata(
            {b"codyn": json.dumps({"calibration": calibration_block}).encode()}
        )
    pq.write_table(table, path)


def oof_calibration(pred, scores, targets=None) -> dict:
    """A calibration block chosen on ``pred`` of the train rows, standing in for the
    out-of-fold predictions that training makes (two folds, SBS from the train rows)."""
    costs = np.array([COSTS[m] for m in MODELS])
    sbs = metrics.single_best(scores, costs)
    oof = calibration.OutOfFold(
        pred=pred, scores=scores, costs=costs, folds=np.arange(len(pred)) % 2,
        sbs=np.full(len(pred), sbs), task_ids=[str(i) for i in range(len(pred))],
        models=list(MODELS), seed=0,
    )  # fmt: skip
    return calibration.choose_weights(
        oof, targets or calibration.targets_from_config({"target_share": 0.2})
    )


def make_dataset(tmp_path, name="toy", n=40, seed=0, simulated=True, noise=0.3, block=None):
    """A random matrix, a 60/40 split and noisy-oracle predictions for it."""
    rng = np.random.default_rng(seed)
    skill = np.array([0.35, 0.55, 0.7])
    scores = (rng.random((n, 3)) < skill).astype(float)
    mpath = tmp_path / f"{name}.parquet"
    ids = write_matrix(
        mpath, scores, dataset=name, simulated=simulated, usd=np.tile([0.001, 0.004, 0.05], (n, 1))
    )
    n_train = int(0.6 * n)
    split = {"train": ids[:n_train], "test": ids[n_train:], "seed": 1}
    spath = tmp_path / f"{name}-split.json"
    spath.write_text(json.dumps(split))
    pred = scores + noise * rng.standard_normal((n, 3))
    if block is not None:
        pred[:, block] = -np.inf
    ppath = tmp_path / "pred" / f"{name}.parquet"
    write_predictions(
        ppath, ids, pred, ["train"] * n_train + ["test"] * (n - n_train),
        oof_calibration(pred[:n_train], scores[:n_train]),
    )  # fmt: skip
    return mpath, spath, ppath, scores, split


def run_eval(mpath, spath, ppath, router="knn", rtype="knn", setting="setting1", **kw):
    return evaluate.evaluate(
        mpath,
        ppath,
        dataset=None,
        router=router,
        router_type=rtype,
        setting=setting,
        costs=COSTS,
        split_path=spath,
        sweep_points=21,
        **kw,
    )


def test_decision_matches_hand_computation(tmp_path):
    scores = np.array([[1, 0, 1], [0, 1, 1], [0, 0, 1], [1, 1, 1], [0, 0, 0]], dtype=float)
    ids = write_matrix(tmp_path / "m.parquet", scores)
    (tmp_path / "s.json").write_text(json.dumps({"train": ids[:2], "test": ids[2:]}))
    # router picks: row2 -> big (0), row3 -> small (1 via tie-free pred), row4 -> mid (0)
    pred = np.array([[0, 0, 1], [0, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 0]], dtype=float)
    write_predictions(tmp_path / "p.parquet", ids, pred, ["train"] * 2 + ["test"] * 3)
    rec = run_eval(
        tmp_path / "m.parquet", tmp_path / "s.json", tmp_path / "p.parquet", rtype="random"
    )
    d = rec["decision"]
    assert d["effectiveness"] == pytest.approx((1 + 1 + 0) / 3)
    assert d["cost"] == pytest.approx((72 + 1 + 5) / 3 / 72)
    assert d["shares"] == pytest.approx({"m-small": 1 / 3, "m-mid": 1 / 3, "m-big": 1 / 3})
    refs = rec["references"]
    # oracle on test rows: row2 big, row3 small (cheapest of ties), row4 small (all 0 -> cheapest)
    assert refs["oracle"]["effectiveness"] == pytest.approx(2 / 3)
    assert refs["oracle"]["cost"] == pytest.approx((72 + 1 + 1) / 3 / 72)
    # SBS from the train rows: means small .5, mid .5, big 1 -> big
    assert refs["sbs"]["model"] == "m-big"
    assert refs["sbs"]["effectiveness"] == pytest.approx(2 / 3)
    assert rec["sweep"] is None and rec["calibration"] is None  # a baseline has no cost knob
    assert rec["simulated"] is True and rec["scope"] == "test"


def test_swept_router_record(tmp_path):
    mpath, spath, ppath, scores, split = make_dataset(tmp_path)
    rec = run_eval(mpath, spath, ppath, bootstrap_resamples=300)
    pts = rec["sweep"]["points"]
    weights = [p["cost_weight"] for p in pts]
    # 21 evenly spaced weights on [0, w_max] (and on [w_min, 0]) plus quantiles of the
    # per-row switch weights on each side
    assert 21 <= len(pts) <= 84 and weights == sorted(weights) and weights[0] <= 0.0
    assert all(np.isclose(weights, w).any() for w in np.linspace(0, weights[-1], 21))
    costs = [p["cost"] for p in pts]
    assert all(
        a >= b - 1e-12 for a, b in zip(costs, costs[1:], strict=False)
    )  # non-increasing in w
    assert pts[-1]["shares"]["m-small"] == pytest.approx(1.0)  # w_max routes all to the cheapest
    at_zero = next(p for p in pts if p["cost_weight"] == 0.0)
    assert at_zero["effectiveness"] == pytest.approx(rec["decision"]["effectiveness"])
    top = max(rec["sweep"]["points"][0]["shares"], key=lambda m: rec["costs"][m])
    assert pts[0]["shares"][top] == pytest.approx(1.0)  # w_min routes all to the dearest
    cal = rec["calibration"]
    assert set(cal["targets"]) == {
        "parity",
        "budget-0.25",
        "budget-0.5",
        "budget-0.75",
        "share-0.2",
    }
    share = cal["targets"]["share-0.2"]
    assert share["oof"]["share_most_expensive"] <= 0.2 + 1e-12
    assert 0 <= share["test"]["share_most_expensive"] <= 1
    preds = pd.read_parquet(ppath).set_index("task_id")
    p_test = preds.loc[split["test"], [f"pred::{m}" for m in MODELS]].to_numpy()
    test_pred = policy.choose(p_test, [COSTS[m] for m in MODELS], share["cost_weight"])
    assert share["test"]["effectiveness"] == pytest.approx(
        metrics.effectiveness(scores[len(split["train"]) :], test_pred)
    )
    sbs_e = rec["references"]["sbs"]["effectiveness"]
    for t in cal["targets"].values():
        d = t["test_effectiveness_minus_sbs"]
        assert d["mean"] == pytest.approx(t["test"]["effectiveness"] - sbs_e)
        assert d["lo"] <= d["mean"] <= d["hi"] and d["n_resamples"] == 300
    assert rec["curve"]["weak"] == "m-small"
    for key in ("apgr", "aiq"):
        assert np.isfinite(rec["curve"][key])
    assert 0 < rec["curve"]["aiq"] <= 1


def test_blocked_models_are_never_chosen(tmp_path):
    mpath, spath, ppath, *_ = make_dataset(tmp_path, block=[0, 1])
    rec = run_eval(mpath, spath, ppath, router="rorf-x", rtype="rorf")
    assert rec["decision"]["shares"]["m-big"] == pytest.approx(1.0)
    assert all(p["shares"]["m-big"] == pytest.approx(1.0) for p in rec["sweep"]["points"])


def test_rorf_pair_sweeps_to_its_cheaper_model(tmp_path):
    mpath, spath, ppath, *_ = make_dataset(tmp_path, block=[0])
    rec = run_eval(mpath, spath, ppath, router="rorf-x", rtype="rorf")
    last = rec["sweep"]["points"][-1]
    assert last["shares"]["m-mid"] == pytest.approx(1.0) and last["shares"]["m-small"] == 0


def test_generalisation_scope_uses_all_rows(tmp_path):
    mpath, _, ppath, scores, _ = make_dataset(tmp_path, n=30)
    rec = evaluate.evaluate(
        mpath,
        ppath,
        router="knn",
        router_type="knn",
        setting="setting1",
        costs=COSTS,
        split_path=None,
        sweep_points=5,
    )
    assert rec["scope"] == "all" and rec["n_tasks"] == 30
    assert rec["calibration"] is None
    assert rec["references"]["sbs"]["model"] == MODELS[int(np.argmax(scores.mean(axis=0)))]


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda df: df.drop(columns=["pred::m-mid"]), "pred::m-mid"),
        (lambda df: df.assign(**{"pred::m-big": [np.nan] + [0.0] * (len(df) - 1)}), "pred::m-big"),
        (lambda df: df.iloc[:-1], "task_id"),
        (lambda df: df.assign(**{f"pred::{m}": -np.inf for m in MODELS}), None),
    ],
)
def test_bad_predictions_name_the_field_and_write_nothing(tmp_path, mutate, field):
    mpath, spath, ppath, *_ = make_dataset(tmp_path)
    mutate(pd.read_parquet(ppath)).to_parquet(ppath)
    out = tmp_path / "eval.json"
    with pytest.raises(InputError) as err:
        evaluate.run(
            out,
            matrix_path=mpath,
            predictions_path=ppath,
            router="knn",
            router_type="knn",
            setting="setting1",
            costs=COSTS,
            split_path=spath,
        )
    assert str(ppath) in str(err.value)
    if field:
        assert err.value.field == field
    assert not out.exists()


def test_unknown_split_ids_and_missing_costs(tmp_path):
    mpath, spath, ppath, *_ = make_dataset(tmp_path)
    split = json.loads(spath.read_text())
    split["test"].append("nope/1")
    spath.write_text(json.dumps(split))
    with pytest.raises(InputError, match="not in the matrix"):
        run_eval(mpath, spath, ppath)
    with pytest.raises(InputError, match="no configured cost"):
        evaluate.evaluate(
            mpath,
            ppath,
            router="knn",
            router_type="knn",
            setting="s",
            costs={"m-small": 1.0},
            split_path=None,
        )
    spath.write_text("{not json")
    with pytest.raises(InputError, match="JSON"):
        run_eval(mpath, spath, ppath)


def test_calibration_bisection_hits_the_step():
    # two models, gains of the expensive one 0.1..0.5: share at w is #(gain > w)/5
    pred = np.array([[0.0, g] for g in (0.1, 0.2, 0.3, 0.4, 0.5)])
    w = policy.calibrate(pred, [1.0, 2.0], target_share=0.4)
    assert w == pytest.approx(0.3, abs=1e-9)
    assert policy.share_most_expensive(pred, [1.0, 2.0], w) == pytest.approx(0.4)
    # a target of 100% is met by the weight that sends every call to the dearest model
    w_all = policy.calibrate(pred, [1.0, 2.0], target_share=1.0)
    assert w_all < 0 and policy.share_most_expensive(pred, [1.0, 2.0], w_all) == 1.0


def test_w_max_is_tight():
    pred = np.array([[0.2, 0.8, 0.5], [0.0, 0.1, 0.9]])
    costs = [1.0, 3.0, 5.0]  # affordability 1, .5, 0
    w = policy.w_max(pred, costs)
    assert w == pytest.approx(max(0.6 / 0.5, 0.3 / 1.0, 0.9 / 1.0, 0.1 / 0.5), rel=1e-5)
    assert (policy.choose(pred, costs, w) == 0).all()
    assert not (policy.choose(pred, costs, 0.99 * w) == 0).all()


def _records(tmp_path):
    recs = []
    for ds, seed in (("alpha", 1), ("beta", 2)):
        (tmp_path / ds).mkdir()
        mpath, spath, ppath, *_ = make_dataset(tmp_path / ds, name=ds, seed=seed)
        for router, rtype in (("cls-a", "cls"), ("random", "random"), ("rorf-p", "rorf")):
            for setting in SETTINGS:
                rec = evaluate.evaluate(
                    mpath,
                    ppath,
                    dataset=ds,
                    router=router,
                    router_type=rtype,
                    setting=setting,
                    costs=COSTS,
                    split_path=spath,
                    sweep_points=9,
                )
                recs.append(json.loads(json.dumps(evaluate._finite(rec))))
    return recs


def test_table2_layout_and_banner(tmp_path):
    recs = _records(tmp_path)
    out = tmp_path / "t"
    df = tables.write_table2(
        recs,
        SETTINGS,
        out / "table2.csv",
        out / "table2.md",
        out / "table2.tex",
        routers=["cls-a", "random", "rorf-p"],
    )
    # cls x 2 settings, random once, rorf once, oracle + sbs from the matrix
    assert df["technique"].tolist() == [
        "CLS (cls-a)",
        "CLS (cls-a)",
        "Random",
        "Oracle",
        "SBS (best train mean)",
        "RoRF (rorf-p)",
    ]
    assert list(df.columns[4:10]) == [
        "alpha E",
        "alpha C",
        "alpha usd",
        "beta E",
        "beta C",
        "beta usd",
    ]
    cls1 = next(
        r
        for r in recs
        if r["router"] == "cls-a" and r["setting"] == "setting1" and r["dataset"] == "beta"
    )
    assert df.loc[0, "beta E"] == pytest.approx(cls1["decision"]["effectiveness"])
    assert df.loc[0, "beta usd"] == pytest.approx(cls1["decision"]["usd_per_prompt"])
    assert "usd" not in (out / "table2.md").read_text()  # the paper layout keeps E and C only
    assert (df["answers"] == "simulated").all()
    md = (out / "table2.md").read_text()
    assert "SIMULATED" in md and "λ2=0.25" in md
    tex = (out / "table2.tex").read_text()
    assert r"\begin{tabular}" in tex and "SIMULATED" in tex and r"$\lambda_2$" in tex
    assert pd.read_csv(out / "table2.csv").shape == df.shape


def test_curves_and_generalisation_tables(tmp_path):
    recs = _records(tmp_path)
    df = tables.write_curves(recs, tmp_path / "c.csv", tmp_path / "c.md")
    # swept routers only: cls and rorf, 2 datasets x 2 settings
    assert len(df) == 8 and set(df["type"]) == {"cls", "rorf"}
    for col in ("APGR", "CPT50", "CPT80", "AIQ", "parity w", "parity test E", "budget-0.5 test C"):
        assert col in df.columns
    md = (tmp_path / "c.md").read_text()
    assert (
        "Operating points chosen out-of-fold" in md
        and "| alpha | cls-a | setting1 | parity |" in md
    )
    g = tables.write_generalisation(recs, SETTINGS, tmp_path / "g.csv", tmp_path / "g.md")
    assert (g["kind"] == "single model").sum() == 2 * len(MODELS)
    assert "SIMULATED" in (tmp_path / "g.md").read_text()


def test_answers_label_real_and_mixed():
    assert tables.answers_label([{"simulated": False}]) == "real"
    assert tables.answers_label([{"simulated": False}, {"simulated": True}]).startswith("mixed")
    assert "real" in tables.banner([{"simulated": False}])


def test_load_evals_rejects_broken_records(tmp_path):
    good = {
        "dataset": "d",
        "router": "r",
        "setting": "s",
        "decision": {},
        "references": {},
        "models": ["a"],
    }
    (tmp_path / "ok.json").write_text(json.dumps(good))
    (tmp_path / "other.json").write_text(json.dumps({**good, "models": ["b"]}))
    (tmp_path / "bad.json").write_text("{")
    (tmp_path / "short.json").write_text(json.dumps({"dataset": "d"}))
    with pytest.raises(InputError, match="JSON"):
        evaluate.load_evals([tmp_path / "bad.json"])
    with pytest.raises(InputError) as err:
        evaluate.load_evals([tmp_path / "short.json"])
    assert err.value.field == "router"
    with pytest.raises(InputError, match="portfolio"):
        evaluate.load_evals([tmp_path / "ok.json", tmp_path / "other.json"])
    with pytest.raises(InputError, match="does not exist"):
        evaluate.load_evals([tmp_path / "missing.json"])


def test_held_out_split_is_evaluated_on_all_rows(tmp_path):
    mpath, spath, ppath, scores, split = make_dataset(tmp_path, n=20)
    spath.write_text(
        json.dumps({"train": [], "test": split["train"] + split["test"], "held_out": True})
    )
    rec = run_eval(mpath, spath, ppath)
    assert rec["scope"] == "all" and rec["n_tasks"] == 20 and rec["calibration"] is None
    assert rec["sbs_from"] == "evaluated rows"


def test_negative_weights_let_a_curve_start_at_the_strong_model():
    # The router's plain argmax sends row 0 to the cheap model although only the strong
    # one solves it; only the negative side of the knob recovers the strong model's score.
    pred = np.array([[0.6, 0.5], [0.1, 0.9], [0.7, 0.2]])
    scores = np.array([[0.0, 1.0], [0.0, 1.0], [0.0, 0.0]])
    costs = [1.0, 10.0]
    points = sweep.sweep(pred, scores, costs, n_points=5)
    assert points[0].cost_weight < 0 and points[0].share_most_expensive == 1.0
    assert points[0].effectiveness == pytest.approx(2 / 3)
    at_zero = next(p for p in points if p.cost_weight == 0.0)
    assert at_zero.effectiveness == pytest.approx(1 / 3)
    assert policy.w_min(pred, costs) == pytest.approx(-0.5, abs=1e-5)


def _ar_predictions(tmp_path, on_malformed, decoding="free"):
    """3 test rows; the router's picks score 1, but its output on row 0 was malformed."""
    scores = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0], [1, 1, 1], [1, 1, 1]], dtype=float)
    ids = write_matrix(tmp_path / "m.parquet", scores)
    (tmp_path / "s.json").write_text(json.dumps({"train": ids[3:], "test": ids[:3]}))
    pred = scores.copy()  # the fallback ranking on row 0 also picks m-big
    df = pd.DataFrame({"task_id": ids, "split": ["test"] * 3 + ["train"] * 2})
    for j, m in enumerate(MODELS):
        df[f"pred::{m}"] = pred[:, j]
    df["malformed"] = [True, False, False, False, False]
    import pyarrow as pa
    import pyarrow.parquet as pq

    meta = {"malformed": 1, "on_malformed": on_malformed, "decoding": decoding}
    table = pa.Table.from_pandas(df, preserve_index=False)
    table = table.replace_schema_metadata({b"codyn": json.dumps(meta).encode()})
    pq.write_table(table, tmp_path / "p.parquet")
    return run_eval(
        tmp_path / "m.parquet",
        tmp_path / "s.json",
        tmp_path / "p.parquet",
        router="sft",
        rtype="ar-sft",
    )


def test_malformed_ranking_scores_zero_by_default_rule(tmp_path):
    zero = _ar_predictions(tmp_path / "a", "zero")
    assert zero["malformed"] == 1 and zero["malformed_share"] == pytest.approx(1 / 3)
    assert zero["decision"]["effectiveness"] == pytest.approx(2 / 3)  # row 0 scores 0
    # its cost is still counted: the fallback pick (m-big) was called
    assert zero["decision"]["shares"]["m-big"] == pytest.approx(1 / 3)
    at_zero = next(p for p in zero["sweep"]["points"] if p["cost_weight"] == 0.0)
    assert at_zero["effectiveness"] == pytest.approx(2 / 3)
    # the references keep the raw scores
    assert zero["references"]["oracle"]["effectiveness"] == pytest.approx(1.0)
    fallback = _ar_predictions(tmp_path / "b", "fallback")
    assert fallback["decision"]["effectiveness"] == pytest.approx(1.0)


def test_table2_malformed_column_and_option_labels(tmp_path):
    rec = _ar_predictions(tmp_path / "a", "zero")
    opt = _ar_predictions(tmp_path / "b", "fallback", decoding="constrained")
    opt["router"] = "sft-opt"
    base = {**rec, "router": "rnd", "router_type": "random", "malformed": None}
    df = tables.table2_frame([rec, opt, base], {"setting1": 0.0})
    by_router = df.set_index("router")
    assert by_router.loc["sft", "malformed %"] == pytest.approx(100 / 3)
    assert by_router.loc["sft", "technique"] == "SFT"
    assert by_router.loc["sft-opt", "technique"] == (
        "SFT (sft-opt) [constrained decoding, malformed -> fallback]"
    )
    assert np.isnan(by_router.loc["rnd", "malformed %"])
    no_ar = tables.table2_frame([base], {"setting1": 0.0})
    assert "malformed %" not in no_ar.columns
