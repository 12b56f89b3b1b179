"""The OpenAI-compatible backend against a real HTTP server process on 127.0.0.1.

The server counts the requests it sees per prompt, so the attempts the SDK makes (its
retries are the only ones) are counted where they arrive.
"""

from __future__ import annotations

import json
import logging
import time

import pytest
from chat_server import running_server, stats

from codyn.backends import BackendError, make_backend
from codyn.errors import ConfigError
from codyn.generate import GenerateError, generate

GEN = {
    "max_tokens": 64,
    "temperature": 0.0,
    "top_p": 1.0,
    "concurrency": 4,
    "timeout_s": 5,
    "max_retries": 3,
    "max_error_rate": 0.0,
}


@pytest.fixture(scope="module")
def server():
    with running_server() as url:
        yield url


def backend(url, model="echo", gen=None, **cfg):
    model_cfg = {
        "backend": "openai",
        "model_id": model,
        "base_url": url,
        "cost": 1,
        "price_in": 1.0,
        "price_out": 2.0,
        "api_key_env": None,
        "params": {},
        **cfg,
    }
    return make_backend("m", model_cfg, {**GEN, **(gen or {})})


def ask(b, prompt):
    return b.complete([{"role": "user", "content": prompt}], b.params())


def test_answer_tokens_and_cost(server):
    c = ask(backend(server), "hello there")
    assert c.text == "echo: hello there"
    assert (c.input_tokens, c.output_tokens) == (2, 3)
    assert c.cost_usd == pytest.approx((2 * 1.0 + 3 * 2.0) / 1e6)
    assert c.finish_reason == "stop" and c.latency_s > 0 and c.model_id == "echo"


def test_429_is_retried_until_it_passes(server):
    c = ask(backend(server, "throttle-2"), "throttled prompt")
    assert c.text == "echo: throttled prompt"
    assert stats(server)["per_prompt"]["throttled prompt"] == 3


def test_500_is_retried(server):
    assert ask(backend(server, "error500-1"), "flaky prompt").text == "echo: flaky prompt"
    assert stats(server)["per_prompt"]["flaky prompt"] == 2


def test_throttling_that_outlasts_retries_raises(server):
    with pytest.raises(BackendError) as err:
        ask(backend(server, "always429", gen={"max_retries": 2}), "never served")
    assert err.value.kind == "throttled" and err.value.retryable
    assert stats(server)["per_prompt"]["never served"] == 3


@pytest.mark.parametrize("max_retries", [0, 1, 3])
def test_500_forever_makes_one_plus_max_retries_attempts(server, max_retries):
    prompt = f"always failing {max_retries}"
    with pytest.raises(BackendError) as err:
        ask(backend(server, "always500", gen={"max_retries": max_retries}), prompt)
    assert err.value.kind == "server" and err.value.retryable
    assert stats(server)["per_prompt"][prompt] == 1 + max_retries


def test_more_throttles_than_retries_stops_at_the_limit(server):
    with pytest.raises(BackendError) as err:
        ask(backend(server, "throttle-5", gen={"max_retries": 2}), "five throttles")
    assert err.value.kind == "throttled"
    assert stats(server)["per_prompt"]["five throttles"] == 3


def test_retry_after_seconds_is_honoured(server):
    started = time.perf_counter()
    c = ask(backend(server, "retry-after-1-1"), "wait a second")
    assert c.text == "echo: wait a second"
    assert stats(server)["per_prompt"]["wait a second"] == 2
    # The SDK waited the server's Retry-After: 1, not its own 0.5 s first backoff.
    assert 1.0 <= time.perf_counter() - started < 5


def test_refusal_is_not_retried(server):
    with pytest.raises(BackendError) as err:
        ask(backend(server, "refuse"), "REFUSE me")
    assert err.value.kind == "refused" and not err.value.retryable
    assert stats(server)["per_prompt"]["REFUSE me"] == 1


def test_timeout(server):
    with pytest.raises(BackendError) as err:
        ask(backend(server, "sleep-2", gen={"timeout_s": 0.3, "max_retries": 0}), "slow")
    assert err.value.kind == "timeout"


def test_connection_refused():
    with pytest.raises(BackendError) as err:
        ask(backend("http://127.0.0.1:9/v1", gen={"max_retries": 0}), "nobody listens")
    assert err.value.kind == "connection"


