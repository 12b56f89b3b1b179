"""The shape rule of the code (issue 18): no function or method in codyn/ longer than
MAX_FUNCTION lines and no class longer than MAX_CLASS lines, unless a reason is written at
its top. A long body is allowed only for a stated reason, so every exception is visible where
the code is read, not in a list kept here.

The reason is a comment line of the form

    def run(...):
        # size: <why this body is one piece>

standing between the def/class line and the first statement of the body (a docstring may
come before or after it). Lengths count from the def/class line (decorators excluded) to the
last line of the body.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from codyn.errors import CodynError

PACKAGE = Path(__file__).resolve().parent.parent / "codyn"
MAX_FUNCTION = 80
MAX_CLASS = 250
REASON = re.compile(r"^\s*#\s*size:(.*)$")
# fewer words than this is a label, not a reason
MIN_REASON_WORDS = 3


def _header_lines(node: ast.AST) -> range:
    """Line numbers (1-based) where the reason may stand: from the def/class line up to the
    first body statement that is not the docstring."""
    body = node.body
    first = body[0]
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
        and len(body) > 1
    ):
        first = body[1]
    return range(node.lineno, first.lineno)


def size_reason(node: ast.AST, lines: list[str]) -> str | None:
    """The text after `# size:` in the header of `node`, or None when there is none."""
    for lineno in _header_lines(node):
        match = REASON.match(lines[lineno - 1])
        if match:
            return match.group(1).strip()
    return None


def _limit(node: ast.AST) -> int | None:
    if isinstance(node, ast.ClassDef):
        return MAX_CLASS
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return MAX_FUNCTION
    return None


def shape_report(path: Path, root: Path) -> tuple[list[str], list[str]]:
    """(offenders, empty reasons) of one source file, each as `file:line name length`."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    try:
        tree = ast.parse(text, filename=str(path))
    except SyntaxError as exc:
        raise CodynError(f"{path}:{exc.lineno}: cannot parse: {exc.msg}") from exc
    offenders, empty = [], []
    for node in ast.walk(tree):
        limit = _limit(node)
        if limit is None:
            continue
        length = node.end_lineno - node.lineno + 1
        reason = size_reason(node, lines)
        where = f"{path.relative_to(root)}:{node.lineno} {node.name} {length}"
        if reason is not None and len(reason.split()) < MIN_REASON_WORDS:
            empty.append(f"{where} (reason {reason!r})")
        elif length > limit and reason is None:
            offenders.append(f"{where} > {limit}")
    return offenders, empty


def _scan(package: Path) -> tuple[list[str], list[str]]:
    offenders, empty = [], []
    for path in sorted(package.rglob("*.py")):
        found, blank = shape_report(path, package.parent)
        offenders += found
        empty += blank
    return offenders, empty


def test_no_long_function_or_class_without_a_reason():
    offenders, _ = _scan(PACKAGE)
    assert not offenders, (
        f"functions over {MAX_FUNCTION} lines or classes over {MAX_CLASS} lines without a "
        "`# size: <reason>` line at their top (split them, or say why they are one piece):\n"
        + "\n".join(offenders)
    )


def test_every_size_reason_says_something():
    _, empty = _scan(PACKAGE)
    assert not empty, (
        f"`# size:` comments with fewer than {MIN_REASON_WORDS} words of reason:\n"
        + "\n".join(empty)
    )


# The checker itself, on files written for the purpose: it must catch what it is for.


def _write(tmp_path: Path, body: str) -> Path:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "mod.py").write_text(body, encoding="utf-8")
    return package


def _long_function(name: str, header: str = "", lines: int = MAX_FUNCTION) -> str:
    body = "".join(f"    x{i} = {i}\n" for i in range(lines - 2 - header.count("\n")))
    return f"def {name}(a,\n        b):\n{header}{body}"


def test_checker_flags_a_long_function_with_its_place(tmp_path):
    package = _write(tmp_path, "import os\n\n" + _long_function("too_long", lines=MAX_FUNCTION + 1))
    offenders, empty = _scan(package)
    assert offenders == [f"pkg/mod.py:3 too_long {MAX_FUNCTION + 1} > {MAX_FUNCTION}"]
    assert empty == []


def test_checker_allows_the_limit_and_a_stated_reason(tmp_path):
    source = _long_function("at_limit") + _long_function(
        "excused", '    """Doc."""\n    # size: one sequential child body\n', 200
    )
    assert _scan(_write(tmp_path, source)) == ([], [])


@pytest.mark.parametrize("reason", ["", "   ", "long"])
def test_checker_rejects_an_empty_reason(tmp_path, reason):
    header = f"    # size:{reason}\n"
    package = _write(tmp_path, _long_function("lazy", header, MAX_FUNCTION + 5))
    offenders, empty = _scan(package)
    assert offenders == []
    assert len(empty) == 1 and empty[0].startswith("pkg/mod.py:1 lazy")


def test_checker_ignores_a_reason_inside_the_body(tmp_path):
    body = _long_function("buried", lines=MAX_FUNCTION + 5) + "    # size: too late to count here\n"
    source = body.replace("    x3 = 3\n", "    x3 = 3\n    # size: not at the top of it\n")
    offenders, _ = _scan(_write(tmp_path, source))
    assert [o.split()[1] for o in offenders] == ["buried"]


def test_checker_measures_classes_and_methods(tmp_path):
    methods = "".join(
        "    " + line + "\n"
        for i in range(32)
        for line in _long_function(f"m{i}", lines=8).splitlines()
    )
    package = _write(tmp_path, f"class Big:\n{methods}")
    offenders, _ = _scan(package)
    assert offenders == [f"pkg/mod.py:1 Big {1 + 32 * 8} > {MAX_CLASS}"]
