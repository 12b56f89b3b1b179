"""The local transformers backend on a tiny Qwen2 built in the test (no hub download)."""

from __future__ import annotations

import json

import pytest
from tiny_qwen import build_tiny_qwen2

from codyn.backends import BackendError, make_backend
from codyn.errors import ConfigError
from codyn.generate import generate
from codyn.io import read_jsonl
from codyn.tiny_models import resolve_model_path

GEN = {"max_tokens": 12, "temperature": 0.0, "top_p": 1.0, "concurrency": 4, "max_error_rate": 0.0}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_qwen2(tmp_path_factory.mktemp("tiny") / "qwen", seed=0)


def hf(path, **gen):
    return make_backend(
        "tiny",
        {"backend": "hf", "model_id": str(path), "cost": 1, "price_in": 0.1, "price_out": 0.1},
        {**GEN, **gen},
    )


def test_tokenizer_ids_survive_reload(tiny, tmp_path):
    from transformers import AutoConfig, AutoTokenizer

    from codyn.tiny_models import DEFAULT_VOCAB_TEXTS, _train_tokenizer

    text = "def solve(n):\n    return n + 1  # Yes or No 0,1,2,3,4 héllo\n"
    trained = _train_tokenizer(DEFAULT_VOCAB_TEXTS, 512)
    reloaded = AutoTokenizer.from_pretrained(tiny)
    assert reloaded(text)["input_ids"] == trained.encode(text).ids
    assert reloaded.decode(reloaded(text)["input_ids"]) == text
    cfg = AutoConfig.from_pretrained(tiny)
    assert cfg.model_type == "qwen2" and cfg.hidden_size == 32 and cfg.num_hidden_layers == 2
    # Same seed, same weights.
    other = build_tiny_qwen2(tmp_path / "again", seed=0)
    assert (other / "model.safetensors").read_bytes() == (tiny / "model.safetensors").read_bytes()


def test_complete_is_greedy_and_counts_tokens(tiny):
    b = hf(tiny)
    msgs = [{"role": "system", "content": "Answer."}, {"role": "user", "content": "def f(x):"}]
    a = b.complete(msgs, b.params())
    assert a.text == b.complete(msgs, b.params()).text
    assert 1 <= a.output_tokens <= 12 and a.input_tokens > 5
    assert a.cost_usd == pytest.approx((a.input_tokens + a.output_tokens) * 0.1 / 1e6)
    assert a.latency_s > 0 and a.finish_reason in ("stop", "length")
    sampled = b.complete(msgs, {"max_tokens": 5, "temperature": 1.0, "top_p": 0.9})
    assert sampled.output_tokens <= 5


def test_prompt_longer_than_the_model_is_refused(tiny):
    b = hf(tiny)
    with pytest.raises(BackendError) as err:
        b.complete([{"role": "user", "content": "x y " * 2000}], b.params())
    assert err.value.kind == "refused"


def test_generate_with_hf(tiny, tmp_path):
    tasks = tmp_path / "t.jsonl"
    tasks.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"t{i}",
                    "dataset": "d",
                    "kind": "generate",
                    "language": "python",
                    "prompt": f"Write code {i}",
                    "reference": None,
                    "tests": None,
                    "label": None,
                    "meta": {},
                }
            )
            + "\n"
            for i in range(4)
        )
    )
    cfg = {"backend": "hf", "model_id": str(tiny), "cost": 1}
    s = generate(tasks, tmp_path / "o.jsonl", "tiny", cfg, GEN, 0, tmp_path / "cache")
    assert s["asked"] == 4 and s["errors"] == 0 and s["output_tokens"] > 0
    recs = list(read_jsonl(tmp_path / "o.jsonl"))
    assert all(r["backend"] == "hf" and isinstance(r["text"], str) for r in recs)


def test_tiny_name_and_missing_folder(tmp_path):
    path = resolve_model_path("tiny-qwen2", root=tmp_path, seed=3)
    assert (tmp_path / "tiny-qwen2-seed3" / "config.json").is_file()
    assert resolve_model_path("tiny-qwen2", root=tmp_path, seed=3) == path
    assert resolve_model_path("/some/local/dir") == "/some/local/dir"
    b = hf(tmp_path / "nothing-here")
    with pytest.raises(ConfigError, match="cannot load"):
        b.complete([{"role": "user", "content": "x"}], {})
