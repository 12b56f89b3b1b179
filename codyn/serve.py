"""``codyn serve``: an OpenAI-compatible routing server in front of a portfolio.

``POST /v1/chat/completions`` routes the request's last user message with a trained router
and forwards the conversation to the chosen model's backend (any backend of the generate
stage, :mod:`codyn.backends`). The request's ``model`` selects the routing:

- ``codyn-auto``: the router, with the cost weight its router.json records for
  ``serve.target`` (chosen on out-of-fold predictions of the training split; w = 0, said
  at start-up and in ``/health``, for a router.json without one), or ``serve.cost_weight``
  when that is set;
- ``codyn-auto:0.25``: the router, with cost weight 0.25 for this request;
- a portfolio model name: that model, no routing and no fallback;
- ``codyn-cascade`` (with ``serve.cascade`` set): the verified cascade, stage by stage until
  an answer passes the prompt's own examples in the sandbox (:mod:`codyn.serve_cascade`).

When the chosen model fails (backend error or ``upstream_timeout_s``), the next model in
the router's order (:func:`codyn.policy.fallback_order`) is tried. The response is the
OpenAI shape with the served model in ``model``, an ``x-codyn-model`` header, and a
``codyn`` object (scores, cost weight, failed attempts, simulated). ``stream: true`` answers
with server-sent events; a fallback is only possible before the first token.

Also ``GET /v1/models``, ``GET /health`` (never needs a token) and ``GET /metrics``
(Prometheus). Every chat call that passes validation is appended to ``serve.log_path`` as
one JSON line: prompt hash, served model, predicted scores, latency, tokens and cost; no
headers or keys, and text only with ``serve.log_text``.

Concurrent prompts are scored in one ``predict_scores`` batch (a single scoring thread), so
32 clients cost about one forward pass each round instead of 32 competing ones.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import hmac
import json
import logging
import math
import os
import socket
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.exceptions import HTTPException as StarletteHTTPException

from codyn.config import load_schema
from codyn.errors import CodynError, ConfigError
from codyn.io import sha256_text, write_text
from codyn.policy import AUTO_MODEL, auto_weight, fallback_order, parse_auto_model, score_dict
from codyn.serve_cascade import CASCADE_MODEL, CascadeRunner

log = logging.getLogger("codyn.serve")

# Roles the backends take; "developer" is OpenAI's newer name for "system".
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
ENDPOINTS = {"/v1/chat/completions": "chat", "/v1/models": "models", "/metrics": "metrics"}
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.015,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
)


# --- settings ---------------------------------------------------------------------------------


def serve_settings(config: dict) -> dict:
    """``config['serve']`` over the schema's defaults (one source of defaults)."""
    props = load_schema()["properties"]["serve"]["properties"]
    settings = {key: spec.get("default") for key, spec in props.items()}
    unknown = set(config.get("serve") or {}) - set(props)
    if unknown:
        raise ConfigError(f"serve.{sorted(unknown)[0]}", "unknown key", allowed=sorted(props))
    settings.update(config.get("serve") or {})
    return settings


def check_portfolio(router, config: dict) -> None:
    """The router's models must all be configured: they are what the server forwards to."""
    missing = [m for m in router.models if m not in config["models"]]
    if missing:
        raise ConfigError(
            "models",
            f"the router was trained on {missing} which the config does not define; "
            "serve it with the config of the portfolio it was trained on",
            allowed=sorted(config["models"]),
        )


def tune_router(router, *, threads: int | None = None, quantize: bool = False) -> list[str]:
    """Serving-time speed settings (``serve.router_threads``, ``serve.quantize_router``);
    returns what was changed, for the start-up message."""
    notes = []
    if threads:
        import torch

        torch.set_num_threads(int(threads))
        notes.append(f"{threads} torch thread(s)")
    if quantize:
        import warnings

        import torch

        modules = [
            name for name, value in vars(router).items() if isinstance(value, torch.nn.Module)
        ]
        if not modules:
            raise ConfigError(
                "serve.quantize_router",
                f"the {getattr(router, 'type', '?')} router holds no torch model",
            )
        with warnings.catch_warnings():
            # torch 2.13 points to torchao for new code; the eager API still works and is all we need
            warnings.simplefilter("ignore")
            for name in modules:
                quantized = torch.ao.quantization.quantize_dynamic(
                    getattr(router, name), {torch.nn.Linear}, dtype=torch.qint8
                )
                setattr(router, name, quantized)
        notes.append(f"int8 dynamic quantization of {', '.join(modules)}")
    return notes


# --- errors -----------------------------------------------------------------------------------


class ApiError(Exception):
    """An error answered in OpenAI's shape: {"error": {message, type, param, code}}."""

    def __init__(
        self, status: int, message: str, type_: str = "invalid_request_error", code=None, param=None
    ):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = (
            status,
            message,
            type_,
            code,
            param,
        )

    def response(self, headers: dict | None = None) -> JSONResponse:
        return error_response(self.status, self.message, self.type, self.code, self.param, headers)


