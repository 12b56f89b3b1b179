"""Execution scoring: build the program for a task's tests, run it in the sandbox, judge it.

Test types (codyn.records): ``check`` (HumanEval/MBPP ``check(candidate)``), ``call``
(APPS call-based, starter code), ``stdio`` (APPS/RunBugRun standard input/output) and
``unittest`` (BigCodeBench). Score 1 only if every test passes; otherwise 0 with the
status of the first failure (fail, timeout, runtime_error, syntax_error,
memory_limit) and a short detail.

``prefix`` (in tests, the problem's own code: HumanEval's prompt, MBPP's signature) is
prepended when the answer does not itself define the entry point, so an answer that is
only a function body (completion style) still runs; and also in front of a complete
answer when the prefix is valid code on its own, because the prompt's imports and helper
functions are part of the problem the model was given (HumanEval/50's ``encode_shift``,
``from typing import List``). The answer's own definitions come later and win. APPS
starter code (a class with an empty method) does not parse alone and is never put in
front of a complete answer; nor is anything put before a ``from __future__`` import.
Output comparison for stdio (APPS convention): equal after stripping trailing
whitespace per line, else equal token lists, else token-wise numeric closeness
(rel 1e-6 / abs 1e-9) for tokens that both parse as floats.
"""

from __future__ import annotations

import ast
import json
import math
import re
import warnings
from dataclasses import dataclass

from codyn.scoring.sandbox import RunResult, Sandbox

NON_MAIN = (
    "__codyn__"  # module name for harnessed runs: `if __name__ == "__main__"` blocks stay off
)


@dataclass
class Verdict:
    score: float
    status: str
    detail: str = ""


def defines(code: str, name: str) -> bool:
    return (
        bool(name)
        and re.search(rf"^\s*(?:async\s+)?(?:def|class)\s+{re.escape(name)}\b", code, re.M)
        is not None
    )


def _parses(code: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def with_prefix(code: str, tests: dict) -> str:
    prefix = tests.get("prefix") or ""
    entry = tests.get("entry_point") or tests.get("fn_name") or ""
    if not prefix:
        return code
    if not defines(code, entry):
        return prefix.rstrip("\n") + "\n" + code
    if "from __future__" not in code and _parses(prefix):
        return prefix.rstrip("\n") + "\n\n\n" + code
    return code


def check_program(code: str, tests: dict) -> str:
    entry = tests["entry_point"]
    return f"{with_prefix(code, tests)}\n\n{tests['test']}\n\ncheck({entry})\n__codyn_report__()\n"


_CALL_HARNESS = r"""

def __codyn_run_calls(__cases_json, __fn_name):
    import copy, json
    def norm(value):
        if isinstance(value, tuple | list):
            return [norm(v) for v in value]
        if isinstance(value, dict):
            return {k: norm(v) for k, v in value.items()}
        return value
    cases = json.loads(__cases_json)
    namespace = globals()
    holder = namespace.get("Solution")
    if isinstance(holder, type) and hasattr(holder, __fn_name):
        fn = getattr(holder(), __fn_name)
    elif callable(namespace.get(__fn_name)):
        fn = namespace[__fn_name]
    else:
        raise NameError(f"entry point {__fn_name!r} is not defined")
    for index, case in enumerate(cases):
        args = case["input"]
        if not isinstance(args, list):
            args = [args]
        expected = case["output"]
        got = norm(fn(*copy.deepcopy(args)))
        ok = got == norm(expected)
        # APPS stores a call's return value wrapped in a one-element list.
        if not ok and isinstance(expected, list) and len(expected) == 1:
            ok = got == norm(expected[0])
        if not ok:
            raise AssertionError(f"case {index}: expected {expected!r:.80} got {got!r:.80}")
"""


def call_program(code: str, tests: dict) -> str:
    cases = json.dumps(tests["cases"])
    fn_name = tests["fn_name"]
    return (
        f"{with_prefix(code, tests)}\n{_CALL_HARNESS}\n"
        f"__codyn_run_calls({cases!r}, {fn_name!r})\n__codyn_report__()\n"
    )


_UNITTEST_HARNESS = r"""

def __codyn_run_unittests():
    import io, unittest
    loader = unittest.TestLoader()
    suite = unittest.TestSuite()
    for value in list(globals().values()):
        if isinstance(value, type) and issubclass(value, unittest.TestCase) and value is not unittest.TestCase:
            suite.addTests(loader.loadTestsFromTestCase(value))
    result = unittest.TextTestRunner(stream=io.StringIO(), verbosity=0).run(suite)
    if result.testsRun == 0:
        raise AssertionError("no tests ran")
    problems = result.failures + result.errors
    if problems:
        test, trace = problems[0]
        last = trace.strip().splitlines()[-1] if trace.strip() else ""
        raise AssertionError(f"{len(problems)}/{result.testsRun} tests failed; {test.id()}: {last}")
"""


def unittest_program(code: str, tests: dict) -> str:
    return f"{with_prefix(code, tests)}\n\n{tests['test']}\n{_UNITTEST_HARNESS}\n__codyn_run_unittests()\n__codyn_report__()\n"


def _float(token: str) -> float | None:
    try:
        return float(token)
    except ValueError:
        return None


def same_output(got: str, expected: str) -> bool:
    """APPS-style stdout comparison (see module docstring)."""
    if [line.rstrip() for line in got.strip().splitlines()] == [
        line.rstrip() for line in expected.strip().splitlines()
    ]:
        return True
    got_tokens, expected_tokens = got.split(), expected.split()
    if got_tokens == expected_tokens:
        return True
    if len(got_tokens) != len(expected_tokens):
        return False
    for a, b in zip(got_tokens, expected_tokens, strict=True):
        if a == b:
            continue
        fa, fb = _float(a), _float(b)
        if fa is None or fb is None or not math.isclose(fa, fb, rel_tol=1e-6, abs_tol=1e-9):
            return False
    return True


def _expected_text(output) -> str:
    # APPS keeps stdout as a one-element list of the whole text.
    if isinstance(output, list):
        return "\n".join(str(o) for o in output)
    return str(output)


def _from_run(run: RunResult) -> Verdict:
    if run.status == "ok":
        return Verdict(1.0, "pass", "")
    return Verdict(0.0, run.status, run.detail)


def run_tests(code: str, tests: dict, sandbox: Sandbox) -> Verdict:
    """Score one extracted program against ``tests``: 1.0 only if every test passes."""
    kind = tests.get("type")
    if kind == "check":
        return _from_run(
            sandbox.run(check_program(code, tests), name=NON_MAIN, require_marker=True)
        )
    if kind == "call":
        return _from_run(sandbox.run(call_program(code, tests), name=NON_MAIN, require_marker=True))
    if kind == "unittest":
        return _from_run(
            sandbox.run(unittest_program(code, tests), name=NON_MAIN, require_marker=True)
        )
    if kind == "stdio":
        program = with_prefix(code, tests)
        cases = tests.get("cases") or []
        if not cases:
            return Verdict(0.0, "fail", "no test cases")
        for index, case in enumerate(cases):
            run = sandbox.run(program, stdin=str(case.get("input", "")))
            if run.status != "ok":
                return Verdict(0.0, run.status, f"case {index}: {run.detail}")
            expected = _expected_text(case.get("output", ""))
            if not same_output(run.stdout, expected):
                return Verdict(
                    0.0,
                    "fail",
                    f"case {index}: expected {expected.strip()[:60]!r} got {run.stdout.strip()[:60]!r}",
                )
        return Verdict(1.0, "pass", f"{len(cases)} cases")
    raise ValueError(f"unknown tests type {kind!r}")
