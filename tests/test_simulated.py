"""The simulated portfolio: deterministic, calibrated, plausible, and labelled."""

from __future__ import annotations

import json
import re
import statistics

import pytest

from codyn.backends import make_backend
from codyn.backends.simulated import (
    SimulatedBackend,
    difficulty,
    edit_tokens,
    inject_bug,
    observable_difficulty,
    rng_for,
    sigmoid,
)
from codyn.config import load_config
from codyn.generate import generate

GEN = {"max_tokens": 1024, "simulation_k": 6.0, "concurrency": 2, "max_error_rate": 0.0}
REF = "def f(xs):\n    total = 0\n    for x in xs:\n        if x > 2:\n            total += x\n    return total\n"
JAVA = "public int sum(int[] a) { int s = 0; for (int i = 0; i < a.length; i++) { s += a[i]; } return s; }"


def task(i, kind="generate", prompt=None, reference=REF, tests=None, label=None, language="python"):
    return {
        "id": f"t{i}",
        "dataset": "demo",
        "kind": kind,
        "language": language,
        "prompt": prompt or f"Write a function number {i}.",
        "reference": reference,
        "tests": tests,
        "label": label,
        "meta": {},
    }


def sim(skill=0.5, name="m", seed=1, size_b=8):
    cfg = {
        "backend": "simulated",
        "cost": 1,
        "size_b": size_b,
        "price_in": 0.2,
        "price_out": 0.2,
        "skill": {k: skill for k in ("generate", "repair", "classify", "translate", "refine")},
    }
    return make_backend(name, cfg, GEN, seed=seed)


def reply(backend, t):
    return backend.complete([{"role": "user", "content": t["prompt"]}], backend.params(), t)


def test_deterministic_and_seeded():
    tasks = [task(i) for i in range(40)]
    a = [reply(sim(seed=1), t).text for t in tasks]
    assert a == [reply(sim(seed=1), t).text for t in tasks]
    assert a != [reply(sim(seed=2), t).text for t in tasks]


def test_without_task_answers_marked_and_deterministic():
    b = sim(name="sim-8b")
    msgs = [{"role": "user", "content": "What is 2+2?"}]
    first = b.complete(msgs, {})
    assert first.text.startswith("[simulated answer by sim-8b]")
    assert first.text == b.complete(msgs, {}).text
    assert first.text != b.complete([{"role": "user", "content": "other"}], {}).text
    assert list(b.stream(msgs, {})) == [first.text]


def test_success_rate_follows_the_sigmoid():
    tasks = [task(i, prompt="x" * (100 + 13 * i)) for i in range(1500)]
    b = sim(skill=0.55)
    expected = statistics.mean(b.success_probability(t) for t in tasks)
    observed = statistics.mean(b.answer(t)[1] for t in tasks)
    assert abs(observed - expected) < 0.04
    # Higher skill, more successes; the curve is sigmoid(k * (skill - difficulty)).
    assert statistics.mean(sim(skill=0.8).answer(t)[1] for t in tasks) > observed + 0.15
    t0 = tasks[0]
    assert b.success_probability(t0) == pytest.approx(sigmoid(6.0 * (0.55 - difficulty(t0, 1))))


def test_difficulty_grows_with_what_the_prompt_shows():
    short = task(0, prompt="Add two numbers.", reference="def f(a, b):\n    return a + b\n")
    long_ = task(
        0,
        prompt="Read the grid and count paths. " * 60,
        reference=REF * 3,
        tests={"type": "stdio", "cases": [{"input": "1", "output": "1"}] * 15},
    )
    assert observable_difficulty(long_) > observable_difficulty(short) + 0.4
    assert 0 <= observable_difficulty(short) <= observable_difficulty(long_) <= 1
    # The hidden part differs per task id, so equal prompts are not equally hard.
    assert difficulty(task(1), 7) != difficulty(task(2), 7)


def test_success_is_the_reference_in_a_chat_reply_failure_is_wrong():
    b = sim(skill=0.6)
    seen = {True: 0, False: 0}
    for i in range(60):
        t = task(i)
        text, ok = b.answer(t)
        code = re.search(r"```python\n(.*?)\n```", text, re.S).group(1)
        assert text.split("```")[0].strip()  # prose before the code
        seen[ok] += 1
        assert (code == REF.rstrip()) == ok
    assert seen[True] and seen[False]
    full = reply(b, task(0)).text
    assert full.endswith("(simulated answer by m)")


