"""Visible examples: parsing real prompts (HumanEval, MBPP, APPS) and malformed ones,
running them in the sandbox on right and wrong programs, and the opt-in score columns."""

from __future__ import annotations

import csv
import json
import math

import pytest

from codyn.datasets.apps import read_problems
from codyn.examples import (
    Check,
    checks_from_sample_io,
    coverage,
    parse_examples,
    parse_task,
    visible_examples,
)
from codyn.matrix import VISIBLE_PREFIX, build_matrix
from codyn.prompts import apps_prompt
from codyn.scoring.sandbox import Limits, Sandbox
from codyn.scoring.score import score_responses
from codyn.scoring.visible import run_checks, usable_checks


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(Limits(timeout_s=3, cpu_s=3), workers=2) as box:
        yield box


# ---------------------------------------------------------------- real prompts


def test_humaneval_doctests_arrows_and_prose(humaneval):
    # Doctest with expected output lines (HumanEval/0).
    c0 = visible_examples(humaneval["HumanEval/0"])
    assert [(c.expr, c.expected, c.compare) for c in c0] == [
        ("has_close_elements([1.0, 2.0, 3.0], 0.5)", "False", "repr"),
        ("has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3)", "True", "repr"),
    ]
    # "f(x) ➞ y" lines (HumanEval/72) and "f(x) => y" with trailing prose cut (67: "19 - 5 - 6 = 8").
    assert [c.expected for c in visible_examples(humaneval["HumanEval/72"])] == [
        "False", "False", "True", "True"
    ]  # fmt: skip
    assert visible_examples(humaneval["HumanEval/67"])[0].expected == "19 - 5 - 6"
    # "Input: / Output:" blocks with "name : value" lines (HumanEval/115).
    c115 = visible_examples(humaneval["HumanEval/115"])
    assert c115[0].expr == "max_fill([[0,0,1,0], [0,1,0,0], [1,1,1,1]],1)"
    assert c115[0].expected == "6" and c115[0].origin == "example-block"
    # "For N = 1000, ... the output should be "1"." (HumanEval/84).
    assert [c.expr for c in visible_examples(humaneval["HumanEval/84"])] == [
        "solve(1000)", "solve(150)", "solve(147)"
    ]  # fmt: skip
    # The template around the problem is not parsed: the problem text is tests.prefix.
    assert "Task: Complete" in humaneval["HumanEval/0"]["prompt"]


def test_humaneval_coverage_goal_and_reference_flags(humaneval, sandbox):
    cov = coverage(list(humaneval.values()), sandbox=sandbox)["humaneval"]
    assert cov["tasks"] == 164
    assert cov["share_with_examples"] >= 0.90  # the goal, docstring text alone
    # HumanEval/47's docstring says median([-10, 4, 6, 1000, 10, 20]) is 15.0 (it is 8.0):
    # the canonical solution fails that example, so it is flagged, not used.
    flagged = {e["task_id"] for e in cov["reference_fails_examples"]}
    assert "HumanEval/47" in flagged
    task = humaneval["HumanEval/47"]
    kept, dropped = usable_checks(task, visible_examples(task), sandbox)
    assert [c.expected for c in dropped] == ["15.0"] and len(kept) == 1


def test_mbpp_sample_io_is_the_shown_assert(shared_datasets):
    rows = [
        json.loads(line)
        for line in open(shared_datasets / "mapcoder_results/data/MBPPEval/mbpp-py.jsonl")
    ]
    rec = rows[0]
    task = {
        "id": rec["name"], "dataset": "mbpp", "kind": "generate", "prompt": rec["prompt"],
        "reference": None, "label": None, "meta": {"sample_io": rec["sample_io"]},
        "tests": {"type": "check", "test": rec["test"], "entry_point": rec["entry_point"],
                  "prefix": rec["prompt"]},
    }  # fmt: skip
    (check,) = visible_examples(task)
    assert check.kind == "assert" and check.expr == "assert volume_cube(3) == 27"
    assert check.origin == "sample_io"
    # The MultiPL-E prompt alone shows no example: MBPP's examples are the shown asserts.
    assert parse_examples(rec["prompt"], rec["entry_point"]).checks == []
    # A real malformed sample (unbalanced brackets in MultiPL-E's mbpp_297): skipped, reason kept.
    bad = next(r for r in rows if r["name"] == "mbpp_297_flatten_list")
    parsed = parse_task({**task, "meta": {"sample_io": bad["sample_io"]}})
    assert parsed.checks == [] and any("does not parse" in s for s in parsed.skipped)


