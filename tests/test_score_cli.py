from __future__ import annotations

import csv
import json
import math

import pytest

from codyn.errors import InputError
from codyn.scoring.cli import main
from codyn.scoring.score import score_responses

CHECK = {
    "type": "check",
    "entry_point": "add",
    "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n",
}


def _task(
    tid, kind="generate", language="python", tests=None, reference=None, label=None, meta=None
):
    return {
        "id": tid, "dataset": "t", "kind": kind, "language": language, "prompt": "p",
        "reference": reference, "tests": tests, "label": label, "meta": meta or {},
    }  # fmt: skip


def _resp(tid, text, model="m", error=None):
    return {"task_id": tid, "model": model, "text": text, "error": error}


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture
def files(tmp_path):
    tasks = [
        _task("ok", tests=CHECK),
        _task("bad", tests=CHECK),
        _task("err", tests=CHECK),
        _task("empty", tests=CHECK),
        _task("huge", tests=CHECK),
        _task("binary", tests=CHECK),
        _task("java", tests=CHECK),
        _task("notests", kind="repair", meta={"execution": "RunBugRun has no tests here"}),
        _task("tr", kind="translate", language="csharp", reference="int x = 1;"),
        _task("v1", kind="classify", label=True),
        _task("v2", kind="classify", label=False),
    ]
    responses = [
        _resp("ok", "```python\ndef add(a, b):\n    return a + b\n```"),
        _resp("bad", "def add(a, b):\n    return a * b"),
        _resp("err", None, error="throttled"),
        _resp("empty", ""),
        _resp("huge", "x" * 10_000_001),
        _resp("binary", "\x00\x01\x02\ufffd\ufffd"),
        _resp("java", "```java\nclass A { int add(int a, int b) { return a + b; } }\n```"),
        _resp("notests", "def f(): pass"),
        _resp("tr", "```csharp\nint x = 1;\n```"),
        _resp("v1", "Yes"),
        _resp("v2", "Yes, vulnerable"),
    ]
    return _write(tmp_path / "tasks.jsonl", tasks), _write(tmp_path / "m.jsonl", responses)


def _rows(path):
    with open(path, newline="") as fh:
        return {r["task_id"]: r for r in csv.DictReader(fh)}


def test_score_responses_every_kind(files, tmp_path):
    tasks, responses = files
    out = tmp_path / "scores" / "m.csv"
    summary = score_responses(tasks, responses, out, {"timeout_s": 2, "cpu_s": 2, "workers": 2})
    rows = _rows(out)
    assert list(next(iter(rows.values())))[:5] == ["task_id", "model", "score", "status", "detail"]
    assert (rows["ok"]["status"], rows["ok"]["score"]) == ("pass", "1.0")
    assert (rows["bad"]["status"], rows["bad"]["score"]) == ("fail", "0.0")
    assert rows["err"]["status"] == "no_answer"
    for tid in ("empty", "huge", "java"):
        assert (rows[tid]["status"], rows[tid]["score"]) == ("no_code", "0.0"), tid
    assert rows["binary"]["score"] == "0.0"
    assert rows["notests"]["status"] == "not_scorable" and rows["notests"]["score"] == ""
    assert rows["notests"]["detail"] == "RunBugRun has no tests here"
    assert rows["tr"]["status"] == "scored" and float(rows["tr"]["score"]) == pytest.approx(1.0)
    # Both classified "vulnerable": 1 truly vulnerable of 2 -> P = 0.5, subtracted.
    assert float(rows["v1"]["score"]) == 0.5 and float(rows["v1"]["penalty"]) == 0.5
    assert float(rows["v2"]["score"]) == -0.5 and rows["v2"]["raw_score"] == "0.0"
    meta = json.loads((tmp_path / "scores" / "m.meta.json").read_text())
    assert meta["limits"]["timeout_s"] == 2 and meta["sandbox"]["isolation"] in ("unshare", "bwrap")
    assert meta["status_counts"] == summary["status_counts"]