def error_response(
    status, message, type_="invalid_request_error", code=None, param=None, headers=None
):
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


# --- pieces -----------------------------------------------------------------------------------


class Metrics:
    """Prometheus metrics in a registry of this app's own (tests start several apps)."""

    def __init__(self):
        self.registry = r = CollectorRegistry()
        self.requests = Counter(
            "codyn_requests", "HTTP requests", ["endpoint", "status"], registry=r
        )
        self.routed = Counter(
            "codyn_served", "Chat calls answered, by model", ["model", "routed"], registry=r
        )
        self.failures = Counter(
            "codyn_upstream_failures", "Failed upstream attempts", ["model", "reason"], registry=r
        )
        self.fallbacks = Counter(
            "codyn_fallbacks", "Calls answered by a model other than the first choice", registry=r
        )
        self.latency = Histogram(
            "codyn_request_seconds", "Chat call latency", buckets=LATENCY_BUCKETS, registry=r
        )
        self.routing = Histogram(
            "codyn_routing_seconds",
            "Router scoring time per call",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream = Histogram(
            "codyn_upstream_seconds",
            "Upstream latency",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch = Histogram(
            "codyn_router_batch_size",
            "Prompts per router call",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=r,
        )
        self.in_flight = Gauge("codyn_in_flight_requests", "Chat calls being handled", registry=r)
        self.tokens = Counter("codyn_tokens", "Tokens", ["model", "direction"], registry=r)
        self.cost = Counter("codyn_cost_usd", "Upstream cost in USD", ["model"], registry=r)


class CallLog:
    """Append-only JSONL. Each record is one ``write`` on an O_APPEND descriptor, so lines from
    concurrent requests (or several server processes) never interleave."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._lock = threading.Lock()

    def write(self, record: dict) -> None:
        data = (json.dumps(record, ensure_ascii=False, sort_keys=True, default=str) + "\n").encode(
            "utf-8"
        )
        with self._lock:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]

    def close(self) -> None:
        os.close(self._fd)


class ScoreBatcher:
    """Scores prompts with the router in one thread, batching the prompts that arrive while
    a batch runs. A batch is sorted by length and scored in chunks of ``chunk``: a padded
    forward pass costs as much as its longest prompt, and each chunk answers its callers as
    soon as it is done."""

    def __init__(self, router, max_batch: int = 64, chunk: int = 8):
        self.router = router
        self.max_batch = max_batch
        self.chunk = chunk
        self.executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="codyn-router")
        self.pending: list[tuple[str, asyncio.Future]] = []
        self.running = False
        self.on_batch = None
        self._task: asyncio.Task | None = None  # held so the drain task is not garbage-collected

    async def scores(self, prompt: str) -> np.ndarray:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.pending.append((prompt, future))
        if not self.running:
            self.running = True
            self._task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self.pending:
                batch, self.pending = self.pending[: self.max_batch], self.pending[self.max_batch :]
                batch.sort(key=lambda item: len(item[0]))
                for start in range(0, len(batch), self.chunk):
                    await self._score(batch[start : start + self.chunk])
        finally:
            self.running = False

    async def _score(self, chunk: list[tuple[str, asyncio.Future]]) -> None:
        live = [(p, fut) for p, fut in chunk if not fut.done()]  # skip requests already gone
        if not live:
            return
        if self.on_batch:
            self.on_batch(len(live))
        loop = asyncio.get_running_loop()
        try:
            out = await loop.run_in_executor(
                self.executor, self.router.predict_scores, [p for p, _ in live]
            )
            out = np.asarray(out, dtype=float)
            if out.shape != (len(live), len(self.router.models)):
                raise RuntimeError(f"router returned scores of shape {out.shape}")
        except Exception as exc:  # a router failure fails its chunk, not the server
            for _, fut in live:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for (_, fut), row in zip(live, out, strict=True):
            if not fut.done():
                fut.set_result(row)


class Lease:
    """A concurrency slot that is released exactly once."""

    def __init__(self, semaphore: asyncio.Semaphore):
        self.semaphore, self.held = semaphore, True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.semaphore.release()


class GuardedStream(StreamingResponse):
    """A streaming response whose cleanup runs however it ends (done, cancelled, disconnected,
    or never started)."""

    def __init__(self, content, cleanup, **kwargs):
        super().__init__(content, **kwargs)
        self._cleanup = cleanup

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._cleanup()


_END = object()


def failure_reason(exc: BaseException) -> str:
    """A short label for a failed upstream attempt (metrics label, log)."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    return str(getattr(exc, "kind", "") or type(exc).__name__)


def _next_chunk(iterator):
    """next() for use in a thread: returns (_END, return value) instead of raising StopIteration."""
    try:
        return next(iterator), None
    except StopIteration as stop:
        return _END, stop.value


# --- request parsing --------------------------------------------------------------------------


def _text_of(content, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for k, part in enumerate(content):
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise ApiError(
                    400,
                    f"{where}.content[{k}] must be an object with a 'type'",
                    param=f"{where}.content",
                )
            if part["type"] == "text":
                if not isinstance(part.get("text"), str):
                    raise ApiError(
                        400, f"{where}.content[{k}].text must be a string", param=f"{where}.content"
                    )
                parts.append(part["text"])
            else:
                raise ApiError(
                    400,
                    f"content part type {part['type']!r} is not supported (text only)",
                    param=f"{where}.content",
                )
        return "\n".join(parts)
    raise ApiError(
        400,
        f"{where}.content must be a string or a list of content parts",
        param=f"{where}.content",
    )


def _number(body: dict, key: str, lo: float, hi: float | None, integer: bool = False):
    value = body.get(key)
    if value is None:
        return None
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if (
        isinstance(value, bool)
        or not ok
        or not math.isfinite(value)
        or value < lo
        or (hi is not None and value > hi)
    ):
        kind = "an integer" if integer else "a number"
        bound = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ApiError(400, f"'{key}' must be {kind} {bound}", param=key)
    return value


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def parse_chat_request(body: Any) -> dict:
    """Validate an OpenAI chat request; returns the parts the server uses. Raises ApiError."""
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    model = body.get("model")
    if model is None:
        raise ApiError(
            400,
            "you must provide a model parameter",
            code="missing_required_parameter",
            param="model",
        )
    if not isinstance(model, str) or not model or _has_surrogate(model):
        raise ApiError(400, "'model' must be a non-empty string", param="model")
    messages = body.get("messages")
    if messages is None:
        raise ApiError(
            400,
            "missing required parameter: 'messages'",
            code="missing_required_parameter",
            param="messages",
        )
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty array", param="messages")
    normal = []
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise ApiError(400, f"{where} must be an object", param=where)
        role = msg.get("role")
        if role not in ROLES:
            raise ApiError(
                400, f"{where}.role must be one of {', '.join(ROLES)}", param=f"{where}.role"
            )
        if msg.get("content") is None and ROLES[role] != "assistant":
            # Only an assistant turn (one that called tools) may lack content, as in OpenAI's API.
            raise ApiError(
                400, f"{where}.content is required for a {role} message", param=f"{where}.content"
            )
        content = _text_of(msg.get("content"), where)
        if _has_surrogate(content):
            # JSON may escape a lone surrogate ("\ud800"); no backend, log or hash can
            # encode it as UTF-8, so it is the client's error, not a 500.
            raise ApiError(
                400,
                f"{where}.content holds a lone surrogate code point (not valid Unicode text)",
                param=f"{where}.content",
            )
        normal.append({"role": ROLES[role], "content": content})
    users = [m["content"] for m in normal if m["role"] == "user"]
    if not users:
        raise ApiError(400, "'messages' must contain a user message", param="messages")
    n = _number(body, "n", 1, None, integer=True)
    if n not in (None, 1):
        raise ApiError(400, "only n=1 is supported", param="n")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, "'stream' must be a boolean", param="stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise ApiError(400, "'stream_options' must be an object", param="stream_options")
    include_usage = options.get("include_usage", False)
    if not isinstance(include_usage, bool):
        raise ApiError(
            400, "'stream_options.include_usage' must be a boolean", param="stream_options"
        )
    params = {}
    temperature = _number(body, "temperature", 0, 2)
    top_p = _number(body, "top_p", 0, 1)
    max_tokens = _number(body, "max_completion_tokens", 1, None, integer=True)
    if max_tokens is None:
        max_tokens = _number(body, "max_tokens", 1, None, integer=True)
    for key, value in (("temperature", temperature), ("top_p", top_p), ("max_tokens", max_tokens)):
        if value is not None:
            params[key] = value
    return {
        "model": model,
        "messages": normal,
        # The router was trained on task prompts: the last user turn is the task (as RouteLLM does).
        "prompt": users[-1],
        "params": params,
        "stream": stream,
        "include_usage": include_usage,
    }


# --- the app ----------------------------------------------------------------------------------


def usage_of(rec: dict) -> dict | None:
    """The OpenAI ``usage`` object of a call record, None when token counts are unknown."""
    if isinstance(rec["input_tokens"], int) and isinstance(rec["output_tokens"], int):
        return {
            "prompt_tokens": rec["input_tokens"],
            "completion_tokens": rec["output_tokens"],
            "total_tokens": rec["input_tokens"] + rec["output_tokens"],
        }
    return None


def completion_body(request_id, model, text, finish, usage, info) -> dict:
    """A ``chat.completion`` response body with codyn's ``codyn`` object."""
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish,
                "logprobs": None,
            }
        ],
        "usage": usage,
        "system_fingerprint": None,
        "codyn": info,
    }


