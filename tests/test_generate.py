"""The generate stage: cache, resumption after a kill, bad inputs, replay, the rule."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from chat_server import running_server, stats

from codyn.backends import make_backend
from codyn.backends.simulated import SimulatedBackend
from codyn.cache import ResponseCache, cache_key, cache_path
from codyn.errors import ConfigError, InputError
from codyn.generate import (
    generate,
    generated_datasets,
    generated_models,
    name_pattern,
    uses_gpu,
)
from codyn.io import read_jsonl
from codyn.records import RESPONSE_FIELDS, validate_record

GEN = {
    "max_tokens": 256,
    "temperature": 0.0,
    "top_p": 1.0,
    "concurrency": 4,
    "timeout_s": 10,
    "max_retries": 2,
    "max_error_rate": 0.0,
    "simulation_k": 6.0,
}
SIM = {"backend": "simulated", "cost": 1, "size_b": 8, "skill": {"generate": 0.5}}


def make_task(i, dataset="demo", prompt=None, **kw):
    rec = {
        "id": f"t{i}",
        "dataset": dataset,
        "kind": "generate",
        "language": "python",
        "prompt": prompt or f"Write function {i}.",
        "reference": f"def f():\n    return {i}\n",
        "tests": None,
        "label": None,
        "meta": {},
    }
    rec.update(kw)
    return rec


def write_tasks(path, tasks):
    path.write_text("".join(json.dumps(t) + "\n" for t in tasks))
    return path


class Counting(SimulatedBackend):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.asked = []

    def complete(self, messages, params, task=None):
        self.asked.append(task["id"])
        return super().complete(messages, params, task)


def test_output_records_in_task_order(tmp_path):
    tasks = write_tasks(tmp_path / "t.jsonl", [make_task(i) for i in range(25)])
    out = tmp_path / "out.jsonl"
    summary = generate(tasks, out, "m", SIM, GEN, 0, tmp_path / "cache")
    recs = list(read_jsonl(out))
    assert [r["task_id"] for r in recs] == [f"t{i}" for i in range(25)]
    for r in recs:
        validate_record(r, RESPONSE_FIELDS)
        assert set(r) == set(RESPONSE_FIELDS)
    assert summary["tasks"] == 25 and summary["asked"] == 25 and summary["errors"] == 0
    assert summary["output_tokens"] == sum(r["output_tokens"] for r in recs)


def test_rerun_and_new_dataset_ask_only_what_is_missing(tmp_path):
    cache = tmp_path / "cache"
    first = write_tasks(tmp_path / "a.jsonl", [make_task(i) for i in range(10)])
    b1 = Counting("m", SIM, GEN, seed=0)
    generate(first, tmp_path / "a.out", "m", SIM, GEN, 0, cache, backend=b1)
    assert len(b1.asked) == 10
    b2 = Counting("m", SIM, GEN, seed=0)
    s = generate(first, tmp_path / "a2.out", "m", SIM, GEN, 0, cache, backend=b2)
    assert b2.asked == [] and s["cached"] == 10
    assert (tmp_path / "a.out").read_bytes() == (tmp_path / "a2.out").read_bytes()
    # Five more tasks: only those are asked.
    more = write_tasks(tmp_path / "b.jsonl", [make_task(i) for i in range(15)])
    b3 = Counting("m", SIM, GEN, seed=0)
    s = generate(more, tmp_path / "b.out", "m", SIM, GEN, 0, cache, backend=b3)
    assert sorted(b3.asked) == sorted(f"t{i}" for i in range(10, 15))
    assert (s["asked"], s["cached"]) == (5, 10)
    # Changing a generation parameter changes the key: everything is asked again.
    b4 = Counting("m", SIM, {**GEN, "max_tokens": 128}, seed=0)
    generate(first, tmp_path / "c.out", "m", SIM, {**GEN, "max_tokens": 128}, 0, cache, backend=b4)
    assert len(b4.asked) == 10


def test_key_depends_on_backend_model_prompt_params():
    msgs = [{"role": "user", "content": "hi"}]
    base = cache_key("openai", "m1", msgs, {"temperature": 0})
    assert base == cache_key("openai", "m1", msgs, {"temperature": 0})
    assert base != cache_key("bedrock", "m1", msgs, {"temperature": 0})
    assert base != cache_key("openai", "m2", msgs, {"temperature": 0})
    assert base != cache_key(
        "openai", "m1", [{"role": "user", "content": "ho"}], {"temperature": 0}
    )
    assert base != cache_key("openai", "m1", msgs, {"temperature": 0.7})


def test_truncated_last_line_is_tolerated_and_repaired(tmp_path):
    cache_dir = tmp_path / "cache"
    tasks = write_tasks(tmp_path / "t.jsonl", [make_task(i) for i in range(6)])
    generate(tasks, tmp_path / "o1", "m", SIM, GEN, 0, cache_dir)
    path = cache_path(cache_dir, "simulated", "m")
    lines = path.read_text().splitlines(keepends=True)
    # A writer killed mid-record: the last record is cut in half, without its newline.
    path.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    b = Counting("m", SIM, GEN, seed=0)
    s = generate(tasks, tmp_path / "o2", "m", SIM, GEN, 0, cache_dir, backend=b)
    assert len(b.asked) == 1 and s["cached"] == 5
    assert len(list(read_jsonl(path))) == 6  # the torn line was cut, not glued to
    assert (tmp_path / "o1").read_bytes() == (tmp_path / "o2").read_bytes()


def test_cache_appends_whole_lines_from_many_threads(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    cache = ResponseCache(tmp_path / "c.jsonl")
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda i: cache.append({"key": str(i), "error": None, "text": "x" * 5000}),
                range(200),
            )
        )
    cache.close()
    answers, errors = cache.load()
    assert len(answers) == 200 and not errors


KILL_SCRIPT = textwrap.dedent(
    """
    import sys
    from codyn.generate import generate
    import json
    cfg = {"backend": "openai", "model_id": "echo", "base_url": sys.argv[1], "cost": 1}
    generate(sys.argv[2], sys.argv[3], "m", cfg, json.loads(sys.argv[5]), 0, sys.argv[4])
    """
)


def test_killed_job_loses_only_in_flight_requests(tmp_path):
    n = 120
    tasks = write_tasks(tmp_path / "t.jsonl", [make_task(i) for i in range(n)])
    out, cache_dir = tmp_path / "out.jsonl", tmp_path / "cache"
    path = cache_path(cache_dir, "openai", "m")
    with running_server(delay=0.05) as url:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                KILL_SCRIPT,
                url,
                str(tasks),
                str(out),
                str(cache_dir),
                json.dumps(GEN),
            ],
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 20
        while time.time() < deadline and (not path.exists() or path.read_text().count("\n") < 20):
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert not out.exists()  # the output is written only at the end
        survived = len(list(read_jsonl(path, allow_truncated_last=True)))
        assert 20 <= survived < n
        asked_before = stats(url)["total"]
        summary = generate(
            tasks,
            out,
            "m",
            {"backend": "openai", "model_id": "echo", "base_url": url, "cost": 1},
            GEN,
            0,
            cache_dir,
        )
        assert summary["cached"] == survived and summary["asked"] == n - survived
        # Paid twice: only what was in flight at the kill (at most one request per thread).
        assert asked_before - survived <= GEN["concurrency"]
        assert stats(url)["total"] == asked_before + (n - survived)
    recs = list(read_jsonl(out))
    assert [r["text"] for r in recs] == [f"echo: Write function {i}." for i in range(n)]


def test_bad_task_files(tmp_path):
    bad = write_tasks(tmp_path / "bad.jsonl", [make_task(0), make_task(1, kind="poem")])
    with pytest.raises(InputError) as err:
        generate(bad, tmp_path / "o", "m", SIM, GEN, 0, tmp_path / "c")
    assert (
        "bad.jsonl" in str(err.value) and "line 2" in str(err.value) and err.value.field == "kind"
    )
    dup = write_tasks(tmp_path / "dup.jsonl", [make_task(0), make_task(0)])
    with pytest.raises(InputError, match="duplicate id"):
        generate(dup, tmp_path / "o", "m", SIM, GEN, 0, tmp_path / "c")
    torn = tmp_path / "torn.jsonl"
    torn.write_text(json.dumps(make_task(0)) + "\n{not json\n" + json.dumps(make_task(2)) + "\n")
    with pytest.raises(InputError, match="line 2"):
        generate(torn, tmp_path / "o", "m", SIM, GEN, 0, tmp_path / "c")
    assert not (tmp_path / "o").exists()


def test_unknown_and_import_backends():
    with pytest.raises(ConfigError, match="import"):
        make_backend("m", {"backend": "import", "cost": 1}, GEN)
    with pytest.raises(ConfigError, match="allowed"):
        make_backend("m", {"backend": "carrier-pigeon", "cost": 1}, GEN)


def test_replay(tmp_path):
    published = tmp_path / "demo.jsonl.gz"
    with gzip.open(published, "wt") as fh:
        fh.write(json.dumps({"task_id": "t0", "solution": "def f():\n    return 0\n"}) + "\n")
        fh.write(json.dumps({"task_id": "up-1", "solution": "x = 1\n"}) + "\n")
    tasks = write_tasks(
        tmp_path / "t.jsonl",
        [make_task(0), make_task(1, meta={"upstream_id": "up-1"}), make_task(2)],
    )
    cfg = {
        "backend": "replay",
        "cost": 1,
        "replay_file": str(tmp_path / "{dataset}.jsonl.gz"),
        "params": {"replay_text_field": "solution"},
    }
    out = tmp_path / "o.jsonl"
    s = generate(tasks, out, "m", cfg, {**GEN, "max_error_rate": 0.5}, 0, tmp_path / "c")
    recs = list(read_jsonl(out))
    assert [r["text"] for r in recs] == ["def f():\n    return 0\n", "x = 1\n", None]
    assert recs[2]["error"].startswith("missing") and s["error_kinds"] == {"missing": 1}
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"task_id": "t0"}) + "\n")
    with pytest.raises(InputError, match="solution"):
        generate(tasks, out, "m", {**cfg, "replay_file": str(bad)}, GEN, 0, tmp_path / "c")


def test_rule_helpers(repo_root):
    config = {
        "datasets": {"a": {"adapter": "apps"}, "b": {"adapter": "import"}},
        "portfolio": ["x", "y", "z"],
        "models": {"x": {"backend": "hf"}, "y": {"backend": "import"}, "z": {"backend": "bedrock"}},
    }
    assert generated_datasets(config, ["a", "b"]) == ["a"]
    assert generated_models(config) == ["x", "z"]
    assert (uses_gpu(config, "x"), uses_gpu(config, "z")) == (1, 0)
    assert name_pattern([]) == "(?!)" and name_pattern(["a.b"]) == r"a\.b"


@pytest.mark.slow
def test_snakemake_rule_runs_generate(repo_root, tmp_path):
    """The real rule, restricted to itself: tasks in, responses + log + provenance out."""
    work = tmp_path / "work"
    tasks = write_tasks(
        Path(work / "data/demo/tasks").mkdir(parents=True)
        or work / "data/demo/tasks/made-repair.jsonl",
        [
            make_task(
                i,
                dataset="made-repair",
                kind="repair",
                tests={"type": "stdio", "cases": [{"input": "", "output": str(i)}]},
            )
            for i in range(8)
        ],
    )
    assert tasks.exists()
    target = "results/demo/responses/made-repair/sim-llama-3.1-8b.jsonl"
    snakemake = shutil.which("snakemake", path=str(Path(sys.executable).parent))
    proc = subprocess.run(
        [
            snakemake,
            target,
            "results/demo/plan/plan.txt",
            "-s",
            str(repo_root / "Snakefile"),
            "--directory",
            str(work),
            "-j1",
            # onstart gates every run (codyn/plan.py); rule plan writes the plan
            "--allowed-rules",
            "generate",
            "plan",
            "--configfile",
            str(repo_root / "config.yaml"),
            str(repo_root / "config" / "demo.yaml"),
            "--config",
            "run_datasets=[made-repair]",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    recs = list(read_jsonl(work / target))
    assert len(recs) == 8 and all(r["simulated"] for r in recs)
    assert (work / "logs/demo/generate/made-repair/sim-llama-3.1-8b.log").read_text()
    assert (work / "cache/responses/simulated/sim-llama-3.1-8b.jsonl").is_file()
    assert (work / "provenance" / (target + ".json")).is_file()
    assert (
        "made-repair [made-repair, source made]: 8 tasks"
        in (work / "results/demo/plan/plan.txt").read_text()
    )