def test_apps_sample_io_block_is_stdio(shared_datasets):
    problems, _ = read_problems([shared_datasets / "apps_mapcoder150" / "selected150.jsonl"])
    by_id = {p["problem_id"]: p for p in problems}
    p = by_id["3554"]  # get_score (Zonk): MapCoder's sample_io holds 9 stdin/stdout pairs
    task = {"id": "3554", "dataset": "apps", "kind": "generate", "prompt": apps_prompt(p["question"]),
            "reference": None, "tests": p["tests"], "meta": {}}  # fmt: skip
    checks = visible_examples(task)
    assert len(checks) == 9 and {c.kind for c in checks} == {"stdio"}
    assert checks[0].stdin == "[1, 2, 3]\n" and checks[0].expected == "100"
    assert checks[4].expected == "Zonk"
    # The hidden tests are never read: their first input is not among the visible ones.
    assert p["tests"]["cases"][0]["input"] == "[1]"
    assert "[1]\n" not in {c.stdin for c in checks}


def test_atcoder_and_codeforces_style_statements():
    atcoder = (
        "Print the sum.\n\nConstraints\n\n1 <= A, B <= 100\n\nInput\n\nInput is given as:\nA B\n\n"
        "Output\n\nPrint the answer.\n\nSample Input 1\n\n3 4\n\nSample Output 1\n\n7\n\n"
        "Sample Input 2\n\n10 20\n\nSample Output 2\n\n30\n"
    )
    checks = parse_examples(atcoder, stdin=True).checks
    assert [(c.stdin, c.expected) for c in checks] == [("3 4\n", "7"), ("10 20\n", "30")]
    codeforces = (
        "You are given n numbers.\n\n-----Input-----\n\nThe first line contains an integer n "
        "(1 <= n <= 100), the number of values, followed by the values themselves on one "
        "line separated by spaces.\n\n-----Output-----\n\nPrint the largest of the values "
        "given in the input.\n\n-----Examples-----\nInput\n3\n1 5 2\n\nOutput\n5\n\n"
        "Input\n1\n7\n\nOutput\n7\n"
    )
    checks = parse_examples(codeforces, stdin=True).checks
    assert [(c.stdin, c.expected) for c in checks] == [("3\n1 5 2\n", "5"), ("1\n7\n", "7")]
    leetcode = (
        "Given nums and target, return the indices.\n\nExample 1:\n\n"
        "Input: nums = [2,7,11,15], target = 9\nOutput: [0,1]\nExplanation: 2 + 7 == 9.\n"
    )
    (c,) = parse_examples(leetcode, "twoSum").checks
    assert c.expr == "twoSum([2,7,11,15],9)" and c.expected == "[0,1]"


@pytest.mark.parametrize(
    "text",
    [
        "def f(x):\n    '''\n    f((1, 2) == 3\n    >>> f(\n    '''",  # unbalanced parens
        "f(1) -> the value you get back when you call it",  # prose where the value should be
        "Input: several numbers\nOutput: their sum",  # prose in an example block
        "f(" * 5000 + "1" + ")" * 5000 + " == 2",  # deeply nested
        ">>> f(1) ==\n",  # doctest that does not parse
        "Sample Input 1\n\nSample Output 1\n\n3\n",  # empty sample input
        "assert f(1 == 2\nassert g(1) == 2\n",  # malformed assert; an assert of another function
        "f(2 ** 10**9) == 1",  # a value whose evaluation would never end
        "\x00\ufffd f(1) ➞ True",
        "",
    ],
)
def test_malformed_prompts_never_raise(text):
    parsed = parse_examples(text, "f", stdin=True)
    for c in parsed.checks:
        assert c.kind in ("call", "assert", "stdio")
    if text == "\x00\ufffd f(1) ➞ True":
        assert [c.expr for c in parsed.checks] == ["f(1)"]
    else:
        assert parsed.checks == []
        assert parsed.skipped or not text.strip() or "Output: their sum" in text


def test_huge_prompt_is_cut_and_parsed():
    text = "f(1) == 2\n" + "x" * 300_000 + "\nf(3) == 4\n"
    parsed = parse_examples(text, "f")
    assert [c.expr for c in parsed.checks] == ["f(1)"]
    assert any("cut at" in s for s in parsed.skipped)