class RoutingService:
    """State shared by the endpoints: router, backends, limits, metrics and the call log."""

    def __init__(
        self, router, config: dict, *, settings: dict | None = None, backends: dict | None = None
    ):
        check_portfolio(router, config)
        self.router = router
        self.config = config
        self.settings = {**serve_settings(config), **(settings or {})}
        self.models = list(router.models)
        self.costs = np.asarray(router.costs, dtype=float)
        self.model_cfg = {m: config["models"][m] for m in self.models}
        self.simulated = {m: self.model_cfg[m]["backend"] == "simulated" for m in self.models}
        self.backends = backends if backends is not None else self._make_backends()
        for m, backend in self.backends.items():
            self.simulated[m] = bool(getattr(backend, "simulated", self.simulated[m]))
        self.metrics = Metrics()
        self.batcher = ScoreBatcher(router)
        self.batcher.on_batch = self.metrics.batch.observe
        self.upstream_pool = concurrent.futures.ThreadPoolExecutor(
            self.settings["max_concurrency"] + 4, thread_name_prefix="codyn-upstream"
        )
        self.semaphore: asyncio.Semaphore | None = None
        self.log = CallLog(self.settings["log_path"]) if self.settings.get("log_path") else None
        env = self.settings.get("auth_token_env")
        self.token = os.environ.get(env, "") if env else ""
        self.created = int(time.time())
        self.auto_weight, self.auto_source = auto_weight(
            router, self.settings["cost_weight"], self.settings["target"]
        )
        spec = self.settings.get("cascade")
        self.cascade = CascadeRunner(self, spec) if spec is not None else None

    def _make_backends(self) -> dict:
        from codyn.backends import make_backend

        generation = dict(self.config.get("generation") or {})
        # The server falls back to the next-ranked model instead of retrying one for long.
        generation["timeout_s"] = self.settings["upstream_timeout_s"]
        generation["max_retries"] = self.settings["upstream_retries"]
        generation["concurrency"] = self.settings["max_concurrency"]
        seed = int(self.config.get("seed", 0))
        return {m: make_backend(m, self.model_cfg[m], generation, seed=seed) for m in self.models}

    def params_for(self, model: str, request_params: dict) -> dict:
        generation = self.config.get("generation") or {}
        params = {
            k: generation[k] for k in ("max_tokens", "temperature", "top_p") if k in generation
        }
        params.update(self.model_cfg[model].get("params") or {})
        params.update(request_params)
        return params

    # auth -----------------------------------------------------------------------------------
    def check_auth(self, request: Request) -> None:
        if not self.token:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), self.token.encode()
        ):
            raise ApiError(401, "invalid or missing bearer token", code="invalid_api_key")

    # body -------------------------------------------------------------------------------------
    async def read_json(self, request: Request) -> Any:
        limit = self.settings["max_body_bytes"]
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise ApiError(400, "bad Content-Length header")
            if int(declared) > limit:
                raise ApiError(413, f"request body exceeds {limit} bytes", code="request_too_large")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"request body exceeds {limit} bytes", code="request_too_large")
            chunks.append(chunk)
        raw = b"".join(chunks)
        if not raw.strip():
            raise ApiError(400, "request body is empty; expected a JSON object")
        try:
            return json.loads(raw)
        except (ValueError, RecursionError) as exc:  # also a 5000-digit number (ValueError)
            raise ApiError(
                400, f"request body is not valid JSON ({exc})", code="invalid_json"
            ) from exc

    # routing ----------------------------------------------------------------------------------
    def resolve_model(self, name: str) -> tuple[float | None, list[int] | None]:
        """(cost weight, None) for auto models, (None, [index]) for a concrete model."""
        try:
            weight = parse_auto_model(name, self.auto_weight)
        except ValueError as exc:
            raise ApiError(400, f"bad model {name!r}: {exc}", param="model") from exc
        if weight is not None:
            return weight, None
        if name in self.models:
            return None, [self.models.index(name)]
        raise ApiError(
            404,
            f"the model {name!r} does not exist; use {AUTO_MODEL}, {AUTO_MODEL}:<cost weight> "
            f"or one of {', '.join(self.models)}",
            code="model_not_found",
            param="model",
        )

    async def acquire(self) -> Lease:
        if self.semaphore is None:
            self.semaphore = asyncio.Semaphore(self.settings["max_concurrency"])
        try:
            await asyncio.wait_for(self.semaphore.acquire(), self.settings["request_timeout_s"])
        except TimeoutError as exc:
            raise ApiError(
                503, "server is at capacity; retry later", "server_error", code="overloaded"
            ) from exc
        return Lease(self.semaphore)

    async def in_thread(self, fn, *args):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.upstream_pool, fn, *args)

    def new_record(self, req: dict, request_id: str) -> dict:
        rec = {
            "ts": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            "request_id": request_id,
            "requested_model": req["model"],
            "prompt_sha256": sha256_text(req["prompt"]),
            "messages_sha256": sha256_text(
                json.dumps(req["messages"], sort_keys=True, ensure_ascii=False)
            ),
            "stream": req["stream"],
            "routed": False,
            "cost_weight": None,
            "scores": None,
            "fallback_order": None,
            "attempts": [],
            "model": None,
            "model_id": None,
            "backend": None,
            "simulated": None,
            "status": None,
            "error": None,
            "routing_s": 0.0,
            "upstream_s": None,
            "latency_s": None,
            "input_tokens": None,
            "output_tokens": None,
            "cost_usd": None,
            "relative_cost": None,
            "finish_reason": None,
        }
        if self.settings.get("log_text"):
            rec["prompt"] = req["prompt"]
            rec["messages"] = req["messages"]
            rec["text"] = None
        return rec

    async def plan(self, req: dict, rec: dict) -> list[int]:
        """The models to try, in order; fills the routing part of the log record."""
        weight, order = self.resolve_model(req["model"])
        if order is not None:
            return order
        t0 = time.perf_counter()
        try:
            row = await self.batcher.scores(req["prompt"])
        except Exception as exc:
            log.exception("router failed")
            raise ApiError(
                500, f"router failed: {type(exc).__name__}", "server_error", code="router_error"
            ) from exc
        rec["routing_s"] = time.perf_counter() - t0
        self.metrics.routing.observe(rec["routing_s"])
        order = fallback_order(row, self.costs, weight)
        rec.update(routed=True, cost_weight=weight, scores=score_dict(self.models, row))
        rec["fallback_order"] = [self.models[i] for i in order]
        if not order:
            raise ApiError(
                503,
                "the router can pick none of its models for this prompt",
                "server_error",
                code="no_model",
            )
        return order

    def attempt_failed(self, rec: dict, model: str, exc: BaseException) -> None:
        reason = failure_reason(exc)
        if isinstance(exc, TimeoutError):
            message = f"timeout: no answer within {self.settings['upstream_timeout_s']} s"
        else:
            message = f"{type(exc).__name__}: {exc}"
        rec["attempts"].append({"model": model, "error": message[:300]})
        self.metrics.failures.labels(model, reason).inc()
        log.warning("upstream %s failed (%s); falling back", model, reason)

    def all_failed(self, rec: dict) -> ApiError:
        detail = "; ".join(f"{a['model']}: {a['error']}" for a in rec["attempts"])
        return ApiError(
            502, f"every model tried failed ({detail})", "server_error", code="upstream_error"
        )

    def served(self, rec: dict, model: str, completion=None, upstream_s=None) -> None:
        cfg = self.model_cfg[model]
        rec.update(
            model=model,
            backend=cfg["backend"],
            model_id=getattr(completion, "model_id", None) or cfg.get("model_id"),
            simulated=self.simulated[model],
            relative_cost=float(cfg["cost"]),
            upstream_s=upstream_s,
        )
        if completion is not None:
            rec.update(
                input_tokens=getattr(completion, "input_tokens", None),
                output_tokens=getattr(completion, "output_tokens", None),
                cost_usd=getattr(completion, "cost_usd", None),
                finish_reason=getattr(completion, "finish_reason", None) or rec["finish_reason"],
            )
        self.metrics.routed.labels(model, str(rec["routed"]).lower()).inc()
        if rec["fallback_order"] and model != rec["fallback_order"][0]:
            self.metrics.fallbacks.inc()
        if upstream_s is not None:
            self.metrics.upstream.labels(model).observe(upstream_s)
        for direction in ("input", "output"):
            if isinstance(rec[f"{direction}_tokens"], int):
                self.metrics.tokens.labels(model, direction).inc(rec[f"{direction}_tokens"])
        if isinstance(rec["cost_usd"], int | float):
            self.metrics.cost.labels(model).inc(rec["cost_usd"])

    def finish(self, rec: dict, status: int, t0: float, error: str | None = None) -> None:
        rec["status"], rec["error"] = status, error
        rec["latency_s"] = time.perf_counter() - t0
        self.metrics.latency.observe(rec["latency_s"])
        self.metrics.requests.labels("chat", str(status)).inc()
        if self.log is not None:
            try:
                self.log.write(rec)
            except OSError:
                log.exception("cannot append to the call log %s", self.settings["log_path"])

    def headers(self, rec: dict) -> dict:
        h = {"x-codyn-request-id": rec["request_id"]}
        if rec["model"]:
            h["x-codyn-model"] = rec["model"]
            h["x-codyn-simulated"] = "true" if rec["simulated"] else "false"
        if rec["upstream_s"] is not None:
            h["x-codyn-upstream-ms"] = f"{rec['upstream_s'] * 1000:.3f}"
        h["x-codyn-routing-ms"] = f"{rec['routing_s'] * 1000:.3f}"
        if rec["latency_s"] is not None:
            # time inside the server up to the response body (what overhead benchmarks subtract from)
            h["x-codyn-server-ms"] = f"{rec['latency_s'] * 1000:.3f}"
        return h

    def codyn_info(self, rec: dict) -> dict:
        return {
            "request_id": rec["request_id"],
            "routed": rec["routed"],
            "cost_weight": rec["cost_weight"],
            "scores": rec["scores"],
            "fallback_order": rec["fallback_order"],
            "failed_attempts": rec["attempts"],
            "simulated": rec["simulated"],
            "model_id": rec["model_id"],
            "cost_usd": rec["cost_usd"],
        }

    # chat ---------------------------------------------------------------------------------------
    async def chat(self, request: Request) -> Response:
        t0 = time.perf_counter()
        self.check_auth(request)
        req = parse_chat_request(await self.read_json(request))
        cascade = self.cascade is not None and req["model"] == CASCADE_MODEL
        if not cascade:
            self.resolve_model(req["model"])  # unknown names fail before any work
        request_id = "chatcmpl-" + uuid.uuid4().hex
        rec = self.new_record(req, request_id)
        lease = None
        self.metrics.in_flight.inc()
        handed_over = False
        try:
            # Waiting for a slot is the overload case (503); the rest of the time budget is
            # the request's own (504).
            lease = await self.acquire()
            remaining = self.settings["request_timeout_s"] - (time.perf_counter() - t0)
            try:
                async with asyncio.timeout(max(remaining, 0.0)):
                    if cascade:
                        return await self.cascade.run(req, rec, t0)
                    order = await self.plan(req, rec)
                    if req["stream"]:
                        response = await self.start_stream(req, rec, order, lease, t0)
                        handed_over = True
                        return response
                    return await self.complete(req, rec, order, t0)
            except TimeoutError as exc:
                raise ApiError(
                    504,
                    f"request took longer than {self.settings['request_timeout_s']} s",
                    "server_error",
                    code="timeout",
                ) from exc
        except ApiError as err:
            self.finish(rec, err.status, t0, err.message)
            return err.response(self.headers(rec))
        finally:
            if not handed_over:
                self.metrics.in_flight.dec()
                if lease is not None:
                    lease.release()

    async def complete(self, req: dict, rec: dict, order: list[int], t0: float) -> Response:
        for idx in order:
            model = self.models[idx]
            params = self.params_for(model, req["params"])
            started = time.perf_counter()
            try:
                completion = await asyncio.wait_for(
                    self.in_thread(self.backends[model].complete, req["messages"], params),
                    self.settings["upstream_timeout_s"],
                )
                text = completion.text
                if not isinstance(text, str):
                    raise RuntimeError("backend returned no text")
            except Exception as exc:
                self.attempt_failed(rec, model, exc)
                continue
            upstream_s = time.perf_counter() - started
            self.served(rec, model, completion, upstream_s)
            if self.settings.get("log_text"):
                rec["text"] = text
            self.finish(rec, 200, t0)
            body = completion_body(
                rec["request_id"],
                model,
                text,
                rec["finish_reason"] or "stop",
                usage_of(rec),
                self.codyn_info(rec),
            )
            return JSONResponse(body, headers=self.headers(rec))
        raise self.all_failed(rec)

    async def start_stream(
        self, req: dict, rec: dict, order: list[int], lease: Lease, t0: float
    ) -> Response:
        """Find a model that yields a first chunk (falling back before any byte is sent)."""
        timeout = self.settings["upstream_timeout_s"]
        for idx in order:
            model = self.models[idx]
            params = self.params_for(model, req["params"])
            started = time.perf_counter()
            iterator = None
            try:
                iterator = await asyncio.wait_for(
                    self.in_thread(
                        lambda m=model, p=params: iter(self.backends[m].stream(req["messages"], p))
                    ),
                    timeout,
                )
                first = await asyncio.wait_for(self.in_thread(_next_chunk, iterator), timeout)
            except Exception as exc:
                self.attempt_failed(rec, model, exc)
                self._close_quietly(iterator)
                continue
            return self.stream_response(req, rec, model, iterator, first, started, lease, t0)
        raise self.all_failed(rec)

    @staticmethod
    def _close_quietly(iterator) -> None:
        close = getattr(iterator, "close", None)
        if close is not None:
            try:
                close()
            except Exception:  # a generator still running in a timed-out thread cannot be closed
                pass

    def stream_response(self, req, rec, model, iterator, first, started, lease, t0) -> Response:
        created = int(time.time())
        pieces: list[str] = []
        state = {"status": 200, "error": None, "completion": None}

        def event(delta: dict, finish=None, usage=None, with_choice=True) -> str:
            chunk = {
                "id": rec["request_id"],
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
                if with_choice
                else [],
            }
            if usage is not None or (req["include_usage"] and not with_choice):
                chunk["usage"] = usage
            return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

        async def body():
            item, value = first
            yield event({"role": "assistant", "content": ""})
            timeout = self.settings["upstream_timeout_s"]
            deadline = t0 + self.settings["request_timeout_s"]
            try:
                while item is not _END:
                    if not isinstance(item, str):
                        raise RuntimeError(f"backend streamed a {type(item).__name__}, not text")
                    if item:
                        pieces.append(item)
                        yield event({"content": item})
                    remaining = deadline - time.perf_counter()
                    if remaining <= 0:
                        raise TimeoutError("request timeout")
                    item, value = await asyncio.wait_for(
                        self.in_thread(_next_chunk, iterator), min(timeout, remaining)
                    )
            except Exception as exc:
                reason = failure_reason(exc)
                state["status"], state["error"] = (
                    502,
                    f"stream broke after it started: {reason}: {str(exc)[:300]}",
                )
                self.metrics.failures.labels(model, reason).inc()
                err = {
                    "error": {
                        "message": state["error"],
                        "type": "server_error",
                        "param": None,
                        "code": "upstream_error",
                    }
                }
                yield f"data: {json.dumps(err)}\n\n"
                yield "data: [DONE]\n\n"
                return
            state["completion"] = value
            finish_reason = getattr(value, "finish_reason", None) or "stop"
            rec["finish_reason"] = finish_reason
            yield event({}, finish=finish_reason)
            if req["include_usage"]:
                usage = None
                tin, tout = (
                    getattr(value, "input_tokens", None),
                    getattr(value, "output_tokens", None),
                )
                if isinstance(tin, int) and isinstance(tout, int):
                    usage = {
                        "prompt_tokens": tin,
                        "completion_tokens": tout,
                        "total_tokens": tin + tout,
                    }
                yield event({}, usage=usage, with_choice=False)
            yield "data: [DONE]\n\n"

        done = {"flag": False}

        async def cleanup():
            if done["flag"]:
                return
            done["flag"] = True
            lease.release()
            self.metrics.in_flight.dec()
            self._close_quietly(iterator)
            status = state["status"]
            if status == 200 and state["completion"] is None and rec["finish_reason"] is None:
                status, state["error"] = 499, "client closed the stream"
            self.served(rec, model, state["completion"], time.perf_counter() - started)
            if self.settings.get("log_text"):
                rec["text"] = "".join(pieces)
            self.finish(rec, status, t0, state["error"])

        rec["model"], rec["simulated"] = model, self.simulated[model]
        headers = self.headers(rec)
        headers["cache-control"] = "no-cache"
        return GuardedStream(body(), cleanup, media_type="text/event-stream", headers=headers)

    def model_list(self) -> dict:
        names = [AUTO_MODEL, *([CASCADE_MODEL] if self.cascade else []), *self.models]
        return {
            "object": "list",
            "data": [
                {"id": n, "object": "model", "created": self.created, "owned_by": "codyn"}
                for n in names
            ],
        }

    def health(self) -> dict:
        return {
            "status": "ok",
            "router": getattr(self.router, "name", None) or type(self.router).__name__,
            "models": self.models,
            "cost_weight": self.auto_weight,
            "cost_weight_source": self.auto_source,
            "simulated": any(self.simulated.values()),
            "auth": bool(self.token),
            "cascade": self.cascade.describe() if self.cascade else None,
        }


