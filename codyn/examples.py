"""The examples a prompt shows, as executable checks (the verified cascade's evidence).

A coding prompt usually shows a few input/output examples. A program that fails the
prompt's own examples is certainly wrong; one that passes them is likely right. This
module turns those examples into :class:`Check` objects that
:mod:`codyn.scoring.visible` runs in the sandbox. **Only what the model was shown is
used, never the hidden tests.**

Where the examples come from (:func:`visible_examples`, first that yields checks):

1. Structured public tests the dataset carries, in ``task["meta"]``:
   ``sample_io`` (MapCoder's field: a list of ``assert ...`` strings for MBPP, or of
   ``{"input", "output"}`` stdin/stdout pairs for APPS) or ``public_tests`` (a list of
   ``{"input", "output"}``, LiveCodeBench's public tests). For MBPP this is the one test
   MapCoder put into the prompt as its sample: MBPP's own protocol shows the model its
   tests in the prompt ("Your code should pass these tests"), and MapCoder shows the
   first of them. It is therefore also one of the hidden tests; whoever reports a
   cascade reports effectiveness on the hidden tests minus the visible ones too.
2. The ``Sample Input/Output:`` block that :mod:`codyn.datasets.apps` appends to a
   MapCoder APPS question (the rows' ``sample_io``, kept apart from the statement).
3. Parsing the problem text (``tests.prefix`` for HumanEval/MBPP, the question for
   APPS; never the template around it, see :func:`problem_text`):

   - doctest blocks: ``>>> expr`` followed by the expected output lines;
   - call lines: ``f(args) == y``, ``f(args) -> y``, ``f(args) ➞ y``, ``=>``, ``==>``,
     ``# returns y``, ``returns y``, ``should return y`` (``f`` the entry point; the
     call may span lines; prose after ``y`` is cut at the longest prefix that parses);
   - ``Example / Input: ... / Output: ...`` blocks: a call of the entry point with the
     input's values (``a = 1, b = [2]`` and ``a : 1`` forms become positional
     arguments) or, for a stdin program, a stdin/stdout pair;
   - ``Sample Input N`` / ``Sample Output N`` sections (AtCoder, Codeforces): stdin/stdout;
   - ``assert f(...) == ...`` lines shown in the prompt (MBPP style).

Values must be plain literals (numbers, strings, lists, tuples, dicts, sets, True/False/
None, arithmetic over them); prose that merely looks like code is skipped, with the
reason recorded. Lower-case ``true``/``false``/``null`` (JavaScript-flavoured prompts)
read as Python's. Parsing never raises: :func:`parse_examples` returns the checks it
could build and a list of skipped candidates with reasons; problem texts longer than
:data:`MAX_TEXT_CHARS` are cut there.

Comparison (``Check.compare``): ``exact`` -- Python equality after turning tuples into
lists (``==`` lines, asserts); ``float`` -- the same but numbers compare with
rel 1e-6 / abs 1e-9 (any expected value holding a float); ``repr`` -- doctest: the
printed output plus ``repr`` of the value equals the expected text (whitespace
normalised), else falls back to ``float``; ``stdout`` -- APPS-style token comparison
(:func:`codyn.scoring.execution.same_output`).

:func:`coverage` measures, per dataset, the share of tasks with at least one example,
examples per task, and the examples that the reference solution itself fails (those are
flagged and must not be used; :func:`codyn.scoring.visible.usable_checks` drops them).
``python -m codyn.examples TASKS.jsonl ...`` prints it as JSON.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field

MAX_TEXT_CHARS = 200_000  # longer problem texts are cut: no real statement is this long
MAX_CHECKS = 50  # a prompt with more examples than this gets the first 50
MAX_VALUE_CHARS = 20_000  # one expected value or call longer than this is skipped
MAX_SCAN_CHARS = 2_000_000  # characters scanned for unbalanced calls per text
MAX_SKIPPED = 200  # skip reasons kept per text
MAX_CANDIDATES = 2_000  # call-like spans read per text: bounds the work on pathological input

KINDS = ("call", "assert", "stdio")
COMPARES = ("exact", "float", "repr", "stdout")


@dataclass(frozen=True)
class Check:
    """One visible example, executable.

    ``kind``: ``call`` (evaluate ``expr`` against the program, compare with ``expected``),
    ``assert`` (execute the statement ``expr``; passes when it raises nothing) or
    ``stdio`` (run the program with ``stdin``; compare its stdout with ``expected``).
    ``source``: the prompt text it came from; ``origin``: which parser made it.
    """

    kind: str
    source: str
    expr: str = ""
    expected: str = ""
    stdin: str = ""
    compare: str = "exact"
    origin: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Parsed:
    checks: list[Check] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "reason: snippet"

    def skip(self, reason: str, snippet: str) -> None:
        if len(self.skipped) < MAX_SKIPPED:
            self.skipped.append(f"{reason}: {_one_line(snippet[:400])[:120]}")
        elif len(self.skipped) == MAX_SKIPPED:
            self.skipped.append("more skipped candidates not listed")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# ------------------------------------------------------------------ value checks

_SAFE_NODES = (
    ast.Expression,
    ast.Constant,
    ast.List,
    ast.Tuple,
    ast.Set,
    ast.Dict,
    ast.UnaryOp,
    ast.BinOp,
    ast.USub,
    ast.UAdd,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.FloorDiv,
    ast.Mod,
    ast.Pow,
    ast.Load,
)
_JS_WORDS = {"true": "True", "false": "False", "null": "None", "none": "None"}


def _is_literal(node: ast.AST) -> bool:
    if not all(isinstance(n, _SAFE_NODES) for n in ast.walk(node)):
        return False
    # 2 ** 10**9 would hang the checker: bound exponents.
    for n in ast.walk(node):
        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Pow):
            if not (isinstance(n.right, ast.Constant) and isinstance(n.right.value, int)):
                return False
            if abs(n.right.value) > 64:
                return False
    return True


def _js_fix(text: str) -> str:
    """true/false/null -> Python, outside string literals."""
    out, pos = [], 0
    for m in re.finditer(r"(\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*')|\b(true|false|null)\b", text):
        out.append(text[pos : m.start()])
        out.append(m.group(1) if m.group(1) else _JS_WORDS[m.group(2)])
        pos = m.end()
    out.append(text[pos:])
    return "".join(out)


def literal_expr(text: str) -> str | None:
    """``text`` as a literal Python expression (normalised source), or None."""
    text = text.strip()
    if not text or len(text) > MAX_VALUE_CHARS:
        return None
    for candidate in (text, _js_fix(text)):
        try:
            tree = ast.parse(candidate, mode="eval")
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        if _is_literal(tree):
            return candidate
    return None


def _longest_literal_prefix(text: str) -> str | None:
    """The longest prefix of ``text`` (cut at word boundaries) that is a literal."""
    text = text.strip().rstrip(".,;")
    if literal_expr(text):
        return literal_expr(text)
    cuts = sorted({m.start() for m in re.finditer(r"\s|[.,;](?=\s|$)", text)}, reverse=True)
    for cut in cuts[:200]:
        head = text[:cut].strip().rstrip(".,;")
        if head:
            lit = literal_expr(head)
            if lit is not None:
                return lit
    return None


def _has_float(expr: str) -> bool:
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError:
        return False
    return any(
        isinstance(n, ast.Constant) and isinstance(n.value, float) for n in ast.walk(tree)
    ) or any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.Div) for n in ast.walk(tree))


def _value_compare(expected: str) -> str:
    return "float" if _has_float(expected) else "exact"


# ------------------------------------------------------------------ balanced scanning


def _match_paren(text: str, open_pos: int) -> int | None:
    """Index of the bracket closing ``text[open_pos]``, skipping strings; None if unbalanced
    within :data:`MAX_VALUE_CHARS`."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    stack = [pairs[text[open_pos]]]
    i, n = open_pos + 1, min(len(text), open_pos + MAX_VALUE_CHARS)
    while i < n:
        ch = text[i]
        if ch in "\"'":
            end = _string_end(text, i)
            if end is None:
                return None
            i = end + 1
            continue
        if ch in pairs:
            stack.append(pairs[ch])
        elif ch in ")]}":
            if ch != stack[-1]:
                return None
            stack.pop()
            if not stack:
                return i
        i += 1
    return None


