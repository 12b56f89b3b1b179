from __future__ import annotations

import pytest

from codyn.scoring.codebleu_metric import pair_codebleu

JAVA = "public int add(int a, int b) { return a + b; }"
CS = "public int Add(int a, int b) { return a + b; }"


def test_identical_pair_scores_one():
    assert pair_codebleu(JAVA, JAVA, "java")["codebleu"] == pytest.approx(1.0)
    assert pair_codebleu(CS, CS, "csharp")["codebleu"] == pytest.approx(1.0)


def test_per_pair_and_ordered():
    close = pair_codebleu(JAVA, "public int add(int x, int b) { return x + b; }", "java")[
        "codebleu"
    ]
    far = pair_codebleu(JAVA, "void run() { System.exit(0); }", "java")["codebleu"]
    assert 0 < far < close < 1


def test_unknown_language():
    with pytest.raises(ValueError):
        pair_codebleu("a", "b", "rust")


def test_real_translation_pairs(shared_datasets):
    folder = shared_datasets / "codexglue_code2code_trans_java_cs"
    cs = (folder / "test.java-cs.txt.cs").read_text(encoding="utf-8").splitlines()[:20]
    java = (folder / "test.java-cs.txt.java").read_text(encoding="utf-8").splitlines()[:20]
    self_scores = [pair_codebleu(c, c, "csharp")["codebleu"] for c in cs]
    cross = [pair_codebleu(c, j, "csharp")["codebleu"] for c, j in zip(cs, java, strict=True)]
    assert all(s == pytest.approx(1.0) for s in self_scores)
    assert sum(cross) / len(cross) < 0.9