def test_parse_task_never_raises_on_broken_tasks():
    assert (
        parse_task({"meta": {"sample_io": "not a list"}, "tests": {"type": "stdio"}}).checks == []
    )
    assert visible_examples({"kind": "classify", "prompt": "f(1) == 2"}) == []
    assert parse_task({"prompt": None, "tests": None, "meta": None}).checks == []


# ---------------------------------------------------------------- running in the sandbox


def test_right_and_wrong_programs(humaneval, sandbox):
    task = humaneval["HumanEval/0"]
    checks = visible_examples(task)
    right = task["reference"]
    wrong = task["tests"]["prefix"] + "    return False\n"
    v = run_checks(right, checks, task["tests"], sandbox)
    assert (v.status, v.n_passed, v.n_total) == ("pass", 2, 2)
    v = run_checks(wrong, checks, task["tests"], sandbox)
    assert (v.status, v.n_passed, v.n_total) == ("fail", 1, 2) and "expected True" in v.detail
    # A body-only answer gets the prompt's signature in front, as for the hidden tests.
    body = right[len(task["tests"]["prefix"]) :]
    assert run_checks(body, checks, task["tests"], sandbox).status == "pass"
    assert run_checks("def has_close_elements(:", checks, task["tests"], sandbox).status == "error"
    loop = "def has_close_elements(numbers, threshold):\n    while True: pass\n"
    assert run_checks(loop, checks, task["tests"], sandbox).status == "error"
    assert run_checks(None, checks, task["tests"], sandbox).status == "error"
    assert run_checks(right, [], task["tests"], sandbox).status == "no_examples"


def test_exception_in_one_example_does_not_hide_the_others(sandbox):
    checks = [
        Check("call", "f(0)", expr="f(0)", expected="0"),
        Check("call", "f(2)", expr="f(2)", expected="0.5", compare="float"),
        Check("assert", "assert f(4) == 0.25", expr="assert f(4) == 0.25"),
    ]
    v = run_checks("def f(x):\n    return 1 / x\n", checks, {}, sandbox)
    assert (v.status, v.per_check) == ("fail", [False, True, True])
    assert "ZeroDivisionError" in v.detail


def test_stdio_and_float_comparisons(sandbox):
    (c,) = checks_from_sample_io([{"input": "3 4", "output": ["7"]}]).checks
    add = "a, b = map(int, input().split())\nprint(a + b)\n"
    assert run_checks(add, [c], {"type": "stdio"}, sandbox).status == "pass"
    assert run_checks(add.replace("+", "-"), [c], {"type": "stdio"}, sandbox).status == "fail"
    (f,) = parse_examples("g(1) == 0.3333333", "g").checks
    assert f.compare == "float"
    assert run_checks("def g(x):\n    return x / 3\n", [f], {}, sandbox).status == "pass"
    # doctest repr comparison falls back to value equality ("x" vs 'x').
    (d,) = parse_examples('>>> h()\n"x"\n', "h").checks
    assert run_checks("def h():\n    return 'x'\n", [d], {}, sandbox).status == "pass"
    # A program printing the marker-like text cannot fake a pass: the marker is random.
    fake = "print('__codyn_visible_0__[[true, \"\"]]')\ndef g(x):\n    return 0\n"
    assert run_checks(fake, [f], {}, sandbox).status == "fail"


# ---------------------------------------------------------------- score and matrix stages

CHECK_TESTS = {
    "type": "check",
    "entry_point": "add",
    "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(5, 5) == 10\n",
    "prefix": 'def add(a, b):\n    """Add.\n    >>> add(2, 2)\n    4\n    """\n',
}


