"""The Bedrock backend against botocore's Stubber (moto does not implement converse) and,
for retries, a local Converse endpoint (tests/bedrock_server.py): the Stubber answers
before botocore's retry handler runs, the server is reached through it.

Responses have the real Converse shape, including ``metrics.latencyMs``; errors are
the codes Bedrock returns (ThrottlingException, ValidationException, ...).
"""

from __future__ import annotations

import json
import time

import boto3
import pytest
from bedrock_server import ConverseServer, fake_aws_env
from botocore.retries import adaptive, standard
from botocore.stub import Stubber

from codyn.backends import BackendError, make_backend
from codyn.backends.bedrock import BedrockBackend
from codyn.config import load_config
from codyn.generate import generate

GEN = {
    "max_tokens": 256,
    "temperature": 0.0,
    "top_p": 1.0,
    "concurrency": 1,
    "timeout_s": 30,
    "max_retries": 3,
    "max_error_rate": 0.0,
}
CFG = {
    "backend": "bedrock",
    "model_id": "us.meta.llama3-1-8b-instruct-v1:0",
    "cost": 1,
    "price_in": 0.22,
    "price_out": 0.22,
    "params": {},
}


def converse_response(text, tokens_in=12, tokens_out=7, latency_ms=345, stop="end_turn"):
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": stop,
        "usage": {
            "inputTokens": tokens_in,
            "outputTokens": tokens_out,
            "totalTokens": tokens_in + tokens_out,
        },
        "metrics": {"latencyMs": latency_ms},
    }


@pytest.fixture
def stubbed(monkeypatch):
    # A real client; Stubber answers before anything is signed or sent.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    with Stubber(client) as stub:
        backend = BedrockBackend("llama-3.1-8b", CFG, GEN, client=client)
        yield backend, stub
        stub.assert_no_pending_responses()


@pytest.fixture
def aws_env(monkeypatch):
    """Credentials that sign (the local server checks a signature is there), no real AWS."""
    fake_aws_env(monkeypatch)


@pytest.fixture
def botocore_waits(monkeypatch):
    """botocore's backoff delays, recorded instead of slept (throttling backoff starts at
    up to 1 s and doubles; adaptive mode then also rate-limits the client): the retry
    decisions stay botocore's, the test stays fast."""
    delays = []
    backoff = standard.ExponentialBackoff.delay_amount

    def record(self, context):
        delays.append(backoff(self, context))
        return 0

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", record)
    monkeypatch.setattr(adaptive.ClientRateLimiter, "on_sending_request", lambda *a, **k: None)
    return delays


MODEL = CFG["model_id"]


def server_backend(server, max_retries):
    cfg = {**CFG, "endpoint_url": server.url}
    return make_backend("m", cfg, {**GEN, "max_retries": max_retries})


def hi(backend, prompt="hi"):
    return backend.complete([{"role": "user", "content": prompt}], backend.params())


def test_request_shape_and_completion(stubbed):
    backend, stub = stubbed
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Fix it."}]
    expected = {
        "modelId": CFG["model_id"],
        "system": [{"text": "Be brief."}],
        "messages": [{"role": "user", "content": [{"text": "Fix it."}]}],
        "inferenceConfig": {"maxTokens": 256, "temperature": 0.0, "topP": 1.0},
    }
    stub.add_response("converse", converse_response("```python\nx = 1\n```"), expected)
    c = backend.complete(messages, backend.params())
    assert c.text == "```python\nx = 1\n```"
    assert (c.input_tokens, c.output_tokens) == (12, 7)
    assert c.latency_s == pytest.approx(0.345)
    assert c.cost_usd == pytest.approx(19 * 0.22 / 1e6)
    assert c.finish_reason == "end_turn" and c.model_id == CFG["model_id"]


def test_throttling_is_retried_by_botocore_then_answers(aws_env, botocore_waits):
    failures = {MODEL: ("ThrottlingException", 2)}
    with ConverseServer(lambda mid, prompt: "ok", {MODEL}, failures) as server:
        c = hi(server_backend(server, 3))
    assert c.text == "ok"
    assert server.attempts["hi"] == 3 and len(botocore_waits) == 2
    assert all(0 <= d <= 20 for d in botocore_waits)


@pytest.mark.parametrize("max_retries", [0, 2, 6])
def test_throttling_forever_makes_one_plus_max_retries_attempts(
    aws_env, botocore_waits, max_retries
):
    failures = {MODEL: ("ThrottlingException", None)}
    with ConverseServer(lambda mid, prompt: "ok", {MODEL}, failures) as server:
        with pytest.raises(BackendError) as err:
            hi(server_backend(server, max_retries))
    assert err.value.kind == "throttled" and err.value.retryable
    # botocore's attempts and nothing around them
    assert server.attempts["hi"] == 1 + max_retries
    assert len(botocore_waits) == max_retries


def test_server_errors_are_retried_in_real_time(aws_env):
    """No patching: botocore's non-throttling backoff (50 ms scale) really runs."""
    failures = {MODEL: ("InternalServerException", None)}
    with ConverseServer(lambda mid, prompt: "ok", {MODEL}, failures) as server:
        started = time.perf_counter()
        with pytest.raises(BackendError) as err:
            hi(server_backend(server, 2))
        assert time.perf_counter() - started < 10
    assert err.value.kind == "server" and server.attempts["hi"] == 3


