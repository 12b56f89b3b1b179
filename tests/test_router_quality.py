"""The router-quality benchmark (benchmarks/router_quality.py) on real matrices.

A short run (one seed, fast routers) of the built-in RouterBench MBPP matrix and of a
user's own matrix brought in through the generic table importer: both need the real
data in ../shared/datasets and skip without it.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO

ROUTERS = ["linear", "sbs", "cheapest", "random", "oracle"]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "router_quality", REPO / "benchmarks" / "router_quality.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def isolated(tmp_path, monkeypatch):
    """The benchmark chdirs to the repo root: give the cwd back; embeddings go to tmp."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CODYN_CACHE", str(tmp_path / "cache"))
    return tmp_path


def _check_outputs(out, name, n_seeds=1):
    md = (out.parent / (out.name + ".md")).read_text()
    data = json.loads((out.parent / (out.name + ".json")).read_text())
    assert (out.parent / (out.name + ".png")).stat().st_size > 10_000
    assert f"## {name}" in md and "Goal check" in md
    for r in ROUTERS:
        assert f"| {r} |" in md
    seeds = data[name]["seeds"]
    assert len(seeds) == n_seeds
    for seed in seeds:
        ref, routers = seed["reference"], seed["routers"]
        e = {r: routers[r]["settings"]["setting1"]["effectiveness"] for r in ROUTERS}
        c = {r: routers[r]["settings"]["setting1"]["cost"] for r in ROUTERS}
        assert e["sbs"] == pytest.approx(ref["e_strong"])
        assert e["oracle"] >= e["sbs"] and e["oracle"] >= e["linear"]
        assert c["cheapest"] <= min(c.values()) + 1e-12
        lin = routers["linear"]
        # deployable numbers: recipe chosen by CV inside train, weights chosen out-of-fold
        assert lin["selection"]["chosen"]["candidates"] in ("all", "sbs-pair")
        assert len(lin["selection"]["tried"]) == 6  # C x candidates (no header here)
        assert set(lin["deployable"]) == {"parity", "budget-0.25", "budget-0.5", "budget-0.75"}
        for t in lin["deployable"].values():
            d = t["test_effectiveness_minus_sbs"]
            assert d["lo"] <= d["mean"] <= d["hi"]
            assert d["mean"] == pytest.approx(t["test"]["effectiveness"] - ref["e_strong"])
            assert t["test_cost_over_sbs"] == pytest.approx(t["test"]["cost"] / ref["c_strong"])
        # OOF budgets are met on the OOF rows (test cost may differ: it is not chosen there)
        for b in (0.25, 0.5, 0.75):
            oof = lin["deployable"][f"budget-{b:g}"]["oof_target"]
            assert oof["cost_over_sbs"] <= b + 1e-9
        curve = lin["curve"]
        # the test-selected parity point exists (the curve starts at "every prompt to the
        # SBS") and is only reported as an upper bound
        op = curve["oracle_operating_point"]
        assert 0 < op["cost_over_sbs"] <= 1.0 + 1e-9
        assert op["effectiveness_minus_sbs"]["mean"] >= 0
        points = np.asarray(curve["points"]["cost"])
        assert points.min() < 0.2 * ref["c_strong"] and points.max() == pytest.approx(
            ref["c_strong"]
        )
    assert "oracle operating point" in md and "Deployable operating points" in md
    return md, data


def test_builtin_routerbench_matrix(bench, shared_datasets, isolated):
    out = isolated / "rq"
    rc = bench.main(
        ["--matrices", "routerbench-mbpp", "--routers", *ROUTERS, "--seeds", "0",
         "--out", str(out)]
    )  # fmt: skip
    assert rc == 0
    md, data = _check_outputs(out, "routerbench-mbpp")
    assert data["routerbench-mbpp"]["seeds"][0]["reference"]["sbs"] == "gpt-4-1106-preview"
    assert "goal mean <= 0.30" in md


def test_own_matrix_through_the_generic_importer(bench, shared_datasets, isolated):
    """A user's CSV (three RouterBench models' real results, renamed) and config."""
    raw = pd.concat(
        pd.read_csv(shared_datasets / "routerbench_mbpp" / f"routerbench_0shot_mbpp_{p}.csv")
        for p in ("train", "test")
    )
    table = pd.DataFrame(
        {
            "id": raw["sample_id"],
            "text": raw["prompt"],
            "small_ok": raw["mistralai/mixtral-8x7b-chat"],
            "mid_ok": raw["gpt-3.5-turbo-1106"],
            "big_ok": raw["gpt-4-1106-preview"],
        }
    )
    table.to_csv(isolated / "mine.csv", index=False)
    config = {
        "run_datasets": ["mine"],
        "generalisation": [],
        "datasets": {
            "mine": {
                "adapter": "import",
                "import": {
                    "format": "table",
                    "path": str(isolated / "mine.csv"),
                    "id_column": "id",
                    "prompt_column": "text",
                    "score_columns": {"small": "small_ok", "mid": "mid_ok", "big": "big_ok"},
                },
            }
        },
        "portfolio": ["small", "mid", "big"],
        "models": {
            "small": {"backend": "import", "cost": 1},
            "mid": {"backend": "import", "cost": 2},
            "big": {"backend": "import", "cost": 28},
        },
        "run_routers": [],
    }
    (isolated / "mine.yaml").write_text(yaml.safe_dump(config))
    out = isolated / "mine-rq"
    rc = bench.main(
        ["--config", "mine.yaml", "--dataset", "mine", "--goal", "0.5", "--routers", *ROUTERS,
         "--seeds", "0", "1", "--out", str(out)]
    )  # fmt: skip
    assert rc == 0
    md, data = _check_outputs(out, "mine", n_seeds=2)
    assert "goal mean <= 0.50" in md
    assert data["mine"]["models"] == ["small", "mid", "big"]
    ref = data["mine"]["seeds"][0]["reference"]
    assert ref["sbs"] == "big" and ref["n_test"] == 106


def test_bad_arguments(bench, isolated, capsys):
    with pytest.raises(SystemExit) as err:
        bench.main(["--config", "x.yaml"])
    assert err.value.code == 2 and "--config and --dataset go together" in capsys.readouterr().err
    (isolated / "gen.yaml").write_text("run_datasets: [humaneval]\n")
    with pytest.raises(SystemExit, match="'humaneval' .* is not an imported matrix"):
        bench.main(["--config", "gen.yaml", "--dataset", "humaneval", "--out", "x"])
