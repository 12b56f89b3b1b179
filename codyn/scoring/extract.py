"""Pull the code out of a chat answer.

Rules, in order (tested on 4,697 real RouterBench MBPP answers, tests/test_extract.py):

1. Fenced blocks (```` ```lang ```` ... ```` ``` ````, also ``~~~``). Candidates are the
   blocks tagged with the target language (aliases below) or untagged; blocks tagged
   with another language (bash, text, java for a Python task, ...) are ignored.
   An unclosed final fence (answer cut at max tokens) runs to the end of the text.
   A block indented as a whole (a fence inside a Markdown list item) is dedented.
   - With an entry point: the LAST candidate that defines it (``def``/``class``);
     earlier candidates that hold only imports are kept in front of it. Last, not
     first: answers that revise ("here is the corrected version") or that solve worked
     examples first (analogical prompting) end with the code they stand by; MapCoder's
     own parser keeps the last block too. Measured on MapCoder's published answers
     (results/<experiment>/tables/agreement.md).
   - Otherwise, or when none defines it: the candidates joined in order (a helper
     block plus a main block is common; example-usage blocks are harmless). For
     Python, blocks that do not parse on their own (doctest sessions, printed
     output, a usage example cut off at max tokens) are left out, unless none parses.
2. No fence, Python: the whole text if it parses. Otherwise the span from the first
   line that starts like code (``def``, ``class``, ``import``, ``from``, ``@``,
   ``if __name__``) to the last line that still parses; prose before and after is
   dropped. If nothing parses, that span as is (it will score ``syntax_error``).
3. No fence, Java/C#: the whole text, stripped.
4. Nothing that looks like code: ``None`` (status ``no_code``).
"""

from __future__ import annotations

import ast
import re
import textwrap
import warnings

LANGUAGE_TAGS = {
    "python": {"python", "py", "python3", "py3"},
    "java": {"java"},
    "csharp": {"csharp", "cs", "c#", "c-sharp"},
}

_FENCE = re.compile(r"^[ \t]*(```+|~~~+)[ \t]*([^\s`]*)[^\n]*$", re.M)
_CODE_START = re.compile(
    r"^(?:async\s+def|def|class|import|from\s+\S+\s+import|@|if\s+__name__)\b", re.M
)


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """[(tag lowercased, body), ...] for every fenced block, in order.

    A fence line carrying a language tag (```` ```python ````) inside an open block closes
    it and opens the next: chat answers leave blocks unclosed (an example cut short, a
    fence inside a Markdown list) and code never holds such a line."""
    blocks = []
    pos = 0
    while True:
        opening = _FENCE.search(text, pos)
        if not opening:
            break
        fence, tag = opening.group(1), opening.group(2).lower()
        body_start = opening.end() + 1
        closing = re.compile(
            rf"^[ \t]*{re.escape(fence[0]) * len(fence)}[ \t]*$|^[ \t]*(?:```+|~~~+)[ \t]*[A-Za-z]\S*[^\n]*$",
            re.M,
        ).search(text, body_start)
        if closing:
            blocks.append((tag, text[body_start : closing.start()]))
            tagged = closing.group(0).strip().lstrip("`~")
            # A tagged fence opens the next block: resume the search at it.
            pos = closing.start() if tagged else closing.end()
        else:
            blocks.append((tag, text[body_start:]))
            break
    return blocks


def _imports_only(code: str) -> bool:
    return all(
        not line.strip() or re.match(r"\s*(?:import|from)\s", line) for line in code.splitlines()
    )


def _parses(code: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escapes in answers are not our warnings
            ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _defines(code: str, name: str) -> bool:
    return (
        re.search(rf"^\s*(?:async\s+)?(?:def|class)\s+{re.escape(name)}\b", code, re.M) is not None
    )


def _unfenced_python(text: str) -> str | None:
    if _parses(text):
        return text.strip("\n") or None
    start = _CODE_START.search(text)
    if not start:
        return None
    lines = text[start.start() :].splitlines()
    for end in range(len(lines), 0, -1):
        candidate = "\n".join(lines[:end])
        if _parses(candidate):
            return candidate
    return "\n".join(lines)


def extract_code(
    text: str | None, language: str = "python", entry_point: str | None = None
) -> str | None:
    """The code in ``text`` by the rules in the module docstring; None when there is none."""
    if not text or not text.strip():
        return None
    text = text.replace("\r\n", "\n").replace("\x00", "")
    tags = LANGUAGE_TAGS.get(language, {language})
    blocks = fenced_blocks(text)
    if blocks:
        candidates = [
            textwrap.dedent(body).strip("\n")
            for tag, body in blocks
            if (not tag or tag in tags) and body.strip()
        ]
        if not candidates:
            return None
        if entry_point:
            for index in range(len(candidates) - 1, -1, -1):
                code = candidates[index]
                if _defines(code, entry_point):
                    if language == "python" and not _parses(code):
                        # An unclosed block that ran on into prose and the real answer
                        # (MapCoder MBPP/400): keep the code span that parses.
                        span = _unfenced_python(code)
                        if span and _parses(span) and _defines(span, entry_point):
                            code = span
                    imports = [c for c in candidates[:index] if _imports_only(c)]
                    return "\n\n".join([*imports, code])
        if language == "python":
            # Doctest sessions (">>> f(1)"), printed outputs and cut-off usage examples
            # do not parse; one of them must not turn a good solution into a syntax error.
            parsing = [c for c in candidates if _parses(c)]
            candidates = parsing or candidates
        return "\n\n".join(candidates)
    if language == "python":
        return _unfenced_python(text)
    return text.strip() or None
