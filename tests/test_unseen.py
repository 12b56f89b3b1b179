"""Hidden tests minus the visible ones (codyn.scoring.unseen) on real HumanEval / MBPP tasks,
through the score stage to the matrix's unseen::<model> column."""

from __future__ import annotations

import csv
import json
import math

import pandas as pd
import pytest

from codyn.errors import InputError
from codyn.examples import Check, visible_examples
from codyn.matrix import UNSEEN_PREFIX, build_matrix, unseen_score
from codyn.scoring.execution import run_tests
from codyn.scoring.sandbox import Limits, Sandbox
from codyn.scoring.score import score_responses
from codyn.scoring.unseen import ALL_VISIBLE, UNSUPPORTED, unseen_tests


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(Limits(timeout_s=5, cpu_s=5), workers=2) as box:
        yield box


@pytest.fixture(scope="module")
def mbpp(shared_datasets):
    path = shared_datasets / "mapcoder_results/data/MBPPEval/mbpp-py.jsonl"
    out = {}
    for rec in map(json.loads, open(path)):
        out[rec["name"]] = {
            "id": rec["name"], "dataset": "mbpp", "kind": "generate", "language": "python",
            "prompt": rec["prompt"], "reference": None, "label": None,
            "meta": {"sample_io": rec["sample_io"]},
            "tests": {"type": "check", "test": rec["test"], "entry_point": rec["entry_point"],
                      "prefix": rec["prompt"]},
        }  # fmt: skip
    return out


def test_mbpp_visible_assert_is_removed_from_the_hidden_ones(mbpp, sandbox):
    task = mbpp["mbpp_234_volume_cube"]
    reduced = unseen_tests(task["tests"], visible_examples(task))
    assert (reduced.status, reduced.removed, reduced.kept) == ("ok", 1, 2)
    assert "candidate(3)" not in reduced.tests["test"]
    assert "candidate(2) == 8" in reduced.tests["test"]
    # Passes only the shown example: visible pass, hidden 0, unseen 0.
    only_shown = "def volume_cube(l):\n    return 27\n"
    assert run_tests(only_shown, task["tests"], sandbox).score == 0.0
    assert run_tests(only_shown, reduced.tests, sandbox).score == 0.0
    right = "def volume_cube(l):\n    return l ** 3\n"
    assert run_tests(right, reduced.tests, sandbox).score == 1.0
    # Passes the hidden tests the prompt did not show but not the shown one: unseen 1.
    unshown_only = "def volume_cube(l):\n    return 0 if l == 3 else l ** 3\n"
    assert run_tests(unshown_only, task["tests"], sandbox).score == 0.0
    assert run_tests(unshown_only, reduced.tests, sandbox).score == 1.0


def test_humaneval_docstring_example_that_reappears_in_check(humaneval, sandbox):
    task = humaneval["HumanEval/2"]  # truncate_number(3.5) -> 0.5 is shown and hidden
    reduced = unseen_tests(task["tests"], visible_examples(task))
    assert reduced.removed == 1 and reduced.kept == 2
    assert "candidate(3.5)" not in reduced.tests["test"]
    only_shown = "def truncate_number(number):\n    return 0.5\n"
    assert run_tests(only_shown, reduced.tests, sandbox).score == 0.0
    assert run_tests(task["reference"], reduced.tests, sandbox).score == 1.0


def test_every_real_humaneval_reduction_keeps_the_reference_passing(humaneval, sandbox):
    statuses, failed = {}, []
    for tid, task in humaneval.items():
        reduced = unseen_tests(task["tests"], visible_examples(task))
        statuses[tid] = reduced.status
        if reduced.removed and reduced.tests is not None:
            if run_tests(task["reference"], reduced.tests, sandbox).score != 1.0:
                failed.append(tid)
    assert failed == []  # the rewritten check programs are valid and still test the function
    assert sum(s == "ok" for s in statuses.values()) > 120
    assert statuses["HumanEval/34"] == ALL_VISIBLE  # its one hidden assert is the docstring's
    assert set(statuses.values()) <= {"ok", ALL_VISIBLE}
    assert sum(s == ALL_VISIBLE for s in statuses.values()) < 5


def test_hidden_asserts_in_loops_or_on_other_inputs_stay():
    tests = {
        "type": "check", "entry_point": "f", "prefix": "",
        "test": "def check(candidate):\n    for x in range(3):\n        assert candidate(x) == x\n"
                "    if True:\n        assert candidate(1) == 1\n    assert abs(candidate(2.0) - 2) < 1e-6\n",
    }  # fmt: skip
    shown = [Check("call", "f(1)", expr="f(1)", expected="1"), Check("call", "", expr="f(2.0)")]
    reduced = unseen_tests(tests, shown)
    assert reduced.removed == 2 and reduced.status == "ok"
    body = reduced.tests["test"]
    assert "candidate(x)" in body and "candidate(1)" not in body and "pass" in body
    compile(body, "<test>", "exec")