def _string_end(text: str, start: int) -> int | None:
    quote = text[start]
    if text.startswith(quote * 3, start):
        end = text.find(quote * 3, start + 3)
        return None if end < 0 else end + 2
    i = start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            return i
        if text[i] == "\n":
            return None
        i += 1
    return None


def _balanced_prefix(text: str) -> str:
    """``text`` up to the end of its first line, extended while brackets stay open."""
    depth, i = 0, 0
    while i < len(text):
        ch = text[i]
        if ch in "\"'":
            end = _string_end(text, i)
            if end is None:
                break
            i = end + 1
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "\n" and depth <= 0:
            return text[:i]
        i += 1
    return text[:i]


# ------------------------------------------------------------------ parsers


def _call_args_ok(call_src: str, entry: str) -> str | None:
    """Normalised call source when it is ``entry(literals...)``, else None."""
    for candidate in (call_src, _js_fix(call_src)):
        try:
            tree = ast.parse(candidate, mode="eval")
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        call = tree.body
        if not (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Name | ast.Attribute)
            and (call.func.id if isinstance(call.func, ast.Name) else call.func.attr) == entry
        ):
            continue
        parts = list(call.args) + [k.value for k in call.keywords]
        if all(_is_literal(ast.Expression(p)) for p in parts):
            return candidate
    return None


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


