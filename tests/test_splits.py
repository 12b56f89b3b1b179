"""Seeded splits, train-only standard scaling and ranking-score targets."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from codyn.errors import InputError
from codyn.matrix import Matrix
from codyn.routing_data import load_routing_data
from codyn.splits import (
    build_targets,
    make_split,
    n_test_for,
    read_split,
    write_split,
    write_targets,
)

SETTINGS = {"setting1": 0.0, "setting2": 0.25, "setting3": 0.5}


@pytest.mark.parametrize(
    ("n", "test"),
    [(1526, 381), (3765, 941), (5000, 1250), (1500, 375), (644, 161)],  # paper Table 3
)
def test_test_size_rounding_reproduces_table3(n, test):
    assert n_test_for(n, 0.25) == test


def test_small_sizes_keep_both_sides():
    assert n_test_for(2, 0.25) == 1 and n_test_for(3, 0.25) == 1 and n_test_for(1, 0.25) == 1
    with pytest.raises(ValueError):
        n_test_for(10, 1.0)


def test_split_is_seeded_and_stable():
    ids = [f"t{i}" for i in range(40)]
    a = make_split(ids, dataset="apps", seed=7, test_size=0.25)
    b = make_split(list(reversed(ids)), dataset="apps", seed=7, test_size=0.25)
    assert a == b  # input order does not matter
    assert len(a["test"]) == 10 and len(a["train"]) == 30
    assert set(a["train"]) | set(a["test"]) == set(ids) and not set(a["train"]) & set(a["test"])
    assert make_split(ids, dataset="sven", seed=7, test_size=0.25)["test"] != a["test"]
    assert make_split(ids, dataset="apps", seed=8, test_size=0.25)["test"] != a["test"]


def test_held_out_is_all_test():
    s = make_split(["a", "b", "c"], dataset="bcb", seed=1, test_size=0.25, held_out=True)
    assert s["train"] == [] and s["test"] == ["a", "b", "c"] and s["held_out"]


def toy_matrix(simulated=False):
    frame = pd.DataFrame(
        {
            "task_id": ["t1", "t2", "t3", "t4"],
            "dataset": "toy",
            "kind": "generate",
            "prompt": ["p1", "p2", "p3", "p4"],
            "score::cheap": [1.0, 0.0, 1.0, 1.0],
            "score::mid": [0.5, 0.5, 0.5, 0.0],
            "score::dear": [1.0, 1.0, 0.0, 1.0],
            "usd::cheap": np.nan,
            "usd::mid": np.nan,
            "usd::dear": np.nan,
        }
    )
    return Matrix(
        frame,
        ["cheap", "mid", "dear"],
        {"cheap": 1.0, "mid": 5.0, "dear": 9.0},
        simulated,
        "t",
        {"dataset": "toy"},
    )


def test_targets_scale_on_train_only_and_rank():
    m = toy_matrix()
    split = {"train": ["t1", "t2", "t3"], "test": ["t4"]}
    frame, meta = build_targets(m, split, settings=SETTINGS)
    assert frame["split"].tolist() == ["train", "train", "train", "test"]
    # cheap on train: [1, 0, 1] -> mean 2/3, population std sqrt(2)/3
    mean, std = 2 / 3, np.sqrt(2) / 3
    assert meta["scaler"]["cheap"] == pytest.approx({"mean": mean, "std": std})
    assert frame["norm::cheap"].tolist() == pytest.approx([(v - mean) / std for v in [1, 0, 1, 1]])
    # mid is constant on train -> std 1, norm = score - 0.5
    assert meta["scaler"]["mid"] == {"mean": 0.5, "std": 1.0}
    assert frame["norm::mid"].tolist() == pytest.approx([0, 0, 0, -0.5])
    # affordability: cheap 1, mid 0.5, dear 0
    for setting, lam in SETTINGS.items():
        assert frame[f"rs::{setting}::cheap"].to_numpy() == pytest.approx(
            frame["norm::cheap"].to_numpy() + lam
        )
        assert frame[f"rs::{setting}::mid"].to_numpy() == pytest.approx(
            frame["norm::mid"].to_numpy() + lam * 0.5
        )
        assert frame[f"rs::{setting}::dear"].to_numpy() == pytest.approx(
            frame["norm::dear"].to_numpy()
        )
    assert (
        meta["settings"] == SETTINGS
        and meta["lambda1"] == 1.0
        and meta["scaler_fit"] == "train rows"
    )
    assert frame["score::dear"].tolist() == [1.0, 1.0, 0.0, 1.0]


def test_lambda1_scales_norm():
    frame, _ = build_targets(
        toy_matrix(),
        {"train": ["t1", "t2", "t3"], "test": ["t4"]},
        settings={"s": 0.5},
        lambda1=2.0,
    )
    assert frame["rs::s::mid"].tolist() == pytest.approx([0.25, 0.25, 0.25, -0.75])


def test_files_roundtrip_through_routing_data(tmp_path):
    mpath = tmp_path / "matrix.parquet"
    toy_matrix(simulated=True).save(mpath)
    spath, tpath = tmp_path / "split.json", tmp_path / "targets.parquet"
    split = write_split(mpath, spath, dataset="toy", seed=3, test_size=0.25, held_out=False)
    assert json.loads(spath.read_text())["test"] == split["test"] and len(split["test"]) == 1
    write_targets(mpath, spath, tpath, settings=SETTINGS)
    data = load_routing_data([tpath], "setting3", split="train")
    assert len(data) == 3 and data.models == ["cheap", "mid", "dear"] and data.simulated
    assert data.lambda2 == 0.5 and data.costs.tolist() == [1.0, 5.0, 9.0]
    assert set(data.task_ids) == set(split["train"])
    data.check()


def test_held_out_targets_fit_on_all_rows(tmp_path):
    split = make_split(
        ["t1", "t2", "t3", "t4"], dataset="toy", seed=1, test_size=0.25, held_out=True
    )
    frame, meta = build_targets(toy_matrix(), split, settings=SETTINGS)
    assert (frame["split"] == "test").all() and meta["scaler"]["cheap"]["mean"] == 0.75
    assert meta["scaler_fit"].startswith("all rows")


def test_split_not_matching_matrix_writes_nothing(tmp_path):
    mpath = tmp_path / "matrix.parquet"
    toy_matrix().save(mpath)
    spath = tmp_path / "split.json"
    spath.write_text(json.dumps({"train": ["t1", "t2"], "test": ["t3", "t9"]}))
    tpath = tmp_path / "targets.parquet"
    with pytest.raises(InputError) as err:
        write_targets(mpath, spath, tpath, settings=SETTINGS)
    assert "t9" in str(err.value) and "t4" in str(err.value)
    assert not tpath.exists() and list(tmp_path.glob(".*tmp")) == []
    spath.write_text(json.dumps({"train": ["t1", "t2", "t3"], "test": ["t3", "t4"]}))
    with pytest.raises(InputError, match="in train and test"):
        read_split(spath)


def test_normalisation_modes_keep_or_change_the_row_order():
    import pandas as pd

    from codyn.splits import fit_scaler

    raw = pd.DataFrame({"weak": [0.0, 0.0, 0.0, 1.0], "strong": [1.0, 1.0, 0.0, 1.0]})
    per_model = fit_scaler(raw, "per_model")
    z = {m: (raw[m] - per_model[m]["mean"]) / per_model[m]["std"] for m in raw}
    # per model: the weak model's single success outranks the strong model's on row 3
    assert z["weak"][3] > z["strong"][3]
    shared = fit_scaler(raw, "per_dataset")
    assert shared["weak"] == shared["strong"]
    assert shared["weak"]["mean"] == pytest.approx(0.5)
    assert fit_scaler(raw, "none") == {m: {"mean": 0.0, "std": 1.0} for m in raw}
    with pytest.raises(InputError, match="normalisation"):
        fit_scaler(raw, "zscore")


def test_sven_penalty_reaches_targets_only_after_scaling(tmp_path):
    """Two models with the same accuracy; one says "vulnerable" to everything (A.7's case).

    The penalty is a per-model constant, so per-model standard scaling erases it
    (before_scaling); applied after scaling it lowers the biased model's targets.
    """
    from codyn.io import write_jsonl
    from codyn.matrix import build_matrix
    from codyn.scoring.score import score_responses

    labels = [True, False, True, False, True, False, True, False]
    tasks = [
        {
            "id": f"s{i}",
            "dataset": "sven",
            "kind": "classify",
            "language": "python",
            "prompt": f"code {i}",
            "reference": None,
            "tests": None,
            "label": lab,
            "meta": {},
        }
        for i, lab in enumerate(labels)
    ]
    write_jsonl(tmp_path / "tasks.jsonl", tasks)
    answers = {
        "biased": ["Yes"] * 8,  # 4/8 right, predicts 8 positives of 4: P = 0.5
        "fair": ["Yes", "No", "No", "Yes", "Yes", "No", "No", "Yes"],  # 4/8 right, P = 0
    }
    scores, responses = {}, {}
    for model, texts in answers.items():
        responses[model] = tmp_path / f"{model}.jsonl"
        write_jsonl(
            responses[model],
            [
                {
                    "task_id": t["id"],
                    "dataset": "sven",
                    "model": model,
                    "backend": "replay",
                    "model_id": None,
                    "key": f"{model}{t['id']}",
                    "text": text,
                    "input_tokens": None,
                    "output_tokens": None,
                    "latency_s": None,
                    "cost_usd": None,
                    "error": None,
                    "simulated": False,
                }
                for t, text in zip(tasks, texts, strict=True)
            ],
        )
        scores[model] = tmp_path / f"{model}.csv"
        score_responses(tmp_path / "tasks.jsonl", responses[model], scores[model], {"workers": 1})
    matrix = build_matrix(
        tmp_path / "tasks.jsonl",
        scores,
        responses,
        ["biased", "fair"],
        {"biased": 1.0, "fair": 2.0},
        False,
        "sven",
    )
    assert matrix.meta["score_penalty"] == pytest.approx({"biased": -0.5, "fair": 0.0})
    split = make_split(matrix.task_ids, dataset="sven", seed=3, test_size=0.25)
    kw = {"settings": {"setting1": 0.0}}
    before, meta_b = build_targets(matrix, split, sven_penalty="before_scaling", **kw)
    after, meta_a = build_targets(matrix, split, **kw)  # the default
    assert meta_a["sven_penalty"] == {
        "stage": "after_scaling",
        "added_after_scaling": {"biased": pytest.approx(-0.5)},
    }
    train = before["split"] == "train"
    # before scaling: the penalty is gone (scaled biased scores equal its scaled accuracy)
    raw_b = before.loc[train, "score::biased"]
    np.testing.assert_allclose(
        before["norm::biased"], (before["score::biased"] - raw_b.mean()) / raw_b.std(ddof=0)
    )
    # after scaling: every biased target is 0.5 lower, the fair model's are unchanged
    np.testing.assert_allclose(after["norm::biased"], before["norm::biased"] - 0.5)
    np.testing.assert_allclose(after["norm::fair"], before["norm::fair"])
    np.testing.assert_allclose(after["rs::setting1::biased"], before["rs::setting1::biased"] - 0.5)
    assert not np.allclose(after["rs::setting1::biased"], before["rs::setting1::biased"])
    # raw scores (what evaluation reads) carry the penalty either way
    assert after["score::biased"].tolist() == before["score::biased"].tolist()
    with pytest.raises(InputError, match="sven_penalty"):
        build_targets(matrix, split, sven_penalty="sideways", **kw)
