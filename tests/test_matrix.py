"""build_matrix: pipeline task/score/response files -> the instance x model matrix."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from codyn.errors import InputError
from codyn.matrix import Matrix, build_matrix

MODELS = ["small", "big"]
COSTS = {"small": 1.0, "big": 72.0}


def task(tid, kind="generate", prompt=None):
    return {
        "id": tid,
        "dataset": "toy",
        "kind": kind,
        "language": "python",
        "prompt": prompt or f"write {tid}",
        "reference": None,
        "tests": None,
        "label": True if kind == "classify" else None,
        "meta": {},
    }


def write_tasks(path, tasks):
    path.write_text("".join(json.dumps(t) + "\n" for t in tasks), encoding="utf-8")
    return path


def write_scores(path, model, rows):
    """rows: (task_id, score, status[, detail])"""
    frame = pd.DataFrame(
        [
            {
                "task_id": r[0],
                "model": model,
                "score": r[1],
                "status": r[2],
                "detail": r[3] if len(r) > 3 else "",
            }
            for r in rows
        ],
        columns=["task_id", "model", "score", "status", "detail"],
    )
    frame.to_csv(path, index=False)
    return path


def write_responses(path, model, costs):
    lines = [{"task_id": t, "model": model, "cost_usd": c} for t, c in costs]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return path


@pytest.fixture
def toy(tmp_path):
    tasks = write_tasks(tmp_path / "tasks.jsonl", [task("t1"), task("t2"), task("t3"), task("t4")])
    scores = {
        "small": write_scores(
            tmp_path / "small.csv",
            "small",
            [
                ("t1", 1, "pass"),
                ("t2", 0, "fail"),
                ("t3", "", "not_scorable", "no tests"),
                ("t4", 0, "timeout"),
            ],
        ),
        "big": write_scores(
            tmp_path / "big.csv",
            "big",
            [
                ("t1", 1, "pass"),
                ("t2", 1, "pass"),
                ("t3", "", "not_scorable", "no tests"),
                ("t4", 1, "pass"),
            ],
        ),
    }
    responses = {
        # append-only: the last line of a task wins; null cost -> NaN
        "small": write_responses(
            tmp_path / "small.jsonl", "small", [("t1", 0.5), ("t1", 0.001), ("t2", None)]
        ),
        "big": write_responses(
            tmp_path / "big.jsonl", "big", [("t1", 0.02), ("t2", 0.03), ("t4", 0.04)]
        ),
    }
    return tmp_path, tasks, scores, responses


def test_build_matrix_drops_unscorable_and_reads_costs(toy, caplog):
    tmp_path, tasks, scores, responses = toy
    with caplog.at_level("INFO"):
        m = build_matrix(tasks, scores, responses, MODELS, COSTS, True, "toy")
    assert m.task_ids == ["t1", "t2", "t4"]
    assert "dropped 1 of 4 tasks" in caplog.text and "no tests (1)" in caplog.text
    assert m.meta["dropped"]["count"] == 1
    assert m.scores().loc["t2"].tolist() == [0.0, 1.0]
    usd = m.usd()
    assert usd.at["t1", "small"] == pytest.approx(0.001)
    assert math.isnan(usd.at["t2", "small"]) and math.isnan(usd.at["t4", "small"])
    assert usd.at["t4", "big"] == pytest.approx(0.04)
    assert m.simulated and m.costs == COSTS and m.meta["score_range"] == [0.0, 1.0]
    assert set(m.frame["kind"]) == {"generate"} and (m.frame["dataset"] == "toy").all()
    out = tmp_path / "m.parquet"
    m.save(out)
    back = Matrix.load(out)
    assert back.models == MODELS and back.simulated and back.meta["dropped"]["count"] == 1
    pd.testing.assert_frame_equal(back.scores(), m.scores())


def test_no_response_file_gives_nan_usd(toy):
    _, tasks, scores, _ = toy
    m = build_matrix(tasks, scores, {}, MODELS, COSTS, False, "toy")
    assert np.isnan(m.usd().to_numpy()).all()


def test_task_missing_for_one_model_is_an_error(toy):
    tmp_path, tasks, scores, responses = toy
    scores["big"] = write_scores(
        tmp_path / "big.csv", "big", [("t1", 1, "pass"), ("t3", "", "not_scorable")]
    )
    with pytest.raises(InputError) as err:
        build_matrix(tasks, scores, responses, MODELS, COSTS, False, "toy")
    assert err.value.record == "t2" and "missing for ['big']" in str(err.value)
    assert "big.csv" in str(err.value)


def test_not_scorable_for_some_models_only_is_an_error(toy):
    tmp_path, tasks, scores, responses = toy
    scores["big"] = write_scores(
        tmp_path / "big.csv",
        "big",
        [("t1", 1, "pass"), ("t2", 1, "pass"), ("t3", 0, "fail"), ("t4", 1, "pass")],
    )
    with pytest.raises(InputError) as err:
        build_matrix(tasks, scores, responses, MODELS, COSTS, False, "toy")
    assert err.value.record == "t3" and err.value.field == "status"


@pytest.mark.parametrize(
    ("rows", "field", "record"),
    [
        ([("t1", 1, "pass"), ("t9", 1, "pass")], "task_id", "t9"),  # unknown task
        ([("t1", "x", "pass")], "score", "t1"),  # no numeric score
        ([("t1", 1, "great")], "status", "t1"),  # unknown status
    ],
)
def test_bad_score_file_names_record_and_field(toy, rows, field, record):
    tmp_path, tasks, scores, responses = toy
    scores["small"] = write_scores(tmp_path / "small.csv", "small", rows)
    with pytest.raises(InputError) as err:
        build_matrix(tasks, scores, responses, MODELS, COSTS, False, "toy")
    assert err.value.field == field and err.value.record == record
    assert err.value.path.endswith("small.csv")


def test_wrong_model_and_missing_column(toy):
    tmp_path, tasks, scores, responses = toy
    write_scores(tmp_path / "small.csv", "big", [("t1", 1, "pass")])
    with pytest.raises(InputError, match="expected 'small'"):
        build_matrix(tasks, scores, responses, MODELS, COSTS, False, "toy")
    pd.DataFrame({"task_id": ["t1"], "score": [1]}).to_csv(tmp_path / "small.csv", index=False)
    with pytest.raises(InputError) as err:
        build_matrix(tasks, scores, responses, MODELS, COSTS, False, "toy")
    assert err.value.field == "model"


def test_cost_map_must_match_portfolio(toy):
    _, tasks, scores, responses = toy
    with pytest.raises(InputError, match="has no cost"):
        build_matrix(tasks, scores, responses, MODELS, {"small": 1.0}, False, "toy")
    with pytest.raises(InputError, match="not in the portfolio"):
        build_matrix(tasks, scores, responses, MODELS, {**COSTS, "ghost": 3.0}, False, "toy")


def test_classify_declares_penalised_range(tmp_path):
    tasks = write_tasks(tmp_path / "tasks.jsonl", [task("s1", "classify"), task("s2", "classify")])
    scores = {
        "small": write_scores(
            tmp_path / "a.csv", "small", [("s1", -0.25, "scored"), ("s2", 0.75, "scored")]
        ),
        "big": write_scores(
            tmp_path / "b.csv", "big", [("s1", 1.0, "scored"), ("s2", 0.0, "scored")]
        ),
    }
    m = build_matrix(tasks, scores, {}, MODELS, COSTS, False, "sven")
    assert m.score_range == (-1.0, 2.0)
    assert m.scores().at["s1", "small"] == -0.25


def test_generate_score_out_of_range_is_rejected(tmp_path):
    tasks = write_tasks(tmp_path / "tasks.jsonl", [task("g1")])
    scores = {
        "small": write_scores(tmp_path / "a.csv", "small", [("g1", 1.5, "pass")]),
        "big": write_scores(tmp_path / "b.csv", "big", [("g1", 1.0, "pass")]),
    }
    with pytest.raises(InputError) as err:
        build_matrix(tasks, scores, {}, MODELS, COSTS, False, "toy")
    assert err.value.field == "score::small" and "g1" in str(err.value)


def test_every_task_unscorable_is_an_error(tmp_path):
    tasks = write_tasks(tmp_path / "tasks.jsonl", [task("g1")])
    scores = {
        m: write_scores(tmp_path / f"{m}.csv", m, [("g1", "", "not_scorable")]) for m in MODELS
    }
    with pytest.raises(InputError, match="every task is not_scorable"):
        build_matrix(tasks, scores, {}, MODELS, COSTS, False, "toy")
