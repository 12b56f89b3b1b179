"""The upstream caller: the portfolio's backends behind one timeout and one fallback order.

Backends are used through :func:`codyn.backends.make_backend` and their ``complete`` /
``stream`` interface; those block, so they run in a thread pool, and a call past
``upstream_timeout_s`` is abandoned (its thread is freed by the backend's own timeout, set
to the same value). A backend may also offer the awaitable form of that interface:
``acomplete`` (a coroutine taking and returning what ``complete`` does) and ``astream`` (an
async iterator of text pieces whose last item is the :class:`~codyn.backends.base.Completion`).
Those run on the event loop, so a hung upstream is cancelled at the timeout and holds no
worker at all. The ``openai`` backend offers them (on the SDK's async client); Bedrock,
Hugging Face and the offline backends run in the pool.

When a model fails (backend error, no text, timeout) the next model of the order is asked;
a stream can fall back only before its first piece.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import logging
import time

from codyn.backends.base import effective_params
from codyn.serve.models import ApiError

log = logging.getLogger("codyn.serve")

END = object()  # a stream's end, paired with its Completion


def failure_reason(exc: BaseException) -> str:
    """A short label for a failed upstream attempt (metrics label, log)."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    return str(getattr(exc, "kind", "") or type(exc).__name__)


def _next_chunk(iterator):
    """next() for use in a thread: (piece, None), or (END, the generator's return value)."""
    try:
        return next(iterator), None
    except StopIteration as stop:
        return END, stop.value


class UpstreamStream:
    """One model's answer as it streams: ``await next(timeout)`` -> (piece, None) or
    (END, Completion or None)."""

    def __init__(self, source, pool):
        self.pool = pool
        self.is_async = hasattr(source, "__anext__")
        self.source = source

    async def next(self, timeout: float):
        if not self.is_async:
            loop = asyncio.get_running_loop()
            call = loop.run_in_executor(self.pool, _next_chunk, self.source)
            return await asyncio.wait_for(call, timeout)
        try:
            item = await asyncio.wait_for(anext(self.source), timeout)
        except StopAsyncIteration:
            return END, None
        if isinstance(item, str):
            return item, None
        return END, item  # the closing Completion

    async def aclose(self) -> None:
        if self.is_async:
            with contextlib.suppress(Exception):
                await self.source.aclose()
        else:
            close = getattr(self.source, "close", None)
            if close is not None:
                # a generator still running in a timed-out thread cannot be closed
                with contextlib.suppress(Exception):
                    close()


class Upstream:
    """The backends of the served models, with the server's timeout and fallback."""

    def __init__(self, model_cfg: dict, config: dict, settings: dict, metrics, backends=None):
        self.model_cfg = model_cfg
        self.generation = dict(config.get("generation") or {})
        self.timeout = settings["upstream_timeout_s"]
        self.metrics = metrics
        if backends is None:
            backends = self._make_backends(config, settings)
        self.backends = backends
        self.pool = concurrent.futures.ThreadPoolExecutor(
            settings["max_concurrency"] + 4, thread_name_prefix="codyn-upstream"
        )

    def _make_backends(self, config: dict, settings: dict) -> dict:
        from codyn.backends import make_backend

        generation = dict(self.generation)
        # The server falls back to the next-ranked model instead of retrying one for long.
        generation["timeout_s"] = settings["upstream_timeout_s"]
        generation["max_retries"] = settings["upstream_retries"]
        generation["concurrency"] = settings["max_concurrency"]
        seed = int(config.get("seed", 0))
        return {m: make_backend(m, cfg, generation, seed=seed) for m, cfg in self.model_cfg.items()}

    def params_for(self, model: str, request_params: dict) -> dict:
        """The config's parameters for ``model`` with the request's over them."""
        return {**effective_params(self.model_cfg[model], self.generation), **request_params}

    async def ask(self, model: str, req):
        """One model's whole answer: (Completion, seconds); raises on failure or timeout."""
        backend, params = self.backends[model], self.params_for(model, req.params)
        started = time.perf_counter()
        if inspect.iscoroutinefunction(getattr(backend, "acomplete", None)):
            call = backend.acomplete(req.chat, params)
        else:
            call = asyncio.get_running_loop().run_in_executor(
                self.pool, backend.complete, req.chat, params
            )
        completion = await asyncio.wait_for(call, self.timeout)
        if not isinstance(getattr(completion, "text", None), str):
            raise RuntimeError("backend returned no text")
        return completion, time.perf_counter() - started

    async def open_stream(self, model: str, req) -> tuple[UpstreamStream, tuple]:
        """A model's stream and its first item; raises (after closing it) on failure."""
        backend, params = self.backends[model], self.params_for(model, req.params)
        stream = None
        try:
            if hasattr(backend, "astream"):
                stream = UpstreamStream(aiter(backend.astream(req.chat, params)), self.pool)
            else:
                loop = asyncio.get_running_loop()
                opened = loop.run_in_executor(
                    self.pool, lambda: iter(backend.stream(req.chat, params))
                )
                stream = UpstreamStream(await asyncio.wait_for(opened, self.timeout), self.pool)
            return stream, await stream.next(self.timeout)
        except BaseException:
            if stream is not None:
                await stream.aclose()
            raise

    async def first_answer(self, order: list[str], req, rec):
        """The first model of ``order`` that answers: (model, Completion, seconds)."""
        for model in order:
            try:
                completion, seconds = await self.ask(model, req)
            except Exception as exc:
                self.failed(rec, model, exc)
                continue
            return model, completion, seconds
        raise self.all_failed(rec)

    async def first_stream(self, order: list[str], req, rec):
        """The first model of ``order`` that streams a first item: (model, stream, first,
        start time)."""
        for model in order:
            started = time.perf_counter()
            try:
                stream, first = await self.open_stream(model, req)
            except Exception as exc:
                self.failed(rec, model, exc)
                continue
            return model, stream, first, started
        raise self.all_failed(rec)

    def failed(self, rec, model: str, exc: BaseException) -> None:
        """Note a failed attempt in the call record and the metrics."""
        reason = failure_reason(exc)
        if isinstance(exc, TimeoutError):
            message = f"timeout: no answer within {self.timeout} s"
        else:
            message = f"{type(exc).__name__}: {exc}"
        rec.attempts.append({"model": model, "error": message[:300]})
        self.metrics.failures.labels(model, reason).inc()
        log.warning("upstream %s failed (%s); falling back", model, reason)

    @staticmethod
    def all_failed(rec) -> ApiError:
        detail = "; ".join(f"{a['model']}: {a['error']}" for a in rec.attempts)
        return ApiError(
            502, f"every model tried failed ({detail})", "server_error", code="upstream_error"
        )

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
