"""Importing published score tables: the generic table, LiveCodeBench, RouterBench, `codyn import`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from codyn.config import load_config, relative_costs
from codyn.errors import InputError
from codyn.importers import import_files, import_matrix, main
from codyn.matrix import Matrix


def table(**extra):
    base = {
        "id": ["a", "b", "c"],
        "question": ["p1", "p2", "p3"],
        "m1": [1.0, 0.0, 0.5],
        "m2": [0.0, 1.0, 1.0],
    }
    base.update(extra)
    return pd.DataFrame(base)


def spec(path, **extra):
    out = {
        "format": "table",
        "path": str(path),
        "id_column": "id",
        "prompt_column": "question",
        "score_columns": {"cheap": "m1", "dear": "m2"},
    }
    out.update(extra)
    return out


COSTS = {"cheap": 1.0, "dear": 10.0}


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "parquet"])
def test_generic_table_formats(tmp_path, suffix):
    path = tmp_path / f"t.{suffix}"
    frame = table()
    {
        "csv": lambda: frame.to_csv(path, index=False),
        "jsonl": lambda: frame.to_json(path, orient="records", lines=True),
        "parquet": lambda: frame.to_parquet(path),
    }[suffix]()
    m = import_matrix(spec(path), dataset="pub", models=["cheap", "dear"], costs=COSTS)
    assert m.models == ["cheap", "dear"] and m.costs == COSTS
    assert m.scores().loc["c"].tolist() == [0.5, 1.0]
    assert m.frame["prompt"].tolist() == ["p1", "p2", "p3"]
    assert (m.frame["kind"] == "generate").all() and np.isnan(m.usd().to_numpy()).all()
    assert not m.simulated


def test_portfolio_selects_and_orders_columns(tmp_path):
    path = tmp_path / "t.csv"
    table().to_csv(path, index=False)
    m = import_matrix(spec(path), dataset="pub", models=["dear"], costs={"dear": 3.0})
    assert m.models == ["dear"] and list(m.scores().columns) == ["dear"]
    with pytest.raises(InputError, match="not in the import spec"):
        import_matrix(
            spec(path), dataset="pub", models=["dear", "ghost"], costs={"dear": 3.0, "ghost": 1}
        )


def test_cost_columns_and_mean_usd(tmp_path):
    path = tmp_path / "t.csv"
    table(c1=[0.1, 0.2, 0.3], c2=[1.0, 2.0, 6.0]).to_csv(path, index=False)
    s = spec(path, cost_columns={"cheap": "c1", "dear": "c2"}, relative_cost="mean_usd")
    m = import_matrix(s, dataset="pub")
    assert m.costs == pytest.approx({"cheap": 0.2, "dear": 3.0})
    assert m.usd().loc["c", "dear"] == 6.0


@pytest.mark.parametrize(
    ("frame_extra", "spec_extra", "costs", "field", "words"),
    [
        ({"id": ["a", "b", "a"]}, {}, COSTS, "id", ["duplicate ids", "'a' at", "row 0", "row 2"]),
        ({"m2": [0.0, None, 1.0]}, {}, COSTS, "m2", ["missing", "'b'", "row 1"]),
        ({"m1": [1.0, 2.0, 0.5]}, {}, COSTS, "m1", ["outside [0.0, 1.0]", "'b'"]),
        ({"m1": [1.0, -0.1, 0.5]}, {}, COSTS, "m1", ["outside", "'b'"]),
        ({}, {}, {**COSTS, "ghost": 2.0}, "costs", ["unknown models in the cost map", "ghost"]),
        ({}, {}, {"cheap": 1.0}, "costs", ["without a cost", "dear"]),
        ({}, {"prompt_column": "nope"}, COSTS, "nope", ["missing columns"]),
        ({"question": ["p1", None, "p3"]}, {}, COSTS, "question", ["missing prompt", "'b'"]),
    ],
)
def test_bad_tables_name_rows_and_columns(tmp_path, frame_extra, spec_extra, costs, field, words):
    path = tmp_path / "t.csv"
    table(**frame_extra).to_csv(path, index=False)
    with pytest.raises(InputError) as err:
        import_matrix(spec(path, **spec_extra), dataset="pub", costs=costs)
    assert err.value.field == field
    for w in words:
        assert w in str(err.value)
    assert str(path) in str(err.value)


def test_declared_score_range_and_scale(tmp_path):
    path = tmp_path / "t.csv"
    table(m1=[100.0, 0.0, 50.0], m2=[-1.0, 2.0, 0.0]).to_csv(path, index=False)
    with pytest.raises(InputError, match="after scaling by 0.01"):
        import_matrix(spec(path, score_scale=0.01), dataset="pub", costs=COSTS)
    m = import_matrix(
        spec(path, score_columns={"cheap": "m1"}, score_scale=0.01),
        dataset="pub",
        costs={"cheap": 1},
    )
    assert m.scores()["cheap"].tolist() == [1.0, 0.0, 0.5]
    m = import_matrix(
        spec(path, score_columns={"x": "m2"}, score_range=[-1, 2]), dataset="pub", costs={"x": 1}
    )
    assert m.score_range == (-1.0, 2.0)


def test_mirror_dir_and_several_files(tmp_path):
    (tmp_path / "sub").mkdir()
    table().iloc[:2].to_csv(tmp_path / "sub" / "a.csv", index=False)
    table().iloc[2:].to_csv(tmp_path / "sub" / "b.csv", index=False)
    s = spec("unused", files=["sub/a.csv", "sub/b.csv"])
    del s["path"]
    assert import_files(s, str(tmp_path)) == {
        "tables": [str(tmp_path / "sub/a.csv"), str(tmp_path / "sub/b.csv")]
    }
    m = import_matrix(s, dataset="pub", costs=COSTS, mirror_dir=str(tmp_path))
    assert m.task_ids == ["a", "b", "c"]
    # a duplicate across files names the file of each row
    table().iloc[1:].to_csv(tmp_path / "sub" / "b.csv", index=False)
    with pytest.raises(InputError, match=r"'b' at .*a.csv row 1, .*b.csv row 0"):
        import_matrix(s, dataset="pub", costs=COSTS, mirror_dir=str(tmp_path))


# ---- LiveCodeBench ---------------------------------------------------------------------


def lcb_files(tmp_path, perf=None, problems=None):
    perf = perf or [
        {"question_id": q, "model": m, "pass@1": v}
        for q, vals in {"q1": (100.0, 0.0), "q2": (30.0, 60.0)}.items()
        for m, v in zip(["Tiny (n=1)", "Huge"], vals, strict=True)
    ]
    problems = problems or [
        {
            "question_id": "q1",
            "question_title": "A",
            "question_content": "Do one.",
            "starter_code": "",
        },
        {
            "question_id": "q2",
            "question_title": "B",
            "question_content": "Do two.",
            "starter_code": "class S:",
        },
    ]
    p = tmp_path / "perf.json"
    s = tmp_path / "subs.json"
    p.write_text(json.dumps({"performances": perf, "models": []}))
    s.write_text(json.dumps(problems))
    return {
        "format": "lcb",
        "performances": "perf.json",
        "submissions": ["subs.json"],
        "score_scale": 0.01,
        "models": {"tiny": "Tiny (n=1)", "huge": "Huge"},
    }


def test_lcb_reader(tmp_path):
    s = lcb_files(tmp_path)
    m = import_matrix(
        s,
        dataset="lcb",
        models=["tiny", "huge"],
        costs={"tiny": 1, "huge": 5},
        mirror_dir=str(tmp_path),
    )
    assert m.scores().loc["q2"].tolist() == pytest.approx([0.3, 0.6])
    prompt = m.frame.set_index("task_id").at["q2", "prompt"]
    assert prompt.startswith("B\n\nDo two.") and "class S:" in prompt


def test_lcb_bad_inputs(tmp_path):
    perf = [{"question_id": "q1", "model": "Huge", "pass@1": 10.0}] * 2 + [
        {"question_id": "q1", "model": "Tiny (n=1)", "pass@1": 0.0}
    ]
    s = lcb_files(tmp_path, perf=perf)
    with pytest.raises(InputError, match="duplicate"):
        import_matrix(s, dataset="lcb", costs={"tiny": 1, "huge": 5}, mirror_dir=str(tmp_path))
    perf = [
        {"question_id": "q1", "model": "Huge", "pass@1": 10.0},
        {"question_id": "q2", "model": "Huge", "pass@1": 0.0},
        {"question_id": "q1", "model": "Tiny (n=1)", "pass@1": 0.0},
    ]
    s = lcb_files(tmp_path, perf=perf)
    with pytest.raises(InputError) as err:
        import_matrix(s, dataset="lcb", costs={"tiny": 1, "huge": 5}, mirror_dir=str(tmp_path))
    assert "'q2'" in str(err.value) and err.value.field == "Tiny (n=1)"
    s = lcb_files(tmp_path, problems=[{"question_id": "q1", "question_content": "x"}])
    with pytest.raises(InputError, match="no statement"):
        import_matrix(s, dataset="lcb", costs={"tiny": 1, "huge": 5}, mirror_dir=str(tmp_path))
    s = lcb_files(tmp_path)
    s["models"] = {"ghost": "Ghost"}
    with pytest.raises(InputError, match="not in the leaderboard"):
        import_matrix(s, dataset="lcb", costs={"ghost": 1}, mirror_dir=str(tmp_path))


# ---- RouterBench -----------------------------------------------------------------------


def test_routerbench_reader(tmp_path):
    frame = pd.DataFrame(
        {
            "sample_id": ["mbpp.dev.0", "mbpp.dev.1"],
            "prompt": ["['Write a function.']", "['Sum a list.']"],
            "org/small": [0.0, 1.0],
            "big": [1.0, 1.0],
            "org/small|total_cost": [0.001, 0.003],
            "big|total_cost": [0.01, 0.03],
        }
    )
    frame.to_csv(tmp_path / "rb.csv", index=False)
    s = {
        "format": "routerbench",
        "files": ["rb.csv"],
        "models": {"small": "org/small", "big": "big"},
    }
    m = import_matrix(
        s,
        dataset="rb",
        models=["small", "big"],
        costs={"small": 9, "big": 9},
        mirror_dir=str(tmp_path),
    )
    assert m.frame["prompt"].tolist() == ["Write a function.", "Sum a list."]
    assert m.costs == pytest.approx({"small": 0.002, "big": 0.02})  # mean $ per call
    assert m.usd().loc["mbpp.dev.1"].tolist() == pytest.approx([0.003, 0.03])


# ---- CLI --------------------------------------------------------------------------------


def test_cli_generic_and_nothing_written_on_error(tmp_path, capsys):
    path = tmp_path / "t.csv"
    table().to_csv(path, index=False)
    out = tmp_path / "out.parquet"
    args = [
        str(path),
        "-o",
        str(out),
        "--id-column",
        "id",
        "--prompt-column",
        "question",
        "--score",
        "cheap=m1",
        "--score",
        "dear=m2",
    ]
    assert main([*args, "--cost", "cheap=1"]) == 1
    assert "dear" in capsys.readouterr().err and not out.exists()
    assert main([*args, "--cost", "cheap=1", "--cost", "dear=4"]) == 0
    m = Matrix.load(out)
    assert m.costs == {"cheap": 1.0, "dear": 4.0} and m.meta["dataset"] == "out"


def test_cli_with_config(tmp_path, repo_root):
    path = tmp_path / "t.csv"
    table().to_csv(path, index=False)
    cfg = {
        "run_datasets": ["pub"],
        "mirror_dir": str(tmp_path),
        "datasets": {"pub": {"adapter": "import", "import": spec("t.csv")}},
        "portfolio": ["cheap", "dear"],
        "models": {
            "cheap": {"backend": "import", "cost": 1},
            "dear": {"backend": "import", "cost": 7},
        },
        "run_routers": [],
    }
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(json.dumps(cfg))
    out = tmp_path / "pub.parquet"
    rc = main(
        [
            "--config",
            str(repo_root / "config.yaml"),
            "--config",
            str(cfg_path),
            "--dataset",
            "pub",
            "-o",
            str(out),
        ]
    )
    assert rc == 0 and Matrix.load(out).costs == {"cheap": 1.0, "dear": 7.0}


# ---- the real matrices in ../shared/datasets -----------------------------------------------


def real(repo_root, shared_datasets, name):
    cfg = load_config(repo_root / "config.yaml", repo_root / "config" / f"{name}.yaml")
    dataset = cfg["run_datasets"][0]
    return cfg, import_matrix(
        cfg["datasets"][dataset]["import"],
        dataset=dataset,
        models=cfg["portfolio"],
        costs=relative_costs(cfg),
        mirror_dir=str(shared_datasets),
    )


def test_real_lcb_ladder(repo_root, shared_datasets):
    cfg, m = real(repo_root, shared_datasets, "lcb-ladder5")
    assert m.frame.shape[0] == 400 and m.models == cfg["portfolio"]
    assert m.costs == {
        "DSCoder-1.3b-Ins": 1,
        "DSCoder-6.7b-Ins": 1.6,
        "DSCoder-33b-Ins": 5,
        "Claude-3-Sonnet": 16,
        "GPT-4-Turbo-2024-04-09": 72,
    }
    # GPT-4-Turbo's leaderboard mean is 43.52 %
    assert m.scores()["GPT-4-Turbo-2024-04-09"].mean() == pytest.approx(0.43525)
    assert m.frame["prompt"].str.len().min() > 50


def test_real_lcb_all(repo_root, shared_datasets):
    _, m = real(repo_root, shared_datasets, "lcb-all")
    assert m.frame.shape[0] == 400 and len(m.models) == 45


def test_real_routerbench_costs_match_config(repo_root, shared_datasets):
    cfg, m = real(repo_root, shared_datasets, "routerbench-mbpp")
    assert m.frame.shape[0] == 427 and len(m.models) == 11
    assert m.scores()["gpt-4-1106-preview"].mean() == pytest.approx(0.686, abs=5e-4)
    for model in m.models:  # the config's cost documents the mean $ per call the import computes
        assert cfg["models"][model]["cost"] == pytest.approx(m.costs[model], rel=1e-4)
    assert m.usd().notna().all().all()


@pytest.mark.parametrize(
    ("name", "n_models"), [("lcb-ladder5", 5), ("lcb-all", 45), ("routerbench-mbpp", 11)]
)
def test_shipped_configs_validate(repo_root, name, n_models):
    # the default's routers pair simulated models; only run_routers are checked against this portfolio
    cfg = load_config(repo_root / "config.yaml", repo_root / "config" / f"{name}.yaml")
    assert len(cfg["portfolio"]) == n_models
    assert all(cfg["models"][m]["backend"] == "import" for m in cfg["portfolio"])
    (dataset,) = cfg["run_datasets"]
    assert cfg["datasets"][dataset]["adapter"] == "import"
