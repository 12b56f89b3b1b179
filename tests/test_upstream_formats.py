"""The upstream formats config/paper.yaml fetches, on small files written here in those formats.

- APPS, Hugging Face JSONL of the test split (``variant: hf-test``);
- RunBugRun data release: ``python_valid0.jsonl.gz`` + ``tests_all.jsonl.gz`` (``variant: release``);
- BigCodeBench published samples: a zip of ``<model>--bigcodebench-complete--...jsonl`` files
  (``replay_portfolio`` with ``member`` globs), answered through the replay backend;
- sha256 recorded on first download and enforced on the next.
"""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path

import pytest

from codyn.backends import make_backend
from codyn.datasets import build_tasks, fetch_dataset
from codyn.datasets import runbugrun as rbr_module
from codyn.errors import ConfigError, InputError
from codyn.generate import model_config


def _jsonl(path: Path, rows, gz=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if gz else open
    with opener(path, "wt") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    return path


def test_apps_hf_test_split(tmp_path):
    io_stdio = {"inputs": ["1 2\n", "3 4\n"], "outputs": ["3\n", "7\n"]}
    io_call = {"fn_name": "add", "inputs": [[1, 2]], "outputs": [3]}
    _jsonl(
        tmp_path / "up" / "hf" / "test.jsonl",
        [
            {
                "problem_id": 0,
                "question": "Add two numbers.",
                "solutions": json.dumps(["print(1)"]),
                "input_output": json.dumps(io_stdio),
                "difficulty": "interview",
                "url": "u",
                "starter_code": "",
            },
            {
                "problem_id": 1,
                "question": "Add, as a method.",
                "solutions": "",
                "input_output": json.dumps(io_call),
                "difficulty": "introductory",
                "url": "u",
                "starter_code": "class Solution:\n    def add(self, a, b):\n",
            },
            {
                "problem_id": 2,
                "question": "No tests here.",
                "solutions": "",
                "input_output": "",
                "difficulty": "competition",
                "url": "u",
                "starter_code": "",
            },
        ],
    )
    cfg = {
        "adapter": "apps",
        "source": "mirror",
        "variant": "hf-test",
        "path": str(tmp_path / "up"),
    }
    fetch_dataset("apps", cfg, tmp_path / "raw", None)
    prepared = build_tasks("apps", cfg, tmp_path / "raw", 1)
    by_id = {t["id"]: t for t in prepared.tasks}
    assert set(by_id) == {"0", "1"} and prepared.dropped == [("2", "no tests (empty input_output)")]
    assert by_id["0"]["tests"] == {
        "type": "stdio",
        "cases": [{"input": "1 2\n", "output": "3\n"}, {"input": "3 4\n", "output": "7\n"}],
    }
    assert by_id["1"]["tests"]["type"] == "call" and "class Solution" in by_id["1"]["prompt"]
    with pytest.raises(ConfigError, match="variant"):
        fetch_dataset("apps", {**cfg, "variant": "all"}, tmp_path / "raw2", None)


def test_runbugrun_release_with_its_tests(tmp_path):
    bugs = [
        {
            "id": 10,
            "problem_id": "p00001",
            "buggy_code": "print(int(input())+2)\n",
            "fixed_code": "print(int(input())+1)\n",
            "errors": [{"output": "Wrong Answer", "exception": None}],
            "labels": ["op"],
            "buggy_submission_id": 1,
            "fixed_submission_id": 2,
            "user_id": "u",
        },
        {
            "id": 11,
            "problem_id": "p00002",
            "buggy_code": "print(0)\n",
            "fixed_code": "print(1)\n",
            "errors": None,
            "labels": None,
            "buggy_submission_id": 3,
            "fixed_submission_id": 4,
            "user_id": "u",
        },
    ]
    tests = [
        {"id": 1, "problem_id": "p00001", "input": "1\n", "output": "2\n"},
        {"id": 2, "problem_id": "p00001", "input": "5\n", "output": "6\n"},
        {
            "id": 3,
            "problem_id": "p99999",
            "input": "",
            "output": "x\n",
        },  # another language's problem
    ]
    _jsonl(tmp_path / "up" / "release" / "python_valid0.jsonl.gz", bugs, gz=True)
    _jsonl(tmp_path / "up" / "release" / "tests_all.jsonl.gz", tests, gz=True)
    cfg = {
        "adapter": "runbugrun",
        "source": "mirror",
        "variant": "release",
        "path": str(tmp_path / "up"),
    }
    assert rbr_module.has_tests(cfg) and not rbr_module.has_tests({"adapter": "runbugrun"})
    fetch_dataset("runbugrun", cfg, tmp_path / "raw", None)
    prepared = build_tasks("runbugrun", cfg, tmp_path / "raw", 1)
    (task,) = prepared.tasks
    assert task["id"] == "10" and task["reference"] == "print(int(input())+1)\n"
    assert task["tests"] == {
        "type": "stdio",
        "cases": [{"input": "1\n", "output": "2\n"}, {"input": "5\n", "output": "6\n"}],
    }
    assert "Wrong Answer" in task["prompt"]
    assert prepared.dropped == [("11", "no tests for problem p00002 in the tests file")]
    urls = [f.url for f in rbr_module.remote_files("runbugrun", cfg)]
    assert urls == [
        "https://github.com/giganticode/run_bug_run_data/releases/download/v0.0.1/python_valid0.jsonl.gz",
        "https://github.com/giganticode/run_bug_run_data/releases/download/v0.0.1/tests_all.jsonl.gz",
    ]


def test_sha256_is_recorded_on_first_download_and_enforced(tmp_path, monkeypatch):
    from codyn.datasets import apps as apps_module

    src = _jsonl(
        tmp_path / "up" / "test.jsonl",
        [
            {
                "problem_id": 0,
                "question": "q",
                "input_output": json.dumps({"inputs": ["1\n"], "outputs": ["1\n"]}),
            }
        ],
    )
    monkeypatch.setattr(apps_module, "HF_TEST_URL", src.as_uri())  # file:// through urllib
    cfg = {"adapter": "apps", "source": "url", "variant": "hf-test"}
    raw = tmp_path / "data" / "raw" / "apps"
    manifest = fetch_dataset("apps", cfg, raw, None)
    (entry,) = manifest["files"]
    assert entry["expected_sha256"] is None and entry["pinned_by"] == "first download"
    assert json.loads((raw / "FIRST_DOWNLOAD.json").read_text()) == {"test.jsonl": entry["sha256"]}
    again = fetch_dataset("apps", cfg, raw, None)  # same bytes: checked against the record
    assert again["files"][0]["expected_sha256"] == entry["sha256"]
    (raw / "MANIFEST.json").unlink()  # what Snakemake does before rerunning fetch
    src.write_text(src.read_text().replace('"q"', '"changed upstream"'))
    with pytest.raises(InputError, match="sha256 mismatch"):
        fetch_dataset("apps", cfg, raw, None)


def test_bigcodebench_replay_portfolio_from_a_sample_archive(tmp_path):
    tasks = [
        {
            "task_id": f"BigCodeBench/{i}",
            "complete_prompt": f"def task_func():\n    '''{i}'''\n",
            "canonical_solution": f"    return {i}\n",
            "code_prompt": "def task_func():\n",
            "test": "import unittest\nclass T(unittest.TestCase):\n    def test(self):\n        pass\n",
            "entry_point": "task_func",
            "libs": "[]",
        }
        for i in range(3)
    ]
    up = tmp_path / "up"
    _jsonl(up / "BigCodeBench.jsonl.gz", tasks, gz=True)
    archive = tmp_path / "sanitized_calibrated_samples.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in ("meta-llama--Meta-Llama-3.1-8B-Instruct", "claude-3-5-sonnet-20240620"):
            rows = "".join(
                json.dumps(
                    {
                        "task_id": t["task_id"],
                        "solution": f"# {name}\n" + t["code_prompt"] + t["canonical_solution"],
                    }
                )
                + "\n"
                for t in tasks
            )
            zf.writestr(
                f"sanitized_calibrated_samples/complete/{name}--bigcodebench-complete--vllm-0-1-sanitized_calibrated.jsonl",
                rows,
            )
            zf.writestr(
                f"sanitized_calibrated_samples/instruct/{name}--bigcodebench-instruct--vllm-0-1-sanitized_calibrated.jsonl",
                rows,
            )
    url = archive.as_uri()
    portfolio = {
        "small": {
            "published": "meta-llama/Meta-Llama-3.1-8B-Instruct",
            "url": url,
            "member": "*complete/meta-llama--Meta-Llama-3.1-8B-Instruct--bigcodebench-complete--*.jsonl",
        },
        "big": {
            "published": "claude-3-5-sonnet-20240620",
            "url": url,
            "member": "*complete/claude-3-5-sonnet-20240620--bigcodebench-complete--*.jsonl",
        },
    }
    cfg = {
        "adapter": "bigcodebench",
        "source": "file",  # our own small task file (the mirror's copy is pinned by sha256)
        "path": str(up / "BigCodeBench.jsonl.gz"),
        "replay_portfolio": portfolio,
    }
    raw = tmp_path / "data" / "default" / "raw" / "bcb"
    manifest = fetch_dataset("bcb", cfg, raw, None)
    names = [f["path"] for f in manifest["files"]]
    assert names == [
        "BigCodeBench.jsonl.gz",
        "replay/archives/sanitized_calibrated_samples.zip",
        "replay/small.jsonl",
        "replay/big.jsonl",
    ]  # the archive is fetched once
    assert len(build_tasks("bcb", cfg, raw, 1).tasks) == 3  # replay files are not tasks
    config = {
        "datasets": {"bcb": cfg},
        "models": {
            "small": {"backend": "bedrock", "model_id": "x", "cost": 1, "price_in": 1.0},
            "big": {"backend": "bedrock", "model_id": "y", "cost": 72},
        },
    }
    mcfg = model_config(config, "bcb", "big")
    assert mcfg["backend"] == "replay" and mcfg["cost"] == 72 and "price_in" not in mcfg
    assert mcfg["replay_file"] == "data/default/raw/bcb/replay/big.jsonl"
    config["datasets"]["other"] = {"adapter": "apps"}
    assert model_config(config, "other", "big") is config["models"]["big"]
    mcfg["replay_file"] = str(tmp_path / mcfg["replay_file"])
    backend = make_backend("big", mcfg, {})
    task = {"id": "BigCodeBench/1", "dataset": "bcb", "meta": {}}
    answer = backend.complete([{"role": "user", "content": "p"}], {}, task)
    assert (
        answer.text.startswith("# claude-3-5-sonnet-20240620\n")
        and answer.model_id == "claude-3-5-sonnet-20240620"
    )
    ambiguous = {"x": {"url": url, "member": "*meta-llama*"}}
    with pytest.raises(InputError, match="matches 2 files"):
        fetch_dataset("bcb", {**cfg, "replay_portfolio": ambiguous}, tmp_path / "raw3", None)
