"""Server-sent events: a chat completion as ``chat.completion.chunk`` events.

A routed stream is relayed piece by piece from the upstream (:func:`relay`); a buffered
answer (the cascade's accepted one) is cut into pieces (:func:`replay`). A stream that
breaks after it started ends with an error event and ``[DONE]``.
"""

from __future__ import annotations

import asyncio
import time

from fastapi.responses import StreamingResponse

from codyn.serve.models import ChatCompletionChunk, ChunkChoice, ErrorBody, ErrorDetail, Usage, sse
from codyn.serve.upstream import END, failure_reason

DONE = "data: [DONE]\n\n"
STREAM_PIECE_CHARS = 64  # size of the content chunks of a buffered answer


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


class Chunks:
    """The chunk events of one answer (one id, model and creation time)."""

    def __init__(self, request_id: str, model: str):
        self.request_id, self.model, self.created = request_id, model, int(time.time())

    def event(self, delta: dict | None, finish: str | None = None, **extra) -> str:
        """A chunk with one choice, or with none when ``delta`` is None (the usage chunk)."""
        choices = [] if delta is None else [ChunkChoice(delta=delta, finish_reason=finish)]
        chunk = ChatCompletionChunk(
            id=self.request_id, created=self.created, model=self.model, choices=choices, **extra
        )
        return sse(chunk.model_dump())


def usage_of(completion) -> dict | None:
    return Usage.of(
        getattr(completion, "input_tokens", None), getattr(completion, "output_tokens", None)
    )


def error_event(message: str) -> str:
    detail = ErrorDetail(message=message, type="server_error", code="upstream_error")
    return sse(ErrorBody(error=detail).model_dump())


def replay(chunks: Chunks, text: str, finish: str, usage, include_usage: bool, info: dict):
    """A whole answer as events (the last chunk with a choice carries ``codyn``)."""
    yield chunks.event({"role": "assistant", "content": ""})
    for start in range(0, len(text), STREAM_PIECE_CHARS):
        yield chunks.event({"content": text[start : start + STREAM_PIECE_CHARS]})
    yield chunks.event({}, finish, codyn=info)
    if include_usage:
        yield chunks.event(None, usage=usage)
    yield DONE


class Relay:
    """An upstream stream relayed as events; ``state`` says how it ended (for the call log)."""

    def __init__(self, chunks: Chunks, stream, first, *, timeout: float, deadline: float):
        self.chunks, self.stream, self.first = chunks, stream, first
        self.timeout, self.deadline = timeout, deadline
        self.pieces: list[str] = []
        self.status, self.error, self.completion = 200, None, None
        self.finish_reason: str | None = None
        self.failure_reason: str | None = None

    async def _pieces(self):
        item, value = self.first
        while item is not END:
            if not isinstance(item, str):
                raise RuntimeError(f"backend streamed a {type(item).__name__}, not text")
            if item:
                self.pieces.append(item)
                yield item
            remaining = self.deadline - time.perf_counter()
            if remaining <= 0:
                raise TimeoutError("request timeout")
            item, value = await self.stream.next(min(self.timeout, remaining))
        self.completion = value

    async def events(self, include_usage: bool):
        yield self.chunks.event({"role": "assistant", "content": ""})
        try:
            async for piece in self._pieces():
                yield self.chunks.event({"content": piece})
        except Exception as exc:
            self.failure_reason = failure_reason(exc)
            self.status = 502
            self.error = f"stream broke after it started: {self.failure_reason}: {str(exc)[:300]}"
            yield error_event(self.error)
            yield DONE
            return
        self.finish_reason = getattr(self.completion, "finish_reason", None) or "stop"
        yield self.chunks.event({}, self.finish_reason)
        if include_usage:
            yield self.chunks.event(None, usage=usage_of(self.completion))
        yield DONE