def streamed(b, prompt):
    """The text pieces and the Completion (the generator's return value)."""
    gen = b.stream([{"role": "user", "content": prompt}], b.params())
    pieces = []
    while True:
        try:
            pieces.append(next(gen))
        except StopIteration as stop:
            return pieces, stop.value


def test_stream(server):
    chunks, done = streamed(backend(server), "a b c")
    assert len(chunks) > 1 and "".join(chunks) == "echo: a b c" == done.text
    # the usage chunk asked for with stream_options.include_usage
    assert (done.input_tokens, done.output_tokens) == (3, 4)
    assert done.cost_usd == pytest.approx((3 * 1.0 + 4 * 2.0) / 1e6)
    assert done.finish_reason == "stop" and done.model_id == "echo"


def test_stream_retries_before_the_first_byte(server):
    chunks, done = streamed(backend(server, "throttle-1"), "streamed after a 429")
    assert "".join(chunks) == "echo: streamed after a 429"
    assert stats(server)["per_prompt"]["streamed after a 429"] == 2


def test_stream_errors_are_backend_errors(server):
    with pytest.raises(BackendError) as err:
        streamed(backend(server, "always500", gen={"max_retries": 1}), "stream never served")
    assert err.value.kind == "server"
    assert stats(server)["per_prompt"]["stream never served"] == 2
    with pytest.raises(BackendError) as err:
        streamed(backend(server, "refuse"), "REFUSE this stream")
    assert err.value.kind == "refused"


def test_stream_from_a_server_without_stream_options(server):
    b = backend(server, "no-stream-options")
    chunks, done = streamed(b, "old server")
    assert "".join(chunks) == "echo: old server" and done.finish_reason == "stop"
    # no usage chunk: no counts, no dollars (nothing made up)
    assert (done.input_tokens, done.output_tokens, done.cost_usd) == (None, None, None)
    assert stats(server)["per_prompt"]["old server"] == 2  # once refused, once without
    streamed(b, "old server again")
    assert stats(server)["per_prompt"]["old server again"] == 1  # remembered


@pytest.mark.parametrize("model", ["garbage", "no-choices"])
def test_a_body_that_is_no_chat_completion_is_a_server_error(server, model):
    with pytest.raises(BackendError, match="no choices") as err:
        ask(backend(server, model), f"{model} body")
    assert err.value.kind == "server"


def test_a_stream_chunk_that_is_not_json_is_a_server_error(server):
    with pytest.raises(BackendError, match="bad stream chunk") as err:
        streamed(backend(server, "bad-chunk"), "broken stream")
    assert err.value.kind == "server"


def test_config_errors():
    with pytest.raises(ConfigError, match="base_url"):
        make_backend("m", {"backend": "openai", "model_id": "x", "cost": 1}, GEN)
    with pytest.raises(ConfigError, match="CODYN_TEST_UNSET_KEY"):
        ask(backend("http://127.0.0.1:9/v1", api_key_env="CODYN_TEST_UNSET_KEY"), "x")


def test_without_api_key_env_no_key_is_sent(server, monkeypatch):
    # OPENAI_API_KEY is meant for api.openai.com: a server without api_key_env never sees it,
    # nor any placeholder the SDK would want.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-key-not-for-this-server")
    assert ask(backend(server), "no key here").text == "echo: no key here"
    list(backend(server).stream([{"role": "user", "content": "no key streamed"}], {}))
    assert stats(server)["with_authorization"] == 0


def test_api_key_used_but_never_written(tmp_path, monkeypatch, caplog):
    secret = "sk-test-6f1d2c9a0b7e4f11"
    monkeypatch.setenv("CODYN_TEST_KEY", secret)
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"t{i}",
                    "dataset": "d",
                    "kind": "generate",
                    "language": "python",
                    "prompt": f"task {i}",
                    "reference": None,
                    "tests": None,
                    "label": None,
                    "meta": {},
                }
            )
            + "\n"
            for i in range(5)
        )
    )
    with running_server(api_key=secret) as url:
        cfg = {
            "backend": "openai",
            "model_id": "echo",
            "base_url": url,
            "cost": 1,
            "api_key_env": "CODYN_TEST_KEY",
        }
        with caplog.at_level(logging.DEBUG):
            summary = generate(tasks, tmp_path / "out.jsonl", "m", cfg, GEN, 0, tmp_path / "cache")
        assert summary["errors"] == 0
        # Without the key the same server refuses: the key really was sent.
        monkeypatch.setenv("CODYN_TEST_KEY", "wrong")
        cfg_other = {**cfg, "model_id": "echo2"}
        with pytest.raises(GenerateError):
            generate(tasks, tmp_path / "out2.jsonl", "m", cfg_other, GEN, 0, tmp_path / "cache")
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "tasks.jsonl"]
    assert written
    for path in written:
        assert secret not in path.read_text()
    assert secret not in caplog.text