def create_app(
    router, config: dict, *, settings: dict | None = None, backends: dict | None = None
) -> FastAPI:
    """The FastAPI app serving ``router`` over the portfolio in ``config``.

    ``settings`` overrides ``config['serve']`` (defaults from the schema); ``backends`` maps
    model name -> backend (default: :func:`codyn.backends.make_backend` for each router model).
    """
    service = RoutingService(router, config, settings=settings, backends=backends)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        # The cascade's sandbox workers start with the server (not on a user's request) and
        # end with it; without a lifespan (ASGI tests) they start on first use.
        if service.cascade:
            await asyncio.to_thread(service.cascade.start)
        try:
            yield
        finally:
            if service.cascade:
                service.cascade.close()

    app = FastAPI(
        title="codyn routing server",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.service = service

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        service.metrics.requests.labels(
            ENDPOINTS.get(request.url.path, "other"), str(exc.status)
        ).inc()
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        service.metrics.requests.labels("other", str(exc.status_code)).inc()
        return error_response(
            exc.status_code, f"{request.method} {request.url.path}: {exc.detail}", code=code
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unexpected error")
        service.metrics.requests.labels("other", "500").inc()
        return error_response(500, f"internal error: {type(exc).__name__}", "server_error")

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        try:
            return await service.chat(request)
        except (ApiError, StarletteHTTPException):
            raise
        except Exception as exc:
            # Answered here, not by the app-wide handler: Starlette re-raises what reaches
            # that one, and uvicorn then drops the client's keep-alive connection.
            log.exception("unexpected error")
            service.metrics.requests.labels("chat", "500").inc()
            return error_response(500, f"internal error: {type(exc).__name__}", "server_error")

    @app.get("/v1/models")
    async def models(request: Request):
        service.check_auth(request)
        service.metrics.requests.labels("models", "200").inc()
        return service.model_list()

    @app.get("/v1/models/{name:path}")
    async def model(name: str, request: Request):
        service.check_auth(request)
        found = [m for m in service.model_list()["data"] if m["id"] == name]
        if not found and name.startswith(AUTO_MODEL + ":"):
            service.resolve_model(name)
            found = [
                {"id": name, "object": "model", "created": service.created, "owned_by": "codyn"}
            ]
        if not found:
            raise ApiError(
                404, f"the model {name!r} does not exist", code="model_not_found", param="model"
            )
        return found[0]

    @app.get("/health")
    async def health():
        return service.health()

    @app.get("/metrics")
    async def metrics(request: Request):
        service.check_auth(request)
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


# --- CLI --------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="codyn serve",
        description="OpenAI-compatible routing server: POST /v1/chat/completions, GET /v1/models, "
        "GET /health, GET /metrics.",
        epilog="Request model 'codyn-auto' routes with the cost weight router.json records for "
        "serve.target (chosen out-of-fold on the training split) or serve.cost_weight when set, "
        "'codyn-auto:0.25' with cost weight 0.25, a portfolio model name goes to that model "
        "without routing, 'codyn-cascade' runs the verified cascade of serve.cascade. Limits, "
        "timeouts, auth (serve.auth_token_env) and the call log: the 'serve' config section.",
    )
    p.add_argument("--router", required=True, help="router folder (with router.json)")
    p.add_argument(
        "--config", required=True, nargs="+", help="config file(s) defining the router's portfolio"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (0 = any free port)")
    p.add_argument("--port-file", help="write the port actually bound to this file")
    p.add_argument("--cost-weight", type=float, help="overrides serve.cost_weight")
    p.add_argument("--target", help="overrides serve.target (parity, budget-B, share-P)")
    p.add_argument("--log-path", help="overrides serve.log_path")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket for uvicorn (port 0 = any free port)."""
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted connections only for
    # sockets that say so, and without it Nagle + delayed ACK add ~40 ms to every response.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 0 <= args.port <= 65535:
        print(f"codyn serve: option --port: {args.port} is not a port (0-65535)", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        from codyn.config import load_config
        from codyn.routers import load_router

        overrides: dict = {}
        if args.cost_weight is not None:
            overrides.setdefault("serve", {})["cost_weight"] = args.cost_weight
        if args.log_path is not None:
            overrides.setdefault("serve", {})["log_path"] = args.log_path
        if args.target is not None:
            overrides.setdefault("serve", {})["target"] = args.target
        config = load_config(*args.config, overrides=overrides)
        router = load_router(args.router)
        settings = serve_settings(config)
        tuned = tune_router(
            router, threads=settings["router_threads"], quantize=settings["quantize_router"]
        )
        app = create_app(router, config)
        # Load weights and caches now, not on the first user's request.
        app.state.service.router.predict_scores(["warm-up"])
    except CodynError as exc:
        print(f"codyn serve: {exc}", file=sys.stderr)
        return 1

    import uvicorn

    try:
        sock = listening_socket(args.host, args.port)
    except OSError as exc:
        print(f"codyn serve: cannot listen on {args.host}:{args.port} ({exc})", file=sys.stderr)
        return 1
    port = sock.getsockname()[1]
    service = app.state.service
    print(
        f"codyn serve: http://{args.host}:{port}/v1  models {service.models}"
        f"{'  (SIMULATED backends)' if any(service.simulated.values()) else ''}"
        f"{'  auth on' if service.token else ''}"
        f"\ncodyn serve: codyn-auto cost weight {service.auto_weight:.4g} ({service.auto_source})"
        f"{'  router: ' + ', '.join(tuned) if tuned else ''}"
        f"{'  cascade: ' + service.cascade.policy.name if service.cascade else ''}",
        file=sys.stderr,
        flush=True,
    )
    server = uvicorn.Server(
        uvicorn.Config(app, log_level=args.log_level, access_log=False, timeout_graceful_shutdown=5)
    )
    if args.port_file:
        write_text(args.port_file, f"{port}\n")
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