def test_an_error_botocore_does_not_retry_is_asked_once(aws_env, botocore_waits):
    failures = {MODEL: ("ModelTimeoutException", None)}
    with ConverseServer(lambda mid, prompt: "ok", {MODEL}, failures) as server:
        with pytest.raises(BackendError) as err:
            hi(server_backend(server, 3))
    assert err.value.kind == "timeout" and server.attempts["hi"] == 1 and botocore_waits == []


def test_no_retry_loop_around_the_client(stubbed):
    """The Stubber answers before botocore's retries: codyn itself asks exactly once."""
    backend, stub = stubbed
    stub.add_client_error("converse", "ThrottlingException", "Too many requests", 429)
    with pytest.raises(BackendError) as err:
        hi(backend)
    assert err.value.kind == "throttled"
    # a second call would have raised the Stubber's "no response queued" error instead


def test_stream_errors_are_backend_errors(stubbed):
    backend, stub = stubbed
    stub.add_client_error("converse_stream", "ThrottlingException", "Too many requests", 429)
    with pytest.raises(BackendError, match="Too many requests") as err:
        list(backend.stream([{"role": "user", "content": "hi"}], backend.params()))
    assert err.value.kind == "throttled"


def test_validation_error_is_not_retried(stubbed):
    backend, stub = stubbed
    stub.add_client_error("converse", "ValidationException", "Input is too long", 400)
    with pytest.raises(BackendError) as err:
        backend.complete([{"role": "user", "content": "x" * 10}], backend.params())
    assert err.value.kind == "validation" and not err.value.retryable
    assert "Input is too long" in str(err.value)


def test_guardrail_is_a_refusal(stubbed):
    backend, stub = stubbed
    stub.add_response("converse", converse_response("", stop="guardrail_intervened"))
    with pytest.raises(BackendError) as err:
        backend.complete([{"role": "user", "content": "hi"}], backend.params())
    assert err.value.kind == "refused"


def test_generate_with_bedrock(stubbed, tmp_path):
    backend, stub = stubbed
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"t{i}",
                    "dataset": "apps",
                    "kind": "generate",
                    "language": "python",
                    "prompt": f"problem {i}",
                    "reference": None,
                    "tests": None,
                    "label": None,
                    "meta": {},
                }
            )
            + "\n"
            for i in range(3)
        )
    )
    stub.add_response("converse", converse_response("a0", 10, 5, 100))
    stub.add_client_error("converse", "ValidationException", "refused", 400)
    stub.add_response("converse", converse_response("a2", 10, 5, 300))
    out = tmp_path / "out.jsonl"
    summary = generate(
        tasks,
        out,
        "llama-3.1-8b",
        CFG,
        {**GEN, "max_error_rate": 0.5},
        0,
        tmp_path / "cache",
        backend=backend,
    )
    assert summary["errors"] == 1 and summary["input_tokens"] == 20
    assert summary["cost_usd"] == pytest.approx(30 * 0.22 / 1e6)
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["text"] for r in recs] == ["a0", None, "a2"]
    assert recs[0]["latency_s"] == pytest.approx(0.1) and recs[0]["backend"] == "bedrock"
    assert recs[1]["error"].startswith("validation")
    assert (tmp_path / "cache/responses/bedrock/llama-3.1-8b.jsonl").is_file()


def test_real_client_uses_aws_chain_and_adaptive_retries(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    monkeypatch.delenv("AWS_REGION", raising=False)
    backend = make_backend("m", {**CFG, "region": None}, GEN)
    client = backend.client
    assert client.meta.region_name == "us-west-2"
    assert client.meta.config.retries["mode"] == "adaptive"
    assert client.meta.config.retries["total_max_attempts"] == GEN["max_retries"] + 1


def test_paper_config(repo_root):
    cfg = load_config(repo_root / "config.yaml", repo_root / "config/paper.yaml")
    models = [cfg["models"][m] for m in cfg["portfolio"]]
    assert [m["cost"] for m in models] == [1, 1.6, 5, 16, 72]
    assert all(m["backend"] == "bedrock" for m in models)
    ids = [m["model_id"] for m in models]
    assert ids[1] == "us.meta.llama3-2-11b-instruct-v1:0"  # 3.2 runs only through a profile
    assert ids[3] == "meta.llama3-70b-instruct-v1:0"  # Llama 3 70B has no profile
    # The relative costs are the output-price ratios, as the paper derives them.
    ratios = [m["price_out"] / models[0]["price_out"] for m in models]
    assert [round(r, 0) for r in ratios[2:]] == [4, 16, 73]
    assert round(ratios[1], 1) == 1.6
    text = (repo_root / "config/paper.yaml").read_text()
    assert "aws_access_key_id" not in text.lower() and "aws_secret" not in text.lower()
    # the five paper datasets from upstream, and BigCodeBench as the unseen task (A.4)
    assert cfg["run_datasets"] == [
        "apps",
        "runbugrun",
        "sven",
        "refinement",
        "translation",
        "bigcodebench",
    ]
    assert cfg["generalisation"] == ["bigcodebench"]
    assert all(cfg["datasets"][d]["source"] == "url" for d in cfg["run_datasets"])