def test_stdio_cases_and_unsupported_tests():
    tests = {"type": "stdio", "cases": [{"input": "1 2\n", "output": "3"}, {"input": "2 2", "output": "4"}]}  # fmt: skip
    reduced = unseen_tests(tests, [Check("stdio", "", stdin="1  2", expected="3")])
    assert reduced.removed == 1 and reduced.tests["cases"] == [{"input": "2 2", "output": "4"}]
    both = [Check("stdio", "", stdin=c["input"]) for c in tests["cases"]]
    assert unseen_tests(tests, both).status == ALL_VISIBLE
    assert unseen_tests({"type": "unittest", "test": "x"}, []).status == UNSUPPORTED
    assert unseen_tests({"type": "check", "test": "def check(:"}, []).status == UNSUPPORTED
    with pytest.raises(TypeError, match="tests must be a dict"):
        unseen_tests(None, [])


def test_score_stage_writes_unseen_and_the_matrix_excludes_all_visible(
    tmp_path, humaneval, mbpp, sandbox
):
    tasks = [humaneval["HumanEval/2"], humaneval["HumanEval/34"], mbpp["mbpp_234_volume_cube"]]
    tasks_path = tmp_path / "tasks.jsonl"
    tasks_path.write_text("".join(json.dumps(t) + "\n" for t in tasks))
    answers = {
        "cheat": {"HumanEval/2": "def truncate_number(number):\n    return 0.5\n",
                  "HumanEval/34": "def unique(l):\n    return [0, 2, 3, 5, 9, 123]\n",
                  "mbpp_234_volume_cube": "def volume_cube(l):\n    return 27\n"},
        "right": {"HumanEval/2": "def truncate_number(number):\n    return number % 1.0\n",
                  "HumanEval/34": "def unique(l):\n    return sorted(set(l))\n",
                  "mbpp_234_volume_cube": None},
    }  # fmt: skip
    paths = {}
    for model, texts in answers.items():
        path = tmp_path / f"{model}.jsonl"
        path.write_text(
            "".join(
                json.dumps(
                    {"task_id": t, "model": model, "text": x, "error": None if x else "down"}
                )
                + "\n"
                for t, x in texts.items()
            )
        )
        paths[model] = tmp_path / f"{model}.csv"
        summary = score_responses(
            tasks_path, path, paths[model], {"visible": True, "timeout_s": 5}, sandbox=sandbox
        )
        assert summary["unseen"]["tasks_all_visible"] == ["HumanEval/34"]
        assert summary["unseen"]["tasks_with_visible_tests_removed"] == 3
    cheat = {r["task_id"]: r for r in csv.DictReader(open(paths["cheat"]))}
    assert cheat["HumanEval/2"]["visible_status"] == "pass"
    assert (cheat["HumanEval/2"]["score"], cheat["HumanEval/2"]["unseen_score"]) == ("0.0", "0.0")
    assert cheat["HumanEval/34"]["score"] == "1.0"  # the overlap flatters the hidden score ...
    assert cheat["HumanEval/34"]["unseen_status"] == ALL_VISIBLE  # ... so it is excluded
    assert cheat["HumanEval/34"]["unseen_score"] == ""
    assert cheat["mbpp_234_volume_cube"]["unseen_score"] == "0.0"
    right = {r["task_id"]: r for r in csv.DictReader(open(paths["right"]))}
    assert right["HumanEval/2"]["unseen_score"] == "1.0"
    assert right["mbpp_234_volume_cube"]["unseen_status"] == "no_answer"
    matrix = build_matrix(
        tasks_path, paths, {}, ["cheat", "right"], {"cheat": 1.0, "right": 2.0}, False, "t"
    )
    unseen = matrix.unseen()
    assert unseen.loc["HumanEval/2"].tolist() == [0.0, 1.0]
    assert unseen.loc["HumanEval/34"].isna().all()
    assert UNSEEN_PREFIX + "cheat" in matrix.frame.columns
    # A score file without the unseen columns (an older score run) beside one with them.
    old = tmp_path / "old.csv"
    pd.read_csv(paths["right"]).drop(columns=["unseen_score", "unseen_status"]).to_csv(
        old, index=False
    )
    with pytest.raises(InputError, match="unseen_status columns for") as err:
        build_matrix(
            tasks_path, {"cheat": paths["cheat"], "right": old}, {}, ["cheat", "right"],
            {"cheat": 1.0, "right": 2.0}, False, "t",
        )  # fmt: skip
    assert err.value.field == "unseen_status" and "old.csv" in str(err.value)


def test_malformed_unseen_columns_get_clear_errors(tmp_path):
    frame = pd.DataFrame(
        {"unseen_status": ["pass", ALL_VISIBLE], "unseen_score": ["1.0", "1.0"]},
        index=pd.Index(["a", "b"], name="task_id"),
    )
    with pytest.raises(InputError, match="unseen_score") as err:
        unseen_score(frame, path="x.csv")
    assert err.value.record == "b" and "x.csv" in str(err.value)
    frame = pd.DataFrame(
        {"unseen_status": ["pass"], "unseen_score": ["two"]}, index=pd.Index(["a"])
    )
    with pytest.raises(InputError, match="does not fit"):
        unseen_score(frame)
    ok = pd.DataFrame({"unseen_status": [ALL_VISIBLE, "fail"], "unseen_score": ["", "0.0"]})
    out = unseen_score(ok)
    assert math.isnan(out[0]) and out[1] == 0.0
