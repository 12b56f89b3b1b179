"""CodeBLEU per (task, answer) pair for code translation (C#) and refinement (Java).

Each pair is scored on its own (``calc_codebleu([reference], [answer])``), not at
corpus level: the router needs one number per instance (paper section 3.3).
Weights are the package defaults (0.25 each for n-gram, weighted n-gram, syntax,
data-flow). Pins (DESIGN.md section 6): codebleu 0.7.0 with tree-sitter 0.22.3 and
grammars java 0.21.0 / c-sharp 0.21.3; newer grammars break codebleu.

Kept as upstream computes it: when the data-flow match is 0 (including a reference
without data flow) codebleu counts that component as 1, so an unrelated but
non-empty answer scores about 0.25. An empty answer never reaches CodeBLEU: it is
``no_code`` with score 0.
"""

from __future__ import annotations

import logging

from codebleu import calc_codebleu

CODEBLEU_LANG = {"java": "java", "csharp": "c_sharp", "python": "python"}


class _DegenerateDataflowFilter(logging.Filter):
    """codebleu logs this on the root logger for every pair whose reference has no data
    flow; per pair it is noise (the module docstring records the behaviour once)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "no reference data-flows" not in str(record.msg)


logging.getLogger().addFilter(_DegenerateDataflowFilter())


def pair_codebleu(reference: str, answer: str, language: str) -> dict[str, float]:
    """CodeBLEU and its four components for one pair; ``language`` in CODEBLEU_LANG."""
    if language not in CODEBLEU_LANG:
        raise ValueError(
            f"no CodeBLEU grammar for language {language!r} (allowed: {', '.join(CODEBLEU_LANG)})"
        )
    return calc_codebleu([reference], [answer], lang=CODEBLEU_LANG[language])
