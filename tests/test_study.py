"""Table 1 (paper section 4) against hand-computed values, ties included."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from codyn.matrix import Matrix
from codyn.study import oracle_gap, write_oracle_gap


def test_binary_scores_with_ties():
    # means a .50, b .75, c .75: b and c tie -> SBS is the cheaper b.
    s = [[1, 1, 0], [0, 1, 1], [0, 0, 1], [1, 1, 1]]
    r = oracle_gap(s, ["a", "b", "c"], [1, 2, 3])
    assert r["SBS"] == "b"
    assert r["SBS mean"] == pytest.approx(0.75)
    assert r["Oracle mean"] == pytest.approx(1.0)
    assert r["OG (abs)"] == pytest.approx(0.25)
    # first-argmax winners a, b, c, a: three differ from b
    assert r["WCR"] == pytest.approx(0.75)
    # b is below the row best only in row 3
    assert r["WCR (tie-aware)"] == pytest.approx(0.25)
    assert r["n"] == 4


def test_all_tied_rows_mislead_argmax_wcr():
    # b is cheaper, means tie -> SBS b; the first argmax is always a, yet b is always among the best
    r = oracle_gap([[0, 0], [0, 0], [1, 1]], ["a", "b"], [5, 1])
    assert r["SBS"] == "b" and r["OG (abs)"] == pytest.approx(0.0)
    assert r["WCR"] == pytest.approx(1.0)
    assert r["WCR (tie-aware)"] == pytest.approx(0.0)


def test_continuous_scores():
    s = [[0.2, 0.5], [0.9, 0.1], [0.4, 0.4]]
    r = oracle_gap(s, ["a", "b"], [1, 5])
    assert r["SBS"] == "a" and r["SBS mean"] == pytest.approx(0.5)
    assert r["Oracle mean"] == pytest.approx(0.6)
    assert r["OG (abs)"] == pytest.approx(0.1)
    assert r["WCR"] == pytest.approx(1 / 3)
    assert r["WCR (tie-aware)"] == pytest.approx(1 / 3)


def test_strictly_better_expensive_model_is_sbs_and_negative_scores():
    # SVEN-style penalised scores may be negative
    r = oracle_gap([[-0.2, 0.8], [0.5, 0.3]], ["cheap", "dear"], [1, 72])
    assert r["SBS"] == "dear" and r["SBS mean"] == pytest.approx(0.55)
    assert r["Oracle mean"] == pytest.approx(0.65)
    assert r["WCR"] == pytest.approx(0.5) and r["WCR (tie-aware)"] == pytest.approx(0.5)


def test_bad_shapes():
    with pytest.raises(ValueError):
        oracle_gap(np.zeros((0, 2)), ["a", "b"], [1, 2])
    with pytest.raises(ValueError):
        oracle_gap([[1, 0]], ["a"], [1])


def matrix(dataset, scores, simulated):
    frame = pd.DataFrame(
        {
            "task_id": [f"{dataset}-{i}" for i in range(len(scores))],
            "dataset": dataset,
            "kind": "generate",
            "prompt": "p",
            "score::a": [r[0] for r in scores],
            "score::b": [r[1] for r in scores],
            "usd::a": np.nan,
            "usd::b": np.nan,
        }
    )
    return Matrix(frame, ["a", "b"], {"a": 1.0, "b": 2.0}, simulated, "test", {"dataset": dataset})


def test_table_files(tmp_path):
    paths = {}
    for name, scores, sim in [
        ("real", [[1, 0], [0, 1]], False),
        ("demo", [[0, 1], [0, 1], [1, 1]], True),
    ]:
        paths[name] = tmp_path / f"{name}.parquet"
        matrix(name, scores, sim).save(paths[name])
    csv, md = tmp_path / "t" / "og.csv", tmp_path / "t" / "og.md"
    write_oracle_gap(paths, csv, md, label="unit")
    table = pd.read_csv(csv, index_col="metric")
    assert list(table.columns) == ["real", "demo"]
    assert table.at["SBS", "real"] == "a" and table.at["SBS", "demo"] == "b"
    assert float(table.at["OG (abs)", "real"]) == pytest.approx(0.5)
    assert float(table.at["WCR (tie-aware)", "demo"]) == pytest.approx(0.0)
    assert float(table.at["WCR", "demo"]) == pytest.approx(1 / 3)
    text = md.read_text()
    assert "| SBS | a | b |" in text and "| OG (abs) | 0.5000 | 0.0000 |" in text
    assert "SIMULATED portfolio answers for: demo" in text and "Run: unit" in text


def test_no_simulated_caption_for_real(tmp_path):
    p = tmp_path / "r.parquet"
    matrix("real", [[1, 0]], False).save(p)
    write_oracle_gap({"real": p}, tmp_path / "a.csv", tmp_path / "a.md")
    assert "SIMULATED" not in (tmp_path / "a.md").read_text()
