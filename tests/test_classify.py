from __future__ import annotations

import pytest

from codyn.scoring.classify import apply_penalty, bias_penalty, parse_label


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Yes", True),
        ("No.", False),
        ("**Yes**, the code is vulnerable", True),
        ("The code is not vulnerable.", False),
        ("After analysis, the answer is: No", False),
        ("This function contains a buffer overflow vulnerability.", True),
        ("The code does not contain any vulnerabilities.", False),
        ("false", False),
        ("hmm, hard to say", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_label(text, label):
    assert parse_label(text) is label


def test_bias_penalty_all_positive_on_balanced_set():
    labels = [True, False, True, False]
    assert bias_penalty(labels, [True] * 4) == 0.5
    assert bias_penalty(labels, [False] * 4) == 0.5
    assert bias_penalty(labels, labels) == 0.0
    assert bias_penalty(labels, [None, None, True, True]) == 0.0  # None counts as "not vulnerable"
    with pytest.raises(ValueError):
        bias_penalty(labels, [True])


def test_penalty_modes():
    assert apply_penalty(1.0, 0.25, "subtract") == 0.75
    assert apply_penalty(1.0, 0.25, "add") == 1.25
    assert apply_penalty(1.0, 0.25, "none") == 1.0
    with pytest.raises(ValueError):
        apply_penalty(1.0, 0.25, "multiply")
