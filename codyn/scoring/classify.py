"""Vulnerability classification (SVEN): Yes/No from free text, accuracy, bias penalty.

Label extraction (:func:`parse_label`), first rule that applies:
1. The answer starts (after markdown and punctuation) with yes/true/vulnerable
   -> True, or with no/false/not vulnerable/safe/secure/benign -> False.
2. An explicit "answer: yes/no" (also "final answer", "verdict", "label").
3. Phrases "is (not) vulnerable", "contains (no) vulnerabilit(y|ies)",
   "does not contain ... vulnerabilit": the first one in the text decides.
4. The first standalone yes/no/true/false word.
Otherwise None: the answer counts as wrong and as *not* predicting "vulnerable".

Bias penalty (paper appendix A.7), per (dataset, model) scores file:
``P = |N_tp - N_pp| / N_t`` with N_tp the number of truly vulnerable examples,
N_pp the number predicted vulnerable and N_t all examples. A model that answers
"vulnerable" to everything on a balanced set is right half the time but gets
P = 0.5. Config ``scoring.sven_penalty``:

- ``subtract`` (default): score = correct - P. A penalty lowers a score.
- ``add``: score = correct + P, the paper's literal wording ("This penalty term is
  added on each effectiveness score"); Table 1's SVEN oracle mean of 1.06 > 1
  suggests the authors did add it. Kept to reproduce their numbers.
- ``none``: score = correct (plain accuracy per instance).
"""

from __future__ import annotations

import re

PENALTY_MODES = ("subtract", "add", "none")

_START_TRUE = re.compile(r"^(?:yes|true|vulnerable)\b")
_START_FALSE = re.compile(r"^(?:no|false|not\s+vulnerable|safe|secure|benign|non-vulnerable)\b")
_EXPLICIT = re.compile(
    r"\b(?:final\s+answer|answer|verdict|label)\s*(?:is)?\s*[:=-]?\s*\W*(yes|no|true|false)\b"
)
_PHRASE = re.compile(
    r"\b(?:(is\s+not|isn't|is)\s+vulnerable"
    r"|(does\s+not\s+contain|doesn't\s+contain|contains\s+no|has\s+no|contains|has)\s+(?:an?\s+|any\s+)?"
    r"(?:[\w-]+\s+){0,3}vulnerabilit)"
)
_WORD = re.compile(r"\b(yes|no|true|false)\b")
_NEGATIVE_PHRASES = (
    "is not",
    "isn't",
    "does not contain",
    "doesn't contain",
    "contains no",
    "has no",
)


def parse_label(text: str | None) -> bool | None:
    """True (vulnerable), False (not vulnerable) or None (no decision) from an answer."""
    if not text:
        return None
    lowered = " ".join(text.lower().split())
    start = re.sub(r"^[\W_]+", "", lowered)
    if _START_FALSE.match(start):
        return False
    if _START_TRUE.match(start):
        return True
    for pattern in (_EXPLICIT, _WORD):
        if pattern is _WORD:
            phrase = _PHRASE.search(lowered)
            if phrase:
                negation = phrase.group(1) or phrase.group(2)
                return not any(negation.startswith(n) for n in _NEGATIVE_PHRASES)
        match = pattern.search(lowered)
        if match:
            return match.group(1) in ("yes", "true")
    return None


def bias_penalty(labels: list[bool], predictions: list[bool | None]) -> float:
    """A.7 penalty P = |N_tp - N_pp| / N_t (None predictions count as not vulnerable)."""
    if len(labels) != len(predictions):
        raise ValueError("labels and predictions differ in length")
    if not labels:
        return 0.0
    n_true = sum(bool(v) for v in labels)
    n_pred = sum(p is True for p in predictions)
    return abs(n_true - n_pred) / len(labels)


def apply_penalty(correct: float, penalty: float, mode: str) -> float:
    if mode == "subtract":
        return correct - penalty
    if mode == "add":
        return correct + penalty
    if mode == "none":
        return correct
    raise ValueError(f"unknown sven_penalty {mode!r} (allowed: {', '.join(PENALTY_MODES)})")
