"""Run a program against the examples its prompt shows (codyn.examples) in the sandbox.

The verdict is the verified cascade's accept signal: ``pass`` (every visible example
passes), ``fail`` (at least one fails), ``no_examples`` (the prompt shows none that we
could parse) or ``error`` (no code, or the program did not get to its examples: syntax
error, crash at import, time or memory limit while checking).

Call and assert checks of one program run in ONE sandboxed process (a harness after the
program evaluates each check in turn, catching its exceptions, and prints the per-check
results behind a per-run random marker); stdin/stdout checks run one process each, as
hidden stdio tests do (codyn.scoring.execution). The program is assembled the way the
hidden tests assemble it (``execution.with_prefix``: a HumanEval answer that is only a
function body gets the prompt's signature in front), under the module name
``__codyn__`` so ``if __name__ == "__main__"`` blocks stay off; an entry point that is a
method of ``class Solution`` (LeetCode starter code) is called on an instance. Untrusted code runs only
inside :class:`codyn.scoring.sandbox.Sandbox`.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field

from codyn.examples import Check
from codyn.scoring.execution import NON_MAIN, same_output, with_prefix
from codyn.scoring.sandbox import Sandbox

VISIBLE_STATUSES = ("pass", "fail", "no_examples", "error")

_HARNESS = r"""

def __codyn_visible(__checks_json, __marker, __entry):
    import contextlib, io, json, math
    def norm(v):
        if isinstance(v, (tuple, list)):
            return [norm(x) for x in v]
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items()}
        return v
    def close(a, b):
        if isinstance(a, bool) or isinstance(b, bool):
            return a == b
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
        if isinstance(a, list) and isinstance(b, list):
            return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
        if isinstance(a, dict) and isinstance(b, dict):
            return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
        return a == b
    def same(got, want, tolerant):
        got, want = norm(got), norm(want)
        try:
            if got == want:
                return True
        except Exception:
            return False
        return tolerant and close(got, want)
    results = []
    namespace = globals()
    # LeetCode-style answers define the entry point as a method of class Solution.
    holder = namespace.get("Solution")
    if __entry and not callable(namespace.get(__entry)) and isinstance(holder, type) and hasattr(holder, __entry):
        namespace[__entry] = getattr(holder(), __entry)
    for check in json.loads(__checks_json):
        ok, why = False, ""
        try:
            if check["kind"] == "assert":
                exec(check["expr"], namespace)
                ok = True
            else:
                shown = io.StringIO()
                with contextlib.redirect_stdout(shown):
                    got = eval(check["expr"], namespace)
                if check["compare"] == "repr":
                    text = shown.getvalue() + ("" if got is None else repr(got))
                    ok = " ".join(text.split()) == " ".join(check["expected"].split())
                    if not ok:
                        try:
                            want = eval(check["expected"], {})
                        except Exception:
                            why = "expected " + check["expected"][:60] + " got " + text[:60]
                        else:
                            ok = same(got, want, True)
                else:
                    ok = same(got, eval(check["expected"], {}), check["compare"] == "float")
                if not ok and not why:
                    why = "expected " + check["expected"][:60] + " got " + repr(got)[:60]
        except AssertionError:
            why = "assertion failed"
        except BaseException as exc:  # SystemExit too: one check must not end the others
            why = type(exc).__name__ + ": " + str(exc)[:100]
        results.append([bool(ok), why])
    print(__marker + json.dumps(results), flush=True)
"""


@dataclass
class VisibleVerdict:
    status: str  # one of VISIBLE_STATUSES
    n_passed: int = 0
    n_total: int = 0
    detail: str = ""
    per_check: list[bool] = field(default_factory=list)

    @property
    def share(self) -> float:
        """Share of examples passed (NaN without examples; 0 for an error)."""
        if self.status == "no_examples" or self.n_total == 0:
            return float("nan")
        return self.n_passed / self.n_total


def _harness_program(code: str, checks: list[Check], tests: dict, marker: str) -> str:
    entry = tests.get("entry_point") or tests.get("fn_name") or ""
    payload = json.dumps(
        [
            {"kind": c.kind, "expr": c.expr, "expected": c.expected, "compare": c.compare}
            for c in checks
        ]  # fmt: skip
    )
    return f"{with_prefix(code, tests)}\n{_HARNESS}\n__codyn_visible({payload!r}, {marker!r}, {entry!r})\n"


def run_checks(code: str, checks: list[Check], tests: dict, sandbox: Sandbox) -> VisibleVerdict:
    """Run ``code`` against ``checks``; ``tests`` gives the prefix / entry point rules."""
    if not checks:
        return VisibleVerdict("no_examples")
    if code is None or not str(code).strip():
        return VisibleVerdict("error", 0, len(checks), "no code", [False] * len(checks))
    tests = tests or {}
    results: list[bool | None] = [None] * len(checks)
    details: list[str] = []
    errored = False
    in_process = [i for i, c in enumerate(checks) if c.kind in ("call", "assert")]
    if in_process:
        marker = f"__codyn_visible_{secrets.token_hex(8)}__"
        run = sandbox.run(
            _harness_program(code, [checks[i] for i in in_process], tests, marker), name=NON_MAIN
        )
        reported = None
        for line in reversed(run.stdout.splitlines()):
            if line.startswith(marker):
                try:
                    reported = json.loads(line[len(marker) :])
                except json.JSONDecodeError:
                    reported = None
                break
        if run.status == "ok" and isinstance(reported, list) and len(reported) == len(in_process):
            for i, (ok, why) in zip(in_process, reported, strict=True):
                results[i] = bool(ok)
                if not ok and why:
                    details.append(f"example {i}: {why}")
        else:
            errored = True
            details.append(f"{run.status}: {run.detail}"[:300])
            for i in in_process:
                results[i] = False
    program = with_prefix(code, tests)
    for i, c in enumerate(checks):
        if c.kind != "stdio":
            continue
        run = sandbox.run(program, stdin=c.stdin)
        if run.status != "ok":
            results[i] = False
            details.append(f"example {i}: {run.status}: {run.detail}"[:300])
            continue
        results[i] = same_output(run.stdout, c.expected)
        if not results[i]:
            details.append(
                f"example {i}: expected {c.expected.strip()[:60]!r} got {run.stdout.strip()[:60]!r}"
            )
    per = [bool(r) for r in results]
    n_passed = sum(per)
    if errored and n_passed == 0:
        status = "error"
    else:
        status = "pass" if n_passed == len(checks) else "fail"
    return VisibleVerdict(status, n_passed, len(checks), "; ".join(details)[:400], per)


def usable_checks(
    task: dict, checks: list[Check], sandbox: Sandbox
) -> tuple[list[Check], list[Check]]:
    """(checks the reference passes, flagged checks it fails); all kept without a reference."""
    reference = task.get("reference")
    if not checks or not reference:
        return list(checks), []
    verdict = run_checks(reference, checks, task.get("tests") or {}, sandbox)
    kept = [c for c, ok in zip(checks, verdict.per_check, strict=True) if ok]
    flagged = [c for c, ok in zip(checks, verdict.per_check, strict=True) if not ok]
    return kept, flagged
