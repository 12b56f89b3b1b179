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

Determinism: upstream's data-flow extraction (``codebleu.parser.DFG`` and
``dataflow_match.get_data_flow``) merges the parent variable names of a data-flow
edge with ``list(set(names))``, so their order follows Python's per-process string
hash seed. ``normalize_dataflow`` then numbers variables in that order and compares
the parent lists as ordered lists, so the same pair scored ~0.92 in one process and
1.0 in the next (measured on CodeXGLUE refinement/translation rows). The parent
names are a set by construction (upstream already dedups them and sorts their
positions separately, so names and positions are not paired), so we sort them
after extraction: one canonical order, independent of ``PYTHONHASHSEED``. We wrap
``get_data_flow`` in the codebleu module once at import (``_sorted_data_flow``);
everything else in the metric is unchanged.
"""

from __future__ import annotations

import logging

from codebleu import calc_codebleu, dataflow_match

CODEBLEU_LANG = {"java": "java", "csharp": "c_sharp", "python": "python"}


class _DegenerateDataflowFilter(logging.Filter):
    """codebleu logs this on the root logger for every pair whose reference has no data
    flow; per pair it is noise (the module docstring records the behaviour once)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "no reference data-flows" not in str(record.msg)


logging.getLogger().addFilter(_DegenerateDataflowFilter())


_upstream_get_data_flow = getattr(
    dataflow_match.get_data_flow, "__wrapped__", dataflow_match.get_data_flow
)


def _sorted_data_flow(code, parser):
    """Upstream's data-flow edges with each edge's parent names (and positions) in
    sorted order instead of hash-seed set order (see the module docstring)."""
    return [
        (d[0], d[1], d[2], sorted(d[3]), sorted(d[4]))
        for d in _upstream_get_data_flow(code, parser)
    ]


_sorted_data_flow.__wrapped__ = _upstream_get_data_flow
dataflow_match.get_data_flow = _sorted_data_flow


def pair_codebleu(reference: str, answer: str, language: str) -> dict[str, float]:
    """CodeBLEU and its four components for one pair; ``language`` in CODEBLEU_LANG."""
    if language not in CODEBLEU_LANG:
        raise ValueError(
            f"no CodeBLEU grammar for language {language!r} (allowed: {', '.join(CODEBLEU_LANG)})"
        )
    return calc_codebleu([reference], [answer], lang=CODEBLEU_LANG[language])
