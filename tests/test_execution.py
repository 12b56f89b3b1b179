from __future__ import annotations

import pytest

from codyn.scoring.execution import run_tests, same_output
from codyn.scoring.sandbox import Limits, Sandbox


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(Limits(timeout_s=2, cpu_s=2), workers=2) as box:
        yield box


CHECK = {
    "type": "check",
    "entry_point": "add",
    "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n",
}


def test_check_pass_fail_and_early_exit(sandbox):
    assert run_tests("def add(a, b):\n    return a + b", CHECK, sandbox).status == "pass"
    assert run_tests("def add(a, b):\n    return a - b", CHECK, sandbox).status == "fail"
    assert run_tests("def add(a, b):\n    return a +", CHECK, sandbox).status == "syntax_error"
    # An answer that exits before the tests run does not pass.
    v = run_tests("import sys\ndef add(a, b):\n    return 0\nsys.exit(0)", CHECK, sandbox)
    assert v.status == "runtime_error" and v.score == 0
    assert run_tests("def add(a, b):\n    while True: pass", CHECK, sandbox).status == "timeout"


def test_prefix_for_body_only_answers(sandbox):
    tests = {**CHECK, "prefix": "def add(a, b):"}
    assert run_tests("    return a + b", tests, sandbox).status == "pass"


def test_prompt_context_goes_before_a_complete_answer(sandbox):
    """HumanEval/50-like: the prompt defines a helper (and imports) the answer relies on."""
    prompt = (
        "import math\n\n\ndef helper(x):\n    return math.floor(x) + 1\n\n\n"
        'def add(a, b):\n    """Add, via helper."""\n'
    )
    tests = {**CHECK, "prefix": prompt}
    answer = "def add(a, b):\n    return helper(a) + b - 1"
    assert run_tests(answer, tests, sandbox).status == "pass"
    assert run_tests(answer, CHECK, sandbox).status == "runtime_error"  # no context: NameError
    # A prefix that is not code on its own (APPS starter code) stays out of complete answers,
    # and nothing goes before a __future__ import (it must come first).
    starter = {**CHECK, "prefix": "class Solution:\n    def add(self, a, b):\n        "}
    assert run_tests("def add(a, b):\n    return a + b", starter, sandbox).status == "pass"
    future = "from __future__ import annotations\ndef add(a: int, b: int) -> int:\n    return a + b"
    assert run_tests(future, tests, sandbox).status == "pass"


def test_main_block_does_not_run_under_harness(sandbox):
    code = "def add(a, b):\n    return a + b\nif __name__ == '__main__':\n    input()"
    assert run_tests(code, CHECK, sandbox).status == "pass"


def test_call_with_solution_class_and_apps_wrapping(sandbox):
    tests = {
        "type": "call",
        "fn_name": "twice",
        "cases": [{"input": [2], "output": [4]}, {"input": [3], "output": 6}],
    }
    assert run_tests("def twice(x):\n    return 2 * x", tests, sandbox).status == "pass"
    assert (
        run_tests(
            "class Solution:\n    def twice(self, x):\n        return x * 2", tests, sandbox
        ).status
        == "pass"
    )
    v = run_tests("def twice(x):\n    return x", tests, sandbox)
    assert v.status == "fail" and "case 0" in v.detail
    tuples = {"type": "call", "fn_name": "f", "cases": [{"input": [], "output": [[1, 2]]}]}
    assert run_tests("def f():\n    return (1, 2)", tuples, sandbox).status == "pass"
    assert run_tests("x = 1", tests, sandbox).status == "runtime_error"


def test_stdio(sandbox):
    tests = {
        "type": "stdio",
        "cases": [{"input": "2 3\n", "output": "5\n"}, {"input": "1 1\n", "output": ["2\n"]}],
    }
    assert (
        run_tests("a, b = map(int, input().split())\nprint(a + b)", tests, sandbox).status == "pass"
    )
    v = run_tests("a, b = map(int, input().split())\nprint(a * b)", tests, sandbox)
    assert v.status == "fail" and v.detail.startswith("case 0")
    assert run_tests("input()\ninput()", tests, sandbox).status == "runtime_error"


def test_unittest(sandbox):
    test = "import unittest\nclass T(unittest.TestCase):\n    def test_a(self):\n        self.assertEqual(task_func(2), 4)\n"
    tests = {"type": "unittest", "entry_point": "task_func", "test": test}
    assert run_tests("def task_func(x):\n    return x * x", tests, sandbox).status == "pass"
    v = run_tests("def task_func(x):\n    return x", tests, sandbox)
    assert v.status == "fail" and "1/1 tests failed" in v.detail


def test_same_output():
    assert same_output("1 2\n3\n", "1 2\n3")
    assert same_output("1  2 \n", "1 2")
    assert same_output("0.3333333333", "0.333333333333")
    assert not same_output("1 2", "1 3")
    assert not same_output("abc", "abd")