_OPERATOR = re.compile(
    r"^[ \t]*(?:#[ \t]*)?(?:===|==>|==|=>|-->|->|➞|→|\bshould\s+return\b|\bshould\s+be\b"
    r"|\breturns?\b|\bgives\b|\bis\b|=)[ \t:]*",
    re.I,
)


def parse_call_lines(text: str, entry: str, parsed: Parsed) -> None:
    """``entry(args) OP expected`` anywhere in the text (see module docstring)."""
    if not entry or not re.fullmatch(r"[A-Za-z_]\w*", entry):
        return
    covered = 0  # calls nested inside an earlier call's arguments are not examples
    scanned = 0
    for k, m in enumerate(re.finditer(rf"(?<![\w.]){re.escape(entry)}\s*\(", text)):
        if k >= MAX_CANDIDATES:
            parsed.skipped.append(f"more than {MAX_CANDIDATES} calls of {entry}: rest not read")
            break
        if m.start() < covered:
            continue
        line_start = text.rfind("\n", 0, m.start()) + 1
        before = text[line_start : m.start()]
        if re.search(r"\b(def|class|print)\s*$", before) or ">>>" in before:
            continue  # definitions and doctests have their own parsers
        if re.search(r"\bassert\s*$", before) and _parses(
            _balanced_prefix(text[line_start:]).strip()
        ):
            continue  # a well-formed assert: parse_asserts has it
        if "..." in before.strip()[:4]:
            continue
        open_pos = m.end() - 1
        close = _match_paren(text, open_pos)
        snippet = text[m.start() : m.start() + 160]
        if close is None:
            parsed.skip("unbalanced call", snippet)
            scanned += min(len(text) - open_pos, MAX_VALUE_CHARS)
            if scanned > MAX_SCAN_CHARS:  # pathological text: bound the work
                parsed.skipped.append("too many unbalanced calls: rest not read")
                break
            continue
        covered = close + 1
        call_src = text[m.start() : close + 1]
        if len(call_src) > MAX_VALUE_CHARS:
            parsed.skip("call too long", snippet)
            continue
        call = _call_args_ok(call_src, entry)
        if call is None:
            parsed.skip("call arguments are not literals", call_src)
            continue
        rest = text[close + 1 :]
        op = _OPERATOR.match(rest)
        if not op:
            parsed.skip("no expected value after call", call_src)
            continue
        expected_text = _balanced_prefix(rest[op.end() :])
        expected = _longest_literal_prefix(expected_text)
        if expected is None:
            parsed.skip("expected value is not a literal", call_src + " " + expected_text)
            continue
        parsed.checks.append(
            Check(
                "call",
                _one_line(text[m.start() : close + 1 + op.end() + len(expected_text)]),
                expr=call,
                expected=expected,
                compare=_value_compare(expected),
                origin="call-line",
            )
        )


_FOR_PHRASE = re.compile(
    r"\bfor\s+(.+?)\s*,?\s*the\s+(?:output|result|answer)\s+should\s+be\s+(.+)$", re.I | re.M
)


