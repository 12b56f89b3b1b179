"""`codyn route`: routing prompts with a router trained here (knn on MiniLM embeddings)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import route_fixtures as rf

from codyn.route_cli import main, read_prompts
from codyn.routers import load_router

HARD = "Find the shortest path in a weighted graph with Dijkstra and count the shortest paths."
EASY = "Write a function that reverses a list of strings."


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("route")
    mp = pytest.MonkeyPatch()
    mp.setenv("CODYN_CACHE", str(root / "cache"))
    targets = rf.write_targets(root / "splits" / "toy" / "targets.parquet")
    router_dir = rf.train_router("knn", targets, root / "knn", {"k": 3})
    yield {"root": root, "targets": targets, "router": router_dir}
    mp.undo()


def run_json(capsys, argv):
    assert main([*argv, "--json"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_routes_prompts_and_prints_every_score(trained, capsys):
    router = load_router(trained["router"])
    expected = router.route([HARD, EASY])
    assert expected == ["sim-large", "sim-small"]  # the router learnt the two kinds apart
    records = run_json(capsys, ["--router", str(trained["router"]), HARD, EASY])
    assert [r["model"] for r in records] == expected
    scores = router.predict_scores([HARD, EASY])
    for rec, row in zip(records, scores, strict=True):
        assert set(rec["scores"]) == set(rf.MODELS)
        assert [rec["scores"][m] for m in router.models] == pytest.approx(row.tolist())
        assert rec["fallback_order"][0] == rec["model"] and len(rec["fallback_order"]) == 3
        assert rec["cost_weight"] == 0.0
    assert main(["--router", str(trained["router"]), HARD]) == 0
    text = capsys.readouterr().out
    assert "-> sim-large" in text and all(m in text for m in rf.MODELS)


def test_cost_weight_moves_hard_prompts_to_cheaper_models(trained, capsys):
    [rec] = run_json(capsys, ["--router", str(trained["router"]), "--cost-weight", "5", HARD])
    assert rec["model"] == "sim-small" and rec["cost_weight"] == 5.0


def test_prompts_from_files_and_stdin(trained, capsys, monkeypatch, tmp_path):
    lines = tmp_path / "prompts.txt"
    lines.write_text(f"{HARD}\n\n{EASY}\n", encoding="utf-8")
    assert [
        r["model"]
        for r in run_json(capsys, ["--router", str(trained["router"]), "--file", str(lines)])
    ] == [
        "sim-large",
        "sim-small",
    ]
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps({"id": "t1", "prompt": HARD}) + "\n", encoding="utf-8")
    [rec] = run_json(capsys, ["--router", str(trained["router"]), "--file", str(tasks)])
    assert rec["id"] == "t1" and rec["model"] == "sim-large"
    # stdin is one prompt by default (code spans lines)
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{EASY}\nwith two lines\n"))
    [rec] = run_json(capsys, ["--router", str(trained["router"])])
    assert rec["model"] == "sim-small"


def test_target_share_calibrates_on_training_prompts(trained, capsys):
    [high] = run_json(capsys, ["--router", str(trained["router"]), "--target-share", "1", HARD])
    # a 100% budget for the dearest model is met by the weight that sends every call there
    assert high["cost_weight"] <= 0.0 and high["model"] == "sim-large"
    assert high["calibration"]["share"] == 1.0
    assert "training prompts" in high["calibration"]["source"]
    [none] = run_json(capsys, ["--router", str(trained["router"]), "--target-share", "0", HARD])
    assert none["calibration"]["share"] == 0.0 and none["model"] != "sim-large"
    assert none["cost_weight"] > 0


def test_target_share_without_training_prompts_uses_the_given_ones(trained, capsys, tmp_path):
    moved = tmp_path / "router"
    shutil.copytree(trained["router"], moved)
    meta = json.loads((moved / "router.json").read_text())
    meta["trained_on"] = [{"path": str(tmp_path / "gone.parquet"), "sha256": "0" * 64}]
    (moved / "router.json").write_text(json.dumps(meta))
    records = run_json(
        capsys,
        ["--router", str(moved), "--target-share", "0.5", HARD, EASY, HARD + " now", EASY + "!"],
    )
    assert "prompt(s) given" in records[0]["calibration"]["source"]
    shares = np.mean([r["model"] == "sim-large" for r in records])
    assert shares <= 0.5


def test_bad_inputs(trained, capsys, tmp_path):
    router = str(trained["router"])
    assert main(["--router", str(tmp_path / "nowhere"), HARD]) == 1
    assert "router.json missing" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"prompt": \n', encoding="utf-8")
    assert main(["--router", router, "--file", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "bad.jsonl" in err and "line 2" in err
    empty = tmp_path / "noprompt.jsonl"
    empty.write_text('{"id": "x", "text": "hi"}\n', encoding="utf-8")
    assert main(["--router", router, "--file", str(empty)]) == 1
    assert "field 'prompt'" in capsys.readouterr().err
    assert main(["--router", router, "--cost-weight", "-1", HARD]) == 2
    assert main(["--router", router, "--target-share", "1.5", HARD]) == 2
    with pytest.raises(SystemExit):
        main(["--router", router, "--cost-weight", "1", "--target-share", "0.2", HARD])
    blank = tmp_path / "blank.txt"
    blank.write_text("\n\n", encoding="utf-8")
    assert main(["--router", router, "--file", str(blank)]) == 2
    with pytest.raises(Exception, match="does not exist"):
        read_prompts(str(tmp_path / "missing.txt"))


def test_codyn_route_command_reads_stdin(trained):
    env = rf.python_env(trained["root"] / "cache")
    out = subprocess.run(
        [sys.executable, "-m", "codyn.cli", "route", "--router", str(trained["router"]), "--json"],
        input=HARD,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["model"] == "sim-large"


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    from codyn.routers.pipeline import train_router

    root = tmp_path_factory.mktemp("route-oof")
    mp = pytest.MonkeyPatch()
    mp.setenv("CODYN_CACHE", str(root / "cache"))
    targets = rf.write_targets(root / "splits" / "toy" / "targets.parquet")
    meta = train_router(
        [targets], "setting1", {"type": "knn", "k": 3}, root / "knn",
        seed=2, evaluation={"calibration_folds": 4, "cost_budgets": [0.5]},
    )  # fmt: skip
    yield {"dir": root / "knn", "meta": meta}
    mp.undo()


def test_target_share_and_target_use_the_out_of_fold_choice(calibrated, capsys):
    from codyn.evaluation import calibration

    router = str(calibrated["dir"])
    [rec] = run_json(capsys, ["--router", router, "--target-share", "0.5", HARD])
    assert "out-of-fold predictions" in rec["calibration"]["source"]
    oof = calibration.load_oof(calibrated["dir"], calibrated["meta"])
    expect = calibration.choose_weight(
        oof.pred, oof.scores, oof.costs, calibration.Target("share", 0.5), oof.sbs
    )
    assert rec["cost_weight"] == pytest.approx(expect["cost_weight"])
    assert rec["calibration"]["share"] == pytest.approx(expect["share_most_expensive"])
    assert rec["calibration"]["share"] <= 0.5
    recorded = calibrated["meta"]["calibration"]["targets"]
    for name in ("parity", "budget-0.5", "share-0.2"):
        [rec] = run_json(capsys, ["--router", router, "--target", name, HARD])
        assert rec["cost_weight"] == recorded[name]["cost_weight"]
        assert f"target {name}" in rec["calibration"]["source"]
    assert main(["--router", router, "--target", "parity", HARD]) == 0
    assert "out-of-fold" in capsys.readouterr().err
    assert main(["--router", router, "--target", "budget-0.9", HARD]) == 1
    assert "no calibration target 'budget-0.9'" in capsys.readouterr().err


def test_target_without_a_recorded_calibration_falls_back_to_zero(trained, capsys):
    [rec] = run_json(capsys, ["--router", str(trained["router"]), "--target", "parity", HARD])
    assert rec["cost_weight"] == 0.0
    assert "records no out-of-fold calibration" in rec["calibration"]["source"]
    [rec] = run_json(capsys, ["--router", str(trained["router"]), "--target-share", "0.5", HARD])
    assert "in-sample" in rec["calibration"]["source"]