def test_generate_records_errors_and_reasks_them(tmp_path, server):
    tasks = tmp_path / "tasks.jsonl"
    prompts = ["ok one", "REFUSE two", "ok three", "ok four"]
    tasks.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"t{i}",
                    "dataset": "d",
                    "kind": "generate",
                    "language": "python",
                    "prompt": p,
                    "reference": None,
                    "tests": None,
                    "label": None,
                    "meta": {},
                }
            )
            + "\n"
            for i, p in enumerate(prompts)
        )
    )
    cfg = {"backend": "openai", "model_id": "refuse", "base_url": server, "cost": 1}
    out = tmp_path / "out.jsonl"
    with pytest.raises(GenerateError) as err:
        generate(tasks, out, "m", cfg, {**GEN, "max_error_rate": 0.2}, 0, tmp_path / "cache")
    assert err.value.summary["errors"] == 1 and err.value.summary["error_kinds"] == {"refused": 1}
    assert not out.exists()
    summary = generate(tasks, out, "m", cfg, {**GEN, "max_error_rate": 0.25}, 0, tmp_path / "cache")
    # Answers were cached by the failed run; only the refused prompt is asked again.
    assert (summary["asked"], summary["cached"], summary["errors"]) == (1, 3, 1)
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["task_id"] for r in recs] == ["t0", "t1", "t2", "t3"]
    assert recs[1]["text"] is None and recs[1]["error"].startswith("refused")
    assert recs[0]["text"] == "echo: ok one" and recs[0]["simulated"] is False


# The awaitable interface `codyn serve` uses (acomplete / astream): same answers, same
# errors, and a hung upstream is cancelled on the event loop rather than holding a thread.


def _arun(coro):
    import asyncio

    return asyncio.run(coro)


async def _astreamed(b, prompt):
    items = [item async for item in b.astream([{"role": "user", "content": prompt}], b.params())]
    return items[:-1], items[-1]


def test_acomplete_answers_like_complete(server):
    b = backend(server)
    c = _arun(b.acomplete([{"role": "user", "content": "async hello"}], b.params()))
    assert c.text == "echo: async hello" and (c.input_tokens, c.output_tokens) == (2, 3)
    assert c.cost_usd == pytest.approx((2 * 1.0 + 3 * 2.0) / 1e6) and c.finish_reason == "stop"
    # a second event loop gets its own client (an async client is bound to its loop)
    c2 = _arun(b.acomplete([{"role": "user", "content": "async again"}], b.params()))
    assert c2.text == "echo: async again"


def test_astream_pieces_then_completion(server):
    chunks, done = _arun(_astreamed(backend(server), "a b c async"))
    assert len(chunks) > 1 and "".join(chunks) == "echo: a b c async" == done.text
    assert (done.input_tokens, done.output_tokens) == (4, 5) and done.finish_reason == "stop"


def test_astream_from_a_server_without_stream_options(server):
    b = backend(server, "no-stream-options")
    chunks, done = _arun(_astreamed(b, "old async server"))
    assert "".join(chunks) == "echo: old async server"
    assert (done.input_tokens, done.cost_usd) == (None, None)
    assert stats(server)["per_prompt"]["old async server"] == 2
    assert b.stream_usage is False


def test_async_errors_are_backend_errors(server):
    b = backend(server, "always500", gen={"max_retries": 1})
    with pytest.raises(BackendError) as err:
        _arun(b.acomplete([{"role": "user", "content": "async never"}], b.params()))
    assert err.value.kind == "server" and stats(server)["per_prompt"]["async never"] == 2
    with pytest.raises(BackendError, match="bad stream chunk"):
        _arun(_astreamed(backend(server, "bad-chunk"), "broken async stream"))


def test_a_hung_async_call_is_cancelled_at_the_callers_timeout(server):
    import asyncio

    b = backend(server, "sleep-5", gen={"timeout_s": 30, "max_retries": 0})

    async def bounded():
        started = time.perf_counter()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(
                b.acomplete([{"role": "user", "content": "hung"}], b.params()), 0.3
            )
        return time.perf_counter() - started

    assert _arun(bounded()) < 2