def test_add_mode(files, tmp_path):
    tasks, responses = files
    out = tmp_path / "add.csv"
    score_responses(tasks, responses, out, {"sven_penalty": "add", "workers": 1})
    assert float(_rows(out)["v1"]["score"]) == 1.5


def test_bad_inputs_name_file_and_record(files, tmp_path):
    tasks, _ = files
    bad = _write(tmp_path / "bad.jsonl", [_resp("nope", "x")])
    with pytest.raises(InputError, match="nope"):
        score_responses(tasks, bad, tmp_path / "o.csv", {})
    twice = _write(tmp_path / "twice.jsonl", [_resp("ok", "x"), _resp("ok", "y")])
    with pytest.raises(InputError, match="second response"):
        score_responses(tasks, twice, tmp_path / "o.csv", {})
    assert not (tmp_path / "o.csv").exists()


def test_cli(files, tmp_path, capsys):
    tasks, responses = files
    out = tmp_path / "cli.csv"
    assert (
        main(
            [
                "--tasks",
                str(tasks),
                "--responses",
                str(responses),
                "--out",
                str(out),
                "--timeout-s",
                "2",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["n_responses"] == 11
    assert _rows(out)["ok"]["status"] == "pass"
    bad = _write(tmp_path / "bad.jsonl", [{"text": "x"}])
    assert main(["--tasks", str(tasks), "--responses", str(bad), "--out", str(out)]) == 1
    assert not math.isnan(1.0)


def _routerbench_files(folder, tmp_path, model):
    """Tasks from CodeT's MBPP tests and one RouterBench model's real answers that
    define the MBPP entry point (joined by prompt text, as SOURCE.md documents)."""
    import ast
    import re

    import pandas as pd

    def norm(text):
        return " ".join(text.lower().split())

    mbpp = {}
    for line in (folder / "mbpp_sanitized_for_code_generation.jsonl").read_text().splitlines():
        p = json.loads(line)
        mbpp[norm(re.search(r"'''(.*?)'''", p["prompt"], re.S).group(1))] = p
    tasks, responses, labels = {}, [], {}
    frames = [
        pd.read_csv(folder / f"routerbench_0shot_mbpp_{split}.csv") for split in ("test", "train")
    ]
    for _, row in pd.concat(frames).iterrows():
        p = mbpp[norm(ast.literal_eval(row["prompt"])[0])]
        text = ast.literal_eval(row[f"{model}|model_response"])[0]
        if p["task_id"] in labels or not re.search(rf"def\s+{re.escape(p['entry_point'])}\b", text):
            continue
        tests = {
            "type": "check",
            "test": "import math\n" + p["test"],
            "entry_point": p["entry_point"],
        }
        tasks[p["task_id"]] = _task(p["task_id"], tests=tests)
        responses.append(_resp(p["task_id"], text, model=model))
        labels[p["task_id"]] = float(row[model])
    return (
        _write(tmp_path / "rb_tasks.jsonl", tasks.values()),
        _write(tmp_path / "rb.jsonl", responses),
        labels,
    )


def test_real_routerbench_answers(shared_datasets, tmp_path):
    model = "gpt-4-1106-preview"
    tasks, responses, labels = _routerbench_files(
        shared_datasets / "routerbench_mbpp", tmp_path, model
    )
    out = tmp_path / "rb.csv"
    summary = score_responses(tasks, responses, out, {"workers": 2})
    rows = _rows(out)
    assert len(rows) == len(labels) >= 40
    assert set(summary["status_counts"]) <= {
        "pass",
        "fail",
        "runtime_error",
        "timeout",
        "syntax_error",
    }
    # RouterBench's own grading is not published; across all 11 models we agree on 80%.
    agreement = sum(float(rows[t]["score"]) == labels[t] for t in labels) / len(labels)
    assert agreement >= 0.7, agreement
