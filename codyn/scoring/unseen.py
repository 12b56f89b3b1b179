"""Hidden tests minus the visible ones: the score the prompt's own examples cannot flatter.

MBPP's visible example (the assert MapCoder showed) is one of its hidden asserts, and
HumanEval's docstring examples often reappear in ``check(candidate)``. An answer that passes
its visible examples has then already earned part of its hidden score, so the verified
cascade's effectiveness is also reported on the hidden tests that the prompt did NOT show.

How (robust to the free form of ``check`` functions): the hidden test program is parsed
with :mod:`ast`; inside the ``check`` function (HumanEval and MultiPL-E MBPP both call its
parameter ``candidate``) every ``assert`` statement whose calls of ``candidate`` all use
arguments that a visible example calls the entry point with is removed (arguments compared
as Python values when they are literals, else as normalised syntax). Asserts that exercise
the function through loops or computed arguments never match and stay. The rest of the
program (imports, helpers, loops, other statements) is kept verbatim, so the hidden tests
minus the visible ones run exactly as the hidden tests do (codyn.scoring.execution).
Matching on the call's arguments, not on the expected value, removes every hidden assert
on an input the prompt showed, whatever it compares (``==``, ``abs(...) < 1e-6``).
stdio / call-case tests drop the cases whose input equals a visible example's.

A task whose remaining ``check`` no longer refers to ``candidate`` at all (every hidden
test was visible) is ``all_visible``: excluded from the unseen column and counted. A task
without visible examples keeps all its hidden tests (hidden minus nothing = hidden).
``unittest`` programs (BigCodeBench) are ``unsupported``.
"""

from __future__ import annotations

import ast
import copy
import warnings
from dataclasses import dataclass

from codyn.examples import Check

ALL_VISIBLE = "all_visible"
UNSUPPORTED = "unsupported"


@dataclass
class Unseen:
    """A task's hidden tests minus its visible examples.

    ``tests``: the reduced tests dict (None when ``status`` is ``all_visible`` or
    ``unsupported``); ``removed`` / ``kept``: hidden asserts or cases dropped and left;
    ``status``: ``ok``, ``all_visible`` or ``unsupported``; ``detail``: why."""

    tests: dict | None
    removed: int = 0
    kept: int = 0
    status: str = "ok"
    detail: str = ""


def _key(node: ast.expr) -> str:
    """A call argument as a comparable key: its Python value when literal, else its syntax."""
    try:
        return "value:" + repr(_plain(ast.literal_eval(node)))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return "syntax:" + ast.dump(node, annotate_fields=False)


def _plain(value):
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return sorted((repr(_plain(k)), repr(_plain(v))) for k, v in value.items())
    if isinstance(value, set | frozenset):
        return sorted(repr(_plain(v)) for v in value)
    return value


def _call_key(call: ast.Call) -> tuple:
    args = tuple(_key(a) for a in call.args)
    kwargs = tuple(sorted((k.arg or "**", _key(k.value)) for k in call.keywords))
    return args, kwargs


def _calls_of(tree: ast.AST, name: str) -> list[ast.Call]:
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name
    ]


def _parse(source: str) -> ast.AST | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(source)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None


def visible_call_keys(checks: list[Check], entry: str) -> set[tuple]:
    """The argument keys of every call of ``entry`` in the call / assert examples."""
    keys: set[tuple] = set()
    for c in checks:
        if c.kind not in ("call", "assert"):
            continue
        tree = _parse(c.expr)
        if tree is not None:
            keys.update(_call_key(call) for call in _calls_of(tree, entry))
    return keys


class _DropVisible(ast.NodeTransformer):
    def __init__(self, param: str, keys: set[tuple]):
        self.param, self.keys = param, keys
        self.removed = 0

    def visit_Assert(self, node: ast.Assert):
        calls = _calls_of(node, self.param)
        if calls and all(_call_key(c) in self.keys for c in calls):
            self.removed += 1
            return None
        return node

    def generic_visit(self, node):
        super().generic_visit(node)
        body = getattr(node, "body", None)
        if isinstance(body, list) and not body:
            body.append(ast.Pass())  # a block emptied of asserts must stay valid Python
        return node


def _unseen_check(tests: dict, checks: list[Check]) -> Unseen:
    entry = tests.get("entry_point") or ""
    tree = _parse(tests.get("test") or "")
    if tree is None:
        return Unseen(None, status=UNSUPPORTED, detail="hidden test program does not parse")
    found = [s for s in tree.body if isinstance(s, ast.FunctionDef) and s.name == "check"]
    if len(found) != 1 or not found[0].args.args:
        return Unseen(None, status=UNSUPPORTED, detail="no check(candidate) function")
    keys = visible_call_keys(checks, entry)
    if not keys:
        return Unseen(dict(tests), kept=len(_asserts(found[0])))
    tree = copy.deepcopy(tree)
    check = next(s for s in tree.body if isinstance(s, ast.FunctionDef) and s.name == "check")
    param = check.args.args[0].arg
    dropper = _DropVisible(param, keys)
    check.body = [dropper.visit(s) for s in check.body]
    check.body = [s for s in check.body if s is not None] or [ast.Pass()]
    kept = len(_asserts(check))
    uses = any(isinstance(n, ast.Name) and n.id == param for n in ast.walk(check))
    if not uses:
        return Unseen(
            None, dropper.removed, 0, ALL_VISIBLE, "every hidden test calls a visible input"
        )
    if not dropper.removed:
        return Unseen(dict(tests), 0, kept)
    ast.fix_missing_locations(tree)
    return Unseen({**tests, "test": ast.unparse(tree) + "\n"}, dropper.removed, kept)


def _asserts(node: ast.AST) -> list[ast.Assert]:
    return [n for n in ast.walk(node) if isinstance(n, ast.Assert)]


def _same_stdin(a, b) -> bool:
    return " ".join(str(a).split()) == " ".join(str(b).split())


def _unseen_cases(tests: dict, checks: list[Check]) -> Unseen:
    cases = list(tests.get("cases") or [])
    if tests.get("type") == "stdio":
        shown = [c.stdin for c in checks if c.kind == "stdio"]
        keep = [c for c in cases if not any(_same_stdin(c.get("input", ""), s) for s in shown)]
    else:
        keys = visible_call_keys(checks, tests.get("fn_name") or "")
        keep = []
        for case in cases:
            args = case.get("input")
            args = args if isinstance(args, list) else [args]
            key = (tuple("value:" + repr(_plain(a)) for a in args), ())
            if key not in keys:
                keep.append(case)
    removed = len(cases) - len(keep)
    if cases and not keep:
        return Unseen(None, removed, 0, ALL_VISIBLE, "every hidden case is a visible example")
    return Unseen({**tests, "cases": keep} if removed else dict(tests), removed, len(keep))


def unseen_tests(tests: dict, checks: list[Check]) -> Unseen:
    """``tests`` (codyn.records) minus the ``checks`` the prompt shows (module docstring)."""
    if not isinstance(tests, dict):
        raise TypeError(f"tests must be a dict, got {type(tests).__name__}")
    kind = tests.get("type")
    if kind == "check":
        return _unseen_check(tests, checks)
    if kind in ("stdio", "call"):
        return _unseen_cases(tests, checks)
    return Unseen(None, status=UNSUPPORTED, detail=f"tests of type {kind!r}")
