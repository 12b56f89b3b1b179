"""codyn plan: tasks, scorability, calls, tokens, dollars, cache hits, budget, the run's gate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from codyn import plan as codyn_plan
from codyn.cache import ResponseCache, cache_key, cache_path
from codyn.config import load_config
from codyn.errors import InputError
from codyn.generate import task_messages

REPO = Path(__file__).resolve().parent.parent
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def _bugs(path: Path, n: int = 4) -> Path:
    """A RunBugRun python_valid0.jsonl in the upstream format (no tests)."""
    with open(path, "w") as fh:
        for i in range(n):
            rec = {
                "id": i,
                "problem_id": f"p{i % 2}",
                "buggy_code": f"print({i} +)\n",
                "fixed_code": f"print({i})\n",
                "errors": None,
            }
            fh.write(json.dumps(rec) + "\n")
    return path


def _config(tmp_path, **over):
    base = {
        "run_datasets": ["made-sven"],
        "datasets": {"made-sven": {"adapter": "made-sven", "source": "made", "n": 6}},
        "portfolio": ["a", "b"],
        "models": {
            "a": {
                "backend": "bedrock",
                "model_id": "m-a",
                "cost": 1,
                "price_in": 1.0,
                "price_out": 2.0,
            },
            "b": {
                "backend": "bedrock",
                "model_id": "m-b",
                "cost": 5,
                "price_in": 10.0,
                "price_out": 20.0,
            },
        },
        "generation": {"max_tokens": 100},
        "run_routers": ["random"],
    }
    base.update(over)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(json.dumps(base))
    return load_config(REPO / "config.yaml", cfg)


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_counts_tokens_dollars_and_scorability(in_tmp):
    config = _config(in_tmp)
    plan = codyn_plan.make_plan(config)
    (d,) = plan.datasets
    assert d.tasks > 0 and d.scorable and d.exact
    assert d.scoring == {"label (accuracy, A.7 penalty)": d.tasks}
    a, b = d.models
    assert a.calls == b.calls == d.tasks and a.cached == 0
    assert a.output_tokens_max == d.tasks * 100
    assert a.output_tokens == d.tasks * min(codyn_plan.OUTPUT_TOKENS_BY_KIND["classify"], 100)
    assert a.usd_max == pytest.approx((a.input_tokens * 1.0 + a.output_tokens_max * 2.0) / 1e6)
    assert b.usd_max == pytest.approx(10 * a.usd_max)
    assert plan.usd_max == pytest.approx(a.usd_max + b.usd_max)
    assert plan.problems() == []
    text = codyn_plan.render(plan)
    assert "every task scorable" in text and "OK: the run may start" in text


def test_cached_answers_are_counted_and_not_paid(in_tmp):
    from codyn.backends import make_backend
    from codyn.datasets import build_tasks, fetch_dataset

    config = _config(in_tmp)
    raw = Path("data/default/raw/made-sven")
    fetch_dataset("made-sven", config["datasets"]["made-sven"], raw, None)
    tasks = build_tasks("made-sven", config["datasets"]["made-sven"], raw, config["seed"]).tasks
    backend = make_backend("a", config["models"]["a"], config["generation"])
    cache = ResponseCache(cache_path("cache", "bedrock", "a"))
    for task in tasks[:2]:
        key = cache_key("bedrock", "m-a", task_messages(task), backend.params(), {})
        cache.append({"key": key, "text": "No", "error": None})
    cache.close()
    before = codyn_plan.make_plan(config)  # raw files fetched: exact tasks from there
    a = before.datasets[0].models[0]
    assert before.datasets[0].basis == "fetched raw files"
    assert a.cached == 2
    full = a.input_tokens * 1.0 + a.output_tokens_max * 2.0
    assert a.usd_max == pytest.approx(full / 1e6 * (1 - 2 / a.calls))


def test_unscorable_dataset_stops_naming_it(in_tmp):
    bugs = _bugs(in_tmp / "python_valid0.jsonl")
    config = _config(
        in_tmp,
        run_datasets=["made-sven", "rbr"],
        datasets={"rbr": {"adapter": "runbugrun", "source": "file", "path": str(bugs)}},
    )
    plan = codyn_plan.make_plan(config)
    rbr = plan.datasets[1]
    assert not rbr.scorable and rbr.unscorable == 4
    (problem,) = plan.problems()
    assert "'rbr'" in problem and "tests file not configured" in problem
    with pytest.raises(InputError, match="run stopped before generation: dataset 'rbr'"):
        codyn_plan.check_plan(config, "plan.json", "plan.txt")
    assert json.loads(Path("plan.json").read_text())["problems"] == [problem]
    assert "NOT SCORABLE" in Path("plan.txt").read_text()


def test_budget_refuses_when_the_bound_exceeds_it(in_tmp):
    config = _config(in_tmp, budget_usd=0.0001)
    plan = codyn_plan.make_plan(config)
    (problem,) = plan.problems()
    assert "exceeds budget_usd $0.00" in problem
    roomy = _config(in_tmp, budget_usd=plan.usd_max + 1)
    assert codyn_plan.make_plan(roomy).problems() == []


def test_paper_config_plans_offline_from_pinned_counts(in_tmp, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("plan must not touch the network")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    config = load_config(REPO / "config.yaml", REPO / "config" / "paper.yaml")
    plan = codyn_plan.make_plan(config)
    by_name = {d.dataset: d for d in plan.datasets}
    assert set(by_name) == {
        "apps",
        "runbugrun",
        "sven",
        "refinement",
        "translation",
        "bigcodebench",
    }
    assert all(not d.exact and d.basis.startswith("pinned counts") for d in plan.datasets)
    assert by_name["apps"].tasks == 5000 and by_name["refinement"].tasks == 5000
    assert by_name["translation"].tasks == 1499
    assert all(d.scorable for d in plan.datasets)  # runbugrun: the release carries tests
    assert all(m.backend == "replay" and not m.paid for m in by_name["bigcodebench"].models)
    assert 0 < plan.usd < plan.usd_max <= config["budget_usd"]
    assert plan.problems() == []


def test_cli_exit_status(in_tmp):
    bugs = _bugs(in_tmp / "python_valid0.jsonl")
    cfg = in_tmp / "bad.yaml"
    cfg.write_text(
        json.dumps(
            {
                "run_datasets": ["rbr"],
                "datasets": {"rbr": {"adapter": "runbugrun", "source": "file", "path": str(bugs)}},
            }
        )
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "codyn.cli",
            "plan",
            "--configfile",
            str(REPO / "config.yaml"),
            str(REPO / "config" / "demo.yaml"),
            str(cfg),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 1, done.stderr
    assert "STOP: dataset 'rbr'" in done.stdout


def test_pipeline_stops_before_any_generation(in_tmp):
    """Rule plan runs before every generate job; an unscorable dataset ends the run there."""
    for name in ("Snakefile", "rules", "scripts", "envs", "config.yaml", "config", "report"):
        src = REPO / name
        if src.is_dir():
            import shutil

            shutil.copytree(src, in_tmp / name)
        elif src.exists():
            (in_tmp / name).write_bytes(src.read_bytes())
    bugs = _bugs(in_tmp / "python_valid0.jsonl")
    (in_tmp / "bad.yaml").write_text(
        json.dumps(
            {
                "experiment": "demo",
                "run_datasets": ["made-sven", "rbr"],
                "datasets": {"rbr": {"adapter": "runbugrun", "source": "file", "path": str(bugs)}},
                "run_routers": ["random"],
            }
        )
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    target = "results/demo/responses/made-sven/sim-llama-3.1-8b.jsonl"
    done = subprocess.run(
        [SNAKEMAKE, "--cores", "1", target, "--configfile", "config/demo.yaml", "bad.yaml"],
        cwd=in_tmp,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode != 0
    assert "run stopped before generation: dataset 'rbr'" in done.stderr
    # Stopped before any job: not even the tasks were prepared.
    assert not (in_tmp / "results" / "demo" / "responses").exists()
    assert not (in_tmp / "data" / "demo" / "tasks").exists()