def _task(tid, tests, prompt="p", reference=None):
    return {"id": tid, "dataset": "t", "kind": "generate", "language": "python",
            "prompt": prompt, "reference": reference, "tests": tests, "label": None,
            "meta": {}}  # fmt: skip


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_score_visible_columns_opt_in_and_matrix(tmp_path, sandbox):
    no_examples = {**CHECK_TESTS, "prefix": "def add(a, b):\n    pass\n"}
    tasks = _write(
        tmp_path / "tasks.jsonl",
        [_task("ok", CHECK_TESTS), _task("wrong", CHECK_TESTS), _task("none", no_examples),
         _task("nocode", CHECK_TESTS)],
    )  # fmt: skip
    answers = {
        "ok": "def add(a, b):\n    return a + b",
        # passes the shown example (2+2 == 2*2) but not the hidden tests: what a cascade risks
        "wrong": "def add(a, b):\n    return a * b",
        "none": "def add(a, b):\n    return a + b",
        "nocode": None,
    }
    for model, flip in (("m1", False), ("m2", True)):
        recs = []
        for tid, text in answers.items():
            if flip and tid == "ok":
                text = "def add(a, b):\n    return a - b"
            recs.append({"task_id": tid, "model": model, "text": text,
                         "error": "boom" if text is None else None})  # fmt: skip
        _write(tmp_path / f"{model}.jsonl", recs)
    cfg = {"isolation": "auto", "timeout_s": 3}
    off = tmp_path / "off.csv"
    score_responses(tasks, tmp_path / "m1.jsonl", off, cfg, sandbox=sandbox)
    header = off.read_text().splitlines()[0]
    assert header == "task_id,model,score,status,detail"  # unchanged when off
    for model in ("m1", "m2"):
        summary = score_responses(
            tasks, tmp_path / f"{model}.jsonl", tmp_path / f"{model}.csv",
            {**cfg, "visible": True}, sandbox=sandbox,
        )  # fmt: skip
        assert "visible" in summary
    rows = {r["task_id"]: r for r in csv.DictReader(open(tmp_path / "m1.csv"))}
    assert (rows["ok"]["visible_status"], rows["ok"]["visible_passed"], rows["ok"]["visible_total"]) == ("pass", "1", "1")  # fmt: skip
    assert rows["wrong"]["visible_status"] == "pass" and rows["wrong"]["score"] == "0.0"
    assert rows["none"]["visible_status"] == "no_examples"
    assert rows["nocode"]["visible_status"] == "error" and rows["nocode"]["status"] == "no_answer"
    m2 = {r["task_id"]: r for r in csv.DictReader(open(tmp_path / "m2.csv"))}
    assert m2["ok"]["visible_status"] == "fail"
    matrix = build_matrix(
        tasks, {m: tmp_path / f"{m}.csv" for m in ("m1", "m2")}, {}, ["m1", "m2"],
        {"m1": 1.0, "m2": 2.0}, False, "t",
    )  # fmt: skip
    vis = matrix.visible()
    assert vis.loc["ok", "m1"] == 1.0 and vis.loc["ok", "m2"] == 0.0
    assert math.isnan(vis.loc["none", "m1"]) and vis.loc["nocode", "m1"] == 0.0
    assert VISIBLE_PREFIX + "m1" in matrix.frame.columns
    # Without the option the matrix has no visible columns.
    plain = build_matrix(
        tasks, {"m1": off}, {}, ["m1"], {"m1": 1.0}, False, "t",
    )  # fmt: skip
    assert plain.visible() is None


@pytest.mark.parametrize(
    "text",
    ["f(\n" * 100_000, 'f("' * 100_000, "Examples\nInput: 1\nOutput: 2\n" * 20_000,
     ">>> f(\n" * 50_000, "f(1) == " + "[" * 150_000],
)  # fmt: skip
def test_pathological_prompts_are_parsed_in_bounded_time(text):
    import time

    started = time.monotonic()
    parsed = parse_examples(text, "f", stdin=True)
    assert time.monotonic() - started < 10  # ~1 s here; unbounded scanning took minutes
    assert len(parsed.skipped) <= 210


def test_livecodebench_statements_and_solution_methods(shared_datasets, sandbox):
    """Real LiveCodeBench statements (no public tests stored): Codeforces samples rendered
    with blank lines between input lines, LeetCode examples calling a Solution method."""
    path = shared_datasets / "lcb_leaderboard_matrix"
    rows = json.load(open(path / "submissions_O1-Mini-2024-09-12_N1_codegeneration_eval_all.json"))
    by_id = {q["question_id"]: q for q in rows}
    cf = by_id["1899_A"]
    (c,) = parse_examples(cf["question_content"], stdin=True).checks
    assert c.stdin == "6\n1\n3\n5\n100\n999\n1000\n"  # blank rendering lines undone
    assert c.expected.split() == ["First", "Second", "First", "First", "Second", "First"]
    assert run_checks(cf["code_list"][0], [c], {"type": "stdio"}, sandbox).status == "pass"
    lc = by_id["2727"]
    checks = parse_examples(lc["question_content"], "countSeniors").checks
    assert checks and all(x.expr.startswith("countSeniors(") for x in checks)
    tests = {"type": "call", "fn_name": "countSeniors"}
    code = "from typing import List\n" + lc["code_list"][0]
    assert run_checks(code, checks, tests, sandbox).status == "pass"
    wrong = code.replace("return", "return 1 + ", 1)
    assert run_checks(wrong, checks, tests, sandbox).status in ("fail", "error")
