"""Prompt templates of the paper's appendix A.8, word for word.

The paper prints each template as a numbered code listing wrapped at the page width;
here the line numbers are dropped, wrapped lines are joined with one space (the APPS
listing wraps before ", write", which joins without a space) and each ``# Code`` /
``# Question`` / ``# Assertion Error`` placeholder becomes a ``str.format`` field.

HumanEval and BigCodeBench have no template in the paper (BigCodeBench is only used in
A.4 as an unseen task). :data:`CODEGEN_TEMPLATE` is OURS, written in the style of the
A.8 templates; every task built with it says so in ``meta["template"]``.

The prompt header: a prompt may open with one line of metadata, ``key: value | key:
value`` (:func:`format_header` writes it, e.g. the importers' ``prompt_header`` option;
:func:`parse_header` reads it, e.g. the routers' header features,
:mod:`codyn.routers.header`). A line that names a key twice, or whose value runs past 64
characters, is not a header (no keep-first or keep-last guess; an ordinary first line
such as "Task: write a function that ..." must not pass for metadata).
"""

from __future__ import annotations

import re

# A.8.1 SVEN
SVEN_TEMPLATE = (
    "Tell me if the following python code has vulnerability or not. Use only Yes or No.\n\n{code}"
)

# A.8.2 RunBugRun
RUNBUGRUN_TEMPLATE = (
    "Provide a fix for the buggy function.\n"
    "\n"
    "Buggy Function:\n"
    "\n"
    "{code}\n"
    "\n"
    "Assertion Error:\n"
    "\n"
    "{error}"
)

# A.8.3 APPS
APPS_TEMPLATE = (
    "Given the below programming question and example inputs/outputs, write Python code "
    "that solves it. Your program should be runnable inline and accept arguments via "
    "standard input and print back the result to standard output.\n"
    "\n"
    "Question:\n"
    "\n"
    "{question}"
)

# A.8.4 Code Translation
TRANSLATION_TEMPLATE = (
    "Task: Translate the following code from Java to C#.\n"
    "\n"
    "{code}\n"
    "\n"
    "Translate this code to C#, maintaining the same functionality and following C#'s "
    "best practices."
)

# A.8.4 Code Refinement
REFINEMENT_TEMPLATE = (
    "Task: Remove the bugs in the following code.\n"
    "\n"
    "Original Code (All the function and variable names are normalized):\n"
    "\n"
    "{code}\n"
    "\n"
    "Provide a refined bug-free version."
)

# A.8.5 System Prompt for Routing (w Autoregressive Models)
ROUTING_SYSTEM_PROMPT = (
    "Given a task and code snippet, return the model ranking based on the expected "
    "effectiveness to execute the prompt.\n"
    "\n"
    "There are five models and each model represented by a number from 0 to 4. The "
    "numbers must be distinct and sorted in any order. Example valid outputs include: "
    '"0,1,2,3,4", "4,0,1,3,2", or "2,3,1,0,4". Do not include any extra text, '
    "explanation, or punctuation beyond the numbers and commas. The output must always "
    "contain exactly five numbers."
)

# OURS (not in the paper): HumanEval / BigCodeBench code generation, in the A.8 style.
CODEGEN_TEMPLATE = (
    "Task: Complete the following Python function.\n"
    "\n"
    "{code}\n"
    "\n"
    "Provide the complete function, including the imports it needs."
)

# Which template each task kind uses; "generate" is APPS for APPS and ours otherwise.
TEMPLATE_NAMES = {
    "sven": "A.8.1 SVEN",
    "runbugrun": "A.8.2 RunBugRun",
    "apps": "A.8.3 APPS",
    "translation": "A.8.4 Code Translation",
    "refinement": "A.8.4 Code Refinement",
    "codegen": "codyn code-generation template (ours; the paper gives none)",
}


def sven_prompt(code: str) -> str:
    return SVEN_TEMPLATE.format(code=code)


def runbugrun_prompt(code: str, error: str) -> str:
    return RUNBUGRUN_TEMPLATE.format(code=code, error=error)


def apps_prompt(question: str) -> str:
    return APPS_TEMPLATE.format(question=question)


def translation_prompt(code: str) -> str:
    return TRANSLATION_TEMPLATE.format(code=code)


def refinement_prompt(code: str) -> str:
    return REFINEMENT_TEMPLATE.format(code=code)


def codegen_prompt(code: str) -> str:
    return CODEGEN_TEMPLATE.format(code=code)


# --- the prompt header (module docstring) ----------------------------------------------------

_KEY = r"[A-Za-z_][A-Za-z0-9_.-]{0,39}"
_PAIR = re.compile(rf"^\s*({_KEY})\s*:\s*(.{{0,64}}?)\s*$")


def format_header(pairs: dict[str, str]) -> str:
    """The header line for ``pairs`` (what :func:`parse_header` reads back)."""
    return " | ".join(f"{key}: {value}" for key, value in pairs.items())


def parse_header(prompt: str) -> dict[str, str]:
    """The ``key: value | ...`` pairs of the prompt's first line ({} if it is not one)."""
    first = prompt.split("\n", 1)[0]
    pairs: dict[str, str] = {}
    for part in first.split("|"):
        match = _PAIR.match(part)
        if not match:
            return {}
        key = match.group(1).lower()
        if key in pairs:
            return {}  # a key given twice: which value would count? Not a header.
        pairs[key] = match.group(2)
    return pairs