def test_classify_answers_yes_or_no():
    b = sim(skill=0.5)
    for i in range(40):
        t = task(i, kind="classify", reference=None, label=bool(i % 2))
        text, ok = b.answer(t)
        said = text.split(".")[0]
        assert said in ("Yes", "No")
        assert (said == "Yes") == (t["label"] if ok else not t["label"])


def test_bug_injection_and_truncation_change_the_code():
    for i in range(20):
        assert inject_bug(REF, rng_for("bug", i)) != REF
    assert inject_bug("pass", rng_for("x")) != "pass"


def test_translation_edits_grow_with_the_skill_gap():
    def mean_edit(skill):
        b = sim(skill=skill)
        diffs = []
        for i in range(80):
            t = task(i, kind="translate", reference=JAVA, language="csharp")
            code = re.search(r"```csharp\n(.*?)\n```", b.answer(t)[0], re.S).group(1)
            diffs.append(len(set(code.split()) ^ set(JAVA.split())))
        return statistics.mean(diffs)

    assert mean_edit(0.1) > mean_edit(0.9) + 2
    assert edit_tokens(JAVA, 0.0, rng_for(1)) == JAVA


def test_tokens_and_latency_follow_length_and_size():
    t = task(0)
    small, big = reply(sim(size_b=8, skill=1), t), reply(sim(size_b=405, skill=1), t)
    assert small.text.replace("by m", "") == big.text.replace("by m", "")
    assert big.latency_s > 2 * small.latency_s
    long_t = task(0, reference=REF * 10)
    assert reply(sim(skill=1), long_t).output_tokens > 5 * small.output_tokens // 2
    assert small.cost_usd == pytest.approx((small.input_tokens + small.output_tokens) * 0.2 / 1e6)


def test_default_portfolio_leaves_routing_headroom(repo_root):
    """No model of the demo config is best on every kind; the oracle beats the best model."""
    cfg = load_config(repo_root / "config.yaml", repo_root / "config" / "demo.yaml")
    kinds = ("generate", "repair", "classify", "translate", "refine")
    tasks = [
        task(
            i,
            kind=k,
            label=bool(i % 2) if k == "classify" else None,
            prompt="Solve this. " * (1 + i % 40),
        )
        for i in range(300)
        for k in kinds
    ]
    backends = {
        m: make_backend(m, cfg["models"][m], cfg["generation"], seed=cfg["seed"])
        for m in cfg["portfolio"]
    }
    wins = {m: [b.answer(t)[1] for t in tasks] for m, b in backends.items()}
    best_by_kind = {}
    for k in kinds:
        idx = [i for i, t in enumerate(tasks) if t["kind"] == k]
        best_by_kind[k] = max(wins, key=lambda m, idx=idx: sum(wins[m][i] for i in idx))
    assert len(set(best_by_kind.values())) > 1
    sbs = max(statistics.mean(w) for w in wins.values())
    oracle = statistics.mean(any(wins[m][i] for m in wins) for i in range(len(tasks)))
    assert oracle > sbs + 0.15
    # Cost order: the most expensive model is the strongest on average, the cheapest weakest.
    means = [statistics.mean(wins[m]) for m in cfg["portfolio"]]
    assert means[-1] == max(means) and means[0] < means[-1]


def test_generate_labels_simulated_and_cache_follows_skill(tmp_path):
    path = tmp_path / "tasks.jsonl"
    path.write_text("".join(json.dumps(task(i)) + "\n" for i in range(10)))
    cfg = {"backend": "simulated", "cost": 1, "size_b": 8, "skill": {"generate": 0.5}}
    s1 = generate(path, tmp_path / "a.jsonl", "m", cfg, GEN, 3, tmp_path / "cache")
    assert s1["simulated"] and s1["asked"] == 10
    recs = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert all(r["simulated"] is True and r["backend"] == "simulated" for r in recs)
    # Another skill (or seed) is another answer: the cache must not serve the old one.
    s2 = generate(
        path,
        tmp_path / "b.jsonl",
        "m",
        {**cfg, "skill": {"generate": 0.9}},
        GEN,
        3,
        tmp_path / "cache",
    )
    assert s2["asked"] == 10
    s3 = generate(path, tmp_path / "c.jsonl", "m", cfg, GEN, 3, tmp_path / "cache")
    assert (
        s3["asked"] == 0
        and (tmp_path / "c.jsonl").read_text() == (tmp_path / "a.jsonl").read_text()
    )


def test_missing_task_fields_are_errors():
    b = SimulatedBackend("m", {"backend": "simulated", "cost": 1}, GEN)
    from codyn.backends import BackendError

    with pytest.raises(BackendError):
        b.complete([{"role": "user", "content": "x"}], {}, {"prompt": "x"})