def parse_for_phrases(text: str, entry: str, parsed: Parsed) -> None:
    """``For x = 3, the output should be 5`` (HumanEval prose examples)."""
    if not entry:
        return
    for m in _FOR_PHRASE.finditer(text):
        pieces = m.group(1).split(",")
        args = None
        for n in range(len(pieces), 0, -1):
            args = _args_from_input(",".join(pieces[:n]))
            if args is not None:
                break
        expected = _longest_literal_prefix(m.group(2))
        if args is None or expected is None:
            parsed.skip("prose example is not literal", m.group(0))
            continue
        parsed.checks.append(
            Check(
                "call",
                _one_line(m.group(0)),
                expr=f"{entry}({args})",
                expected=expected,
                compare=_value_compare(expected),
                origin="prose",
            )
        )


def parse_doctests(text: str, parsed: Parsed) -> None:
    """``>>> expr`` + expected lines; continuation lines start with ``...``."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^\s*>>>[ ]?(.*)$", lines[i])
        if not m:
            i += 1
            continue
        src = [m.group(1)]
        i += 1
        while i < len(lines) and re.match(r"^\s*\.\.\.( |$)", lines[i]):
            src.append(re.sub(r"^\s*\.\.\.[ ]?", "", lines[i]))
            i += 1
        want = []
        while (
            i < len(lines)
            and lines[i].strip()
            and not re.match(r"^\s*>>>", lines[i])
            and not re.match(r"^\s*(\"\"\"|''')", lines[i])
        ):
            want.append(lines[i].strip())
            i += 1
        code = "\n".join(src)
        source = ">>> " + code + ("\n" + "\n".join(want) if want else "")
        try:
            tree = ast.parse(code, mode="eval")
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            try:
                ast.parse(code, mode="exec")
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                parsed.skip("doctest source does not parse", source)
                continue
            parsed.skip("doctest statement (not an expression)", source)
            continue
        if not want:
            # ">>> f(x) == y" with nothing after it: the comparison is the example.
            body = tree.body
            if (
                isinstance(body, ast.Compare)
                and len(body.ops) == 1
                and isinstance(body.ops[0], ast.Eq)
                and _is_literal(ast.Expression(body.comparators[0]))
            ):
                expected = ast.unparse(body.comparators[0])
                parsed.checks.append(
                    Check(
                        "call",
                        source,
                        expr=ast.unparse(body.left),
                        expected=expected,
                        compare=_value_compare(expected),
                        origin="doctest",
                    )
                )
            else:
                parsed.skip("doctest without expected output", source)
            continue
        if not isinstance(tree.body, ast.expr):
            continue
        parsed.checks.append(
            Check(
                "call",
                source,
                expr=code,
                expected="\n".join(want),
                compare="repr",
                origin="doctest",
            )
        )


def parse_asserts(text: str, entry: str | None, parsed: Parsed) -> None:
    """``assert ...`` lines (MBPP shows its tests this way); must mention the entry point."""
    for m in re.finditer(r"^[ \t]*(?:>>>\s*)?(assert\b.*)$", text, re.M):
        stmt = _balanced_prefix(text[m.start(1) :]).strip()
        try:
            tree = ast.parse(stmt)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            parsed.skip("assert does not parse", stmt)
            continue
        if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Assert):
            parsed.skip("not a single assert", stmt)
            continue
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        attrs = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        if entry and entry not in names | attrs:
            parsed.skip(f"assert does not call {entry}", stmt)
            continue
        parsed.checks.append(Check("assert", stmt, expr=stmt, origin="assert"))


_SECTION = re.compile(
    r"^[ \t]*[-=#*]*[ \t]*(sample[ \t]+input|sample[ \t]+output|example|input|output|"
    r"explanation|note|constraints?|notes)\b[^\n]*$",
    re.I | re.M,
)


def _blocks(text: str) -> list[tuple[str, str, str]]:
    """[(header word lowercased, header line, body), ...] split at section headers."""
    heads = list(_SECTION.finditer(text))
    out = []
    for k, h in enumerate(heads):
        end = heads[k + 1].start() if k + 1 < len(heads) else len(text)
        word = re.sub(r"\s+", " ", h.group(1).lower())
        line = h.group(0)
        after = line[line.lower().find(h.group(1).lower()) + len(h.group(1)) :]
        inline = re.sub(r"^[\s\d:#*-]*", "", after).rstrip(" -=*#")
        body = text[h.end() : end]
        out.append((word, line.strip(), (inline + "\n" + body) if inline else body))
    return out


def _clean_block(body: str) -> str:
    lines = body.strip("\n").splitlines()
    # Stop at a fenced-code marker or a blank line followed by prose.
    kept = []
    for line in lines:
        if line.strip().startswith("```"):
            if kept:
                break
            continue
        kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    # Common indentation off; keep trailing spaces out.
    indent = min((len(x) - len(x.lstrip()) for x in kept if x.strip()), default=0)
    return "\n".join(x[indent:].rstrip() for x in kept)


def _stdio_pairs(text: str, parsed: Parsed, *, sample_only: bool) -> None:
    blocks = _blocks(text)
    pending: str | None = None
    for word, head, body in blocks:
        is_in = word in ("sample input", "input") and (not sample_only or word == "sample input")
        is_out = word in ("sample output", "output") and (
            not sample_only or word == "sample output"
        )
        if is_in:
            pending = _undouble(_clean_block(body))
        elif is_out and pending is not None:
            # The explanation often follows the output after a blank line (AtCoder).
            out = _first_paragraph(_clean_block(body))
            if pending.strip() and out.strip():
                origin = "sample-io" if sample_only else "input-output"
                parsed.checks.append(_stdio_check(pending, out, origin))
            else:
                parsed.skip("empty sample input or output", head)
            pending = None
        elif word not in ("input", "sample input"):
            pending = None


def _undouble(block: str) -> str:
    """LiveCodeBench renders sample lines separated by blank lines: undo that when every
    other line is blank (real samples rarely alternate so)."""
    lines = block.split("\n")
    if (
        len(lines) >= 3
        and all(not x.strip() for x in lines[1::2])
        and all(x.strip() for x in lines[0::2])
    ):
        return "\n".join(lines[0::2])
    return block


def _first_paragraph(text: str) -> str:
    return re.split(r"\n[ \t]*\n", text.strip(), maxsplit=1)[0]


def _looks_like_format_section(body: str) -> bool:
    """APPS "-----Input-----" sections describe the format in prose, not an example."""
    words = re.findall(r"[A-Za-z]{3,}", body)
    return len(words) > 12


def parse_stdio(text: str, parsed: Parsed) -> None:
    """Sample Input N / Sample Output N sections; else Input/Output pairs in examples."""
    before = len(parsed.checks)
    # LiveCodeBench glues "Sample Input 1:" to the sentence before it.
    text = re.sub(r"(?<=\S)[ \t]*(Sample (?:Input|Output) \d+:)", r"\n\1", text)
    _stdio_pairs(text, parsed, sample_only=True)
    if len(parsed.checks) > before:
        return
    # Codeforces/APPS "Examples" sections: plain "Input" / "Output" headers, one value each.
    ex = re.search(r"^[ \t]*[-=#*]*[ \t]*examples?\b", text, re.I | re.M)
    if not ex:
        return  # plain Input / Output sections outside "Examples" describe the format
    tail = text[ex.start() :]
    probe = Parsed()
    _stdio_pairs(tail, probe, sample_only=False)
    for check in probe.checks:
        if _looks_like_format_section(check.stdin) or _looks_like_format_section(check.expected):
            parsed.skip("input/output section reads like a format description", check.source)
        else:
            parsed.checks.append(check)
    parsed.skipped.extend(probe.skipped)


_EX_INPUT = re.compile(r"^[ \t]*(?:[-*]\s*)?input\s*:?[ \t]*(.*)$", re.I)
_EX_OUTPUT = re.compile(r"^[ \t]*(?:[-*]\s*)?(?:output|return)\s*:?[ \t]*(.*)$", re.I)


def _args_from_input(text: str) -> str | None:
    """``a = 1, b = [2]`` / ``a: 1, b: [2]`` / ``1, [2]`` -> ``1, [2]`` (literals only)."""
    lines = [x.strip() for x in text.splitlines() if x.strip()]
    if len(lines) > 1 and all(re.match(r"[A-Za-z_]\w*\s*[:=]", x) for x in lines):
        text = ", ".join(x.rstrip(",") for x in lines)  # one "name : value" per line
    text = _one_line(text).strip().rstrip(".,;")
    if not text:
        return None
    # name = value / name : value pairs become positional values, in order.
    named = re.sub(r"(^|,)\s*[A-Za-z_]\w*\s*[:=](?!=)\s*", r"\1", text)
    for candidate in (text, named):
        lit = literal_expr(f"({candidate},)")
        if lit is not None:
            return lit[1:-2] if lit.endswith(",)") else None
    return None


def parse_example_blocks(text: str, entry: str | None, parsed: Parsed) -> None:
    """``Input: ...`` / ``Output: ...`` pairs with an entry point: calls."""
    if not entry:
        return
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _EX_INPUT.match(lines[i])
        if not m:
            i += 1
            continue
        inp = [m.group(1)]
        j = i + 1
        while j < len(lines) and not _EX_OUTPUT.match(lines[j]) and lines[j].strip():
            inp.append(lines[j])
            j += 1
        if j >= len(lines) or not _EX_OUTPUT.match(lines[j]):
            parsed.skip("input without output", lines[i])
            i = j
            continue
        out_m = _EX_OUTPUT.match(lines[j])
        out = [out_m.group(1)]
        k = j + 1
        while (
            k < len(lines)
            and lines[k].strip()
            and not re.match(r"^\s*(explanation|example|input|note)\b", lines[k], re.I)
        ):
            out.append(lines[k])
            k += 1
        source = "\n".join(lines[i:k])
        args = _args_from_input("\n".join(inp))
        expected = _longest_literal_prefix(_balanced_prefix("\n".join(out).strip()))
        if args is None or expected is None:
            parsed.skip("example input/output are not literals", source)
        else:
            parsed.checks.append(
                Check(
                    "call",
                    _one_line(source),
                    expr=f"{entry}({args})",
                    expected=expected,
                    compare=_value_compare(expected),
                    origin="example-block",
                )
            )
        i = k


def parse_examples(text: str, entry_point: str | None = None, *, stdin: bool = False) -> Parsed:
    """Checks parsed from a problem text; never raises (see module docstring).

    ``entry_point``: the function the answer defines (call checks); ``stdin``: the answer
    is a stdin/stdout program (stdio checks).
    """
    parsed = Parsed()
    if not isinstance(text, str) or not text.strip():
        parsed.skipped.append("no problem text")
        return parsed
    if len(text) > MAX_TEXT_CHARS:
        parsed.skipped.append(f"text cut at {MAX_TEXT_CHARS} of {len(text)} characters")
        text = text[:MAX_TEXT_CHARS]
    for step in (
        lambda: parse_doctests(text, parsed),
        lambda: parse_asserts(text, entry_point, parsed),
        lambda: parse_call_lines(text, entry_point or "", parsed),
        lambda: parse_example_blocks(text, entry_point, parsed),
        lambda: parse_for_phrases(text, entry_point or "", parsed),
        lambda: parse_stdio(text, parsed) if stdin else None,
    ):
        try:
            step()
        except (RecursionError, MemoryError, ValueError) as exc:  # pragma: no cover - defensive
            parsed.skipped.append(f"parser error {type(exc).__name__}: {exc}")
    if not parsed.checks and entry_point:
        _aliased_calls(text, entry_point, parsed)
    parsed.checks = _dedupe(parsed.checks)
    if len(parsed.checks) > MAX_CHECKS:
        parsed.skipped.append(f"{len(parsed.checks) - MAX_CHECKS} checks over {MAX_CHECKS}")
        parsed.checks = parsed.checks[:MAX_CHECKS]
    return parsed


def _aliased_calls(text: str, entry: str, parsed: Parsed) -> None:
    """Examples that call the function by another name (HumanEval/81 shows
    ``grade_equation(...)`` for ``numerical_letter_grade``): used only when exactly one
    such undefined name has example lines and nothing else was found."""
    defined = set(re.findall(r"\bdef\s+(\w+)", text))
    names = set()
    for m in re.finditer(r"^[ \t*-]*([A-Za-z_]\w*)\s*\(", text, re.M):
        if m.group(1) not in defined and m.group(1) != entry:
            names.add(m.group(1))
    found = {}
    for name in sorted(names):
        probe = Parsed()
        parse_call_lines(text, name, probe)
        if probe.checks:
            found[name] = probe.checks
    if len(found) != 1:
        return
    ((name, checks),) = found.items()
    for c in checks:
        parsed.checks.append(
            Check(
                c.kind,
                c.source,
                expr=entry + c.expr[len(name) :],
                expected=c.expected,
                compare=c.compare,
                origin="call-line-alias",
            )  # fmt: skip
        )


def _dedupe(checks: list[Check]) -> list[Check]:
    seen, out = set(), []
    for c in checks:
        key = (c.kind, c.expr, c.expected, c.stdin)
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


# ------------------------------------------------------------------ structured tests


def checks_from_sample_io(items, entry_point: str | None = None) -> Parsed:
    """MapCoder ``sample_io`` / LiveCodeBench public tests -> checks.

    Strings are statements (MBPP's ``assert f(x) == y``); ``{"input", "output"}`` objects
    are stdin/stdout pairs (the output may be a one-element list, as MapCoder stores it).
    """
    parsed = Parsed()
    if not isinstance(items, list):
        parsed.skipped.append(f"sample_io is a {type(items).__name__}, not a list")
        return parsed
    for i, item in enumerate(items[:MAX_CHECKS]):
        if isinstance(item, str):
            before = len(parsed.checks)
            parse_asserts(item, None, parsed)
            if len(parsed.checks) == before:
                parsed.skip(f"sample_io[{i}] is not an assert", item)
            else:
                c = parsed.checks[-1]
                parsed.checks[-1] = Check(
                    "assert", c.source, expr=c.expr, compare=c.compare, origin="sample_io"
                )
        elif isinstance(item, dict) and "input" in item and "output" in item:
            out = item["output"]
            if isinstance(out, list):
                out = "\n".join(str(o) for o in out)
            shown = str(item["input"])
            stdin = shown if shown.endswith("\n") else shown + "\n"
            parsed.checks.append(_stdio_check(shown, str(out), "sample_io", stdin))
        else:
            parsed.skip(f"sample_io[{i}] has no input/output", repr(item))
    return parsed


def _stdio_check(shown: str, expected: str, origin: str, stdin: str | None = None) -> Check:
    """A stdin -> stdout example; ``stdin`` defaults to the input as shown plus the newline
    a terminal would send."""
    return Check(
        "stdio",
        _one_line(f"{shown} -> {expected}")[:400],
        stdin=shown + "\n" if stdin is None else stdin,
        expected=expected,
        compare="stdout",
        origin=origin,
    )


_APPS_SAMPLES = "\n\nSample Input/Output:\n\n"


def _apps_sample_block(question: str) -> tuple[str, Parsed] | None:
    """The ``Sample Input/Output:`` block codyn.datasets.apps appends (MapCoder's sample_io)."""
    cut = question.rfind(_APPS_SAMPLES)
    if cut < 0:
        return None
    block = question[cut + len(_APPS_SAMPLES) :]
    parsed = Parsed()
    for part in re.split(r"\n\n(?=Input:\n)", "\n\n" + block):
        m = re.match(r"\s*Input:\n(.*)\nOutput:\n(.*)\Z", part, re.S)
        if not m:
            if part.strip():
                parsed.skip("sample block without Input:/Output:", part)
            continue
        parsed.checks.append(_stdio_check(m.group(1), m.group(2), "sample_io"))
    return question[:cut], parsed


# ------------------------------------------------------------------ tasks


def problem_text(task: dict) -> str:
    """The problem as the dataset states it, without our prompt template around it."""
    tests = task.get("tests") or {}
    if tests.get("prefix"):
        return str(tests["prefix"])
    prompt = str(task.get("prompt") or "")
    for marker in ("\nQuestion:\n\n",):  # A.8.3 APPS template
        if marker in prompt:
            return prompt.split(marker, 1)[1]
    return prompt


def entry_point(task: dict) -> str | None:
    tests = task.get("tests") or {}
    return tests.get("entry_point") or tests.get("fn_name") or None


def parse_task(task: dict) -> Parsed:
    """The checks of one task with the reasons for what was skipped (see module docstring)."""
    try:
        return _parse_task(task)
    except Exception as exc:  # noqa: BLE001 - a malformed task must not stop a whole file
        p = Parsed()
        p.skipped.append(f"task not parsed ({type(exc).__name__}: {exc})")
        return p


def _parse_task(task: dict) -> Parsed:
    meta = task.get("meta") or {}
    entry = entry_point(task)
    skipped: list[str] = []
    for key in ("sample_io", "public_tests"):
        if meta.get(key):
            parsed = checks_from_sample_io(meta[key], entry)
            if parsed.checks:
                return parsed
            skipped += [f"{key}: {s}" for s in parsed.skipped]
    text = problem_text(task)
    tests = task.get("tests") or {}
    stdin = tests.get("type") == "stdio"
    block = _apps_sample_block(text)
    if block is not None:
        text, parsed = block
        if parsed.checks:
            return parsed
        skipped += parsed.skipped
    parsed = parse_examples(text, None if stdin else entry, stdin=stdin)
    parsed.skipped = skipped + parsed.skipped
    return parsed


def visible_examples(task: dict) -> list[Check]:
    """The executable examples the task's prompt shows (never its hidden tests)."""
    if (task.get("kind") or "generate") not in ("generate", "repair"):
        return []
    return parse_task(task).checks


# ------------------------------------------------------------------ coverage


def coverage(tasks: list[dict], *, sandbox=None, check_reference: bool = True) -> dict:
    """Per dataset: tasks, share with >= 1 example, examples per task, origins, skip reasons,
    and (with a sandbox) examples the reference solution fails -- flagged, not to be used.

    Tasks without a reference are counted under ``no_reference``.
    """
    from codyn.scoring.visible import run_checks  # the sandbox side

    per: dict[str, dict] = {}
    for task in tasks:
        ds = str(task.get("dataset") or "?")
        rec = per.setdefault(
            ds,
            {
                "tasks": 0,
                "with_examples": 0,
                "examples": 0,
                "origins": Counter(),
                "skip_reasons": Counter(),
                "reference_checked_tasks": 0,
                "reference_fails": 0,
                "reference_fails_examples": [],
                "no_reference": 0,
                "reference_errors": 0,
                "tasks_with_usable_examples": 0,
            },
        )
        rec["tasks"] += 1
        parsed = (
            parse_task(task) if task.get("kind", "generate") in ("generate", "repair") else Parsed()
        )
        checks = parsed.checks
        for reason in parsed.skipped:
            rec["skip_reasons"][reason.split(":", 1)[0]] += 1
        rec["examples"] += len(checks)
        rec["origins"].update(c.origin for c in checks)
        if checks:
            rec["with_examples"] += 1
        usable = len(checks)
        if checks and check_reference and sandbox is not None:
            if task.get("reference"):
                result = run_checks(task["reference"], checks, task.get("tests") or {}, sandbox)
                if result.status == "error":  # the reference did not run: nothing to learn
                    rec["reference_errors"] += 1
                    rec["tasks_with_usable_examples"] += 1
                    continue
                rec["reference_checked_tasks"] += 1
                failed = [i for i, ok in enumerate(result.per_check) if not ok]
                rec["reference_fails"] += len(failed)
                usable -= len(failed)
                for i in failed[:3]:
                    rec["reference_fails_examples"].append(
                        {
                            "task_id": task.get("id"),
                            "check": checks[i].source[:200],
                            "detail": result.detail[:200],
                        }  # fmt: skip
                    )
            else:
                rec["no_reference"] += 1
        if usable > 0:
            rec["tasks_with_usable_examples"] += 1
    out = {}
    for ds, rec in per.items():
        n = rec["tasks"]
        out[ds] = {
            **rec,
            "share_with_examples": rec["with_examples"] / n if n else float("nan"),
            "share_with_usable_examples": rec["tasks_with_usable_examples"] / n
            if n
            else float("nan"),
            "examples_per_task": rec["examples"] / n if n else float("nan"),
            "origins": dict(rec["origins"].most_common()),
            "skip_reasons": dict(rec["skip_reasons"].most_common(10)),
        }
    return out


def main(argv: list[str]) -> int:
    """``python -m codyn.examples TASKS.jsonl [...] [--no-reference]``: coverage as JSON."""
    from codyn.io import read_jsonl
    from codyn.scoring.sandbox import Sandbox

    paths = [a for a in argv if not a.startswith("--")]
    tasks = [rec for p in paths for rec in read_jsonl(p)]
    if "--no-reference" in argv:
        print(json.dumps(coverage(tasks, check_reference=False), indent=1))
        return 0
    with Sandbox(workers=2) as sandbox:
        print(json.dumps(coverage(tasks, sandbox=sandbox), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
