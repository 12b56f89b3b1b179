"""Tasks the project makes itself (the offline default): counts, labels, real bugs, seeds."""

from __future__ import annotations

import json

import pytest

from codyn import prompts
from codyn.datasets import build_tasks, fetch_dataset
from codyn.datasets.made import apply_site, mutation_sites, run_check
from codyn.errors import ConfigError

SEED = 20241201
MADE = ["made-repair", "made-sven", "made-translation", "made-refinement"]


def make(tmp_path, name, n=40, seed=SEED):
    cfg = {"adapter": name, "source": "made", "n": n}
    raw = tmp_path / f"{name}-{n}-{seed}"
    manifest = fetch_dataset(name, cfg, raw, None)
    return manifest, build_tasks(name, cfg, raw, seed).tasks


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("made")
    return {name: make(tmp, name) for name in MADE}


@pytest.mark.parametrize("name", MADE)
def test_counts_ids_and_made_marker(made, name):
    _, tasks = made[name]
    assert len(tasks) == 40 >= 30
    assert len({t["id"] for t in tasks}) == len(tasks)
    assert len({t["prompt"] for t in tasks}) == len(tasks)
    for t in tasks:
        assert t["meta"]["made"] is True and t["meta"]["how"]
        assert t["dataset"] == name


def test_manifests_say_what_they_come_from(made):
    repair_manifest, _ = made["made-repair"]
    assert [f["path"] for f in repair_manifest["files"]] == ["HumanEval.jsonl.gz"]
    assert repair_manifest["files"][0]["expected_sha256"] == repair_manifest["files"][0]["sha256"]
    sven_manifest, _ = made["made-sven"]
    assert sven_manifest["files"] == [] and sven_manifest["source"] == "made"
    assert "made by codyn" in sven_manifest["notes"][0]
    assert sven_manifest["generator"]["module"] == "codyn.datasets.made"


def test_made_repair_bugs_fail_and_references_pass(made):
    _, tasks = made["made-repair"]
    for t in tasks:
        tests = t["tests"]
        assert t["kind"] == "repair" and tests["type"] == "check"
        buggy = t["meta"]["buggy_code"]
        assert buggy != t["reference"]
        assert t["prompt"] == prompts.runbugrun_prompt(buggy.rstrip("\n"), t["meta"]["error"])
        assert run_check(t["reference"], tests["test"], tests["entry_point"])[0] == "pass"
        status, error = run_check(buggy, tests["test"], tests["entry_point"])
        assert status == "fail" and error == t["meta"]["error"]
        assert "Traceback" in error and "file.py" in error and "/tmp" not in error


def test_mutation_sites_stay_in_the_body():
    source = 'def f(x):\n    """>>> f(1) < 2"""\n    return x + 1 < 3\n'
    sites = mutation_sites(source, first_line=3)
    hows = sorted(s[3] for s in sites)
    assert hows == [
        "flipped comparison",
        "off-by-one constant",
        "off-by-one constant",
        "wrong arithmetic operator",
    ]
    mutants = {apply_site(source, s) for s in sites}
    assert 'def f(x):\n    """>>> f(1) < 2"""\n    return x + 1 <= 3\n' in mutants
    assert 'def f(x):\n    """>>> f(1) < 2"""\n    return (x - 1) < 3\n' in mutants


def test_made_sven_balanced_and_valid_python(made):
    _, tasks = made["made-sven"]
    assert sum(t["label"] for t in tasks) == 20
    cwes = {t["meta"]["cwe"] for t in tasks}
    assert cwes == {"cwe-022", "cwe-078", "cwe-079", "cwe-089"}
    head = prompts.SVEN_TEMPLATE.split("{")[0]
    for t in tasks:
        assert t["kind"] == "classify" and t["prompt"].startswith(head)
        compile(t["prompt"][len(head) :], t["id"], "exec")
        assert t["reference"] == ("Yes" if t["label"] else "No")
    pairs = {}
    for t in tasks:
        pairs.setdefault(t["meta"]["pair"], []).append(t["label"])
    assert all(sorted(v) == [False, True] for v in pairs.values())


def test_made_sven_vulnerable_and_safe_shapes(made):
    _, tasks = made["made-sven"]
    code = {t["id"]: t["prompt"] for t in tasks}
    for t in tasks:
        other = t["id"].rsplit("/", 1)[0] + ("/fixed" if t["label"] else "/vul")
        if t["meta"]["cwe"] == "cwe-079":
            assert ("html.escape" in code[t["id"]]) is (not t["label"])
        if t["meta"]["cwe"] == "cwe-089":
            assert ('%s", (' in code[t["id"]] or '?"\n' in code[t["id"]]) is (not t["label"])
        assert code[t["id"]] != code[other]


def test_made_translation_pairs(made):
    _, tasks = made["made-translation"]
    algorithms = {t["meta"]["algorithm"] for t in tasks}
    assert len(algorithms) >= 15
    for t in tasks:
        java, csharp = t["meta"]["source"], t["reference"]
        assert t["prompt"] == prompts.translation_prompt(java)
        assert t["language"] == "csharp" and t["kind"] == "translate"
        for code in (java, csharp):
            assert code.count("{") == code.count("}") and code.count("(") == code.count(")")
        assert "$" not in java + csharp


def test_made_refinement_style(made):
    _, tasks = made["made-refinement"]
    for t in tasks:
        buggy, fixed = t["meta"]["source"], t["reference"]
        assert buggy != fixed and "METHOD_1" in buggy and "VAR_1" in fixed
        assert t["prompt"] == prompts.refinement_prompt(buggy)
        assert t["language"] == "java" and t["kind"] == "refine"
        assert "  " not in buggy and "$" not in buggy + fixed


@pytest.mark.parametrize("name", ["made-sven", "made-translation", "made-refinement"])
def test_deterministic_for_a_seed(tmp_path, made, name):
    _, again = make(tmp_path, name)
    assert json.dumps(again) == json.dumps(made[name][1])
    _, other = make(tmp_path, name, seed=SEED + 7)
    assert json.dumps(other) != json.dumps(again)


def test_made_repair_deterministic_small(tmp_path):
    _, a = make(tmp_path / "a", "made-repair", n=3)
    _, b = make(tmp_path / "b", "made-repair", n=3)
    assert a == b


def test_n_is_honoured_and_too_many_is_an_error(tmp_path):
    _, tasks = make(tmp_path, "made-sven", n=31)
    assert len(tasks) == 31 and abs(sum(t["label"] for t in tasks) * 2 - 31) <= 1
    with pytest.raises(ConfigError, match="made-refinement.n"):
        make(tmp_path, "made-refinement", n=5000)
