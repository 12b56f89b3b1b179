"""Any OpenAI-compatible chat-completions server (vLLM, Ollama, TGI, ...) by base URL.

Requests go through the ``openai`` SDK: ``base_url`` is the API root as the SDK takes
it (``http://host:8000/v1``). The SDK is the only retry layer: a request is sent at
most ``1 + generation.max_retries`` times, on connection errors, timeouts, 408, 409,
429 and 5xx, waiting what the server's ``Retry-After`` / ``retry-after-ms`` asks
(up to two minutes) or else its exponential backoff (0.5 s doubling, at most 8 s).

The API key, if any, is read from the environment variable named by ``api_key_env``
and only ever put in the Authorization header: never in errors, logs or records.
Without ``api_key_env`` no Authorization header is sent, and ``OPENAI_API_KEY`` (or
the organisation / project variables) of the environment never reach the server.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator

import openai

from codyn.backends.base import Backend, BackendError, Completion, check_messages
from codyn.errors import ConfigError

# The SDK would otherwise fill these from OPENAI_* variables meant for api.openai.com.
_UNKEYED_HEADERS = {"Authorization": openai.omit}
_ACCOUNT_HEADERS = {"OpenAI-Organization": openai.omit, "OpenAI-Project": openai.omit}


def _status_error(exc: openai.APIStatusError) -> BackendError:
    status = exc.status_code
    if status == 429:
        return BackendError("HTTP 429", kind="throttled", retryable=True)
    if status in (408, 504):
        return BackendError(f"HTTP {status}", kind="timeout", retryable=True)
    if status >= 500:
        return BackendError(f"HTTP {status}", kind="server", retryable=True)
    if status in (401, 403):
        return BackendError(f"HTTP {status}", kind="access_denied", retryable=False)
    if status == 404:
        return BackendError(f"HTTP {status}", kind="not_found", retryable=False)
    # 400/422: the server refused this prompt (too long, bad parameters, policy).
    text = exc.response.text[:200]
    return BackendError(f"HTTP {status}: {text}", kind="refused", retryable=False)


def backend_error(exc: openai.OpenAIError) -> BackendError:
    """codyn's error for an SDK error (raised once the SDK's own retries are spent).
    ``retryable`` says whether a later run may succeed; nothing here asks again."""
    if isinstance(exc, openai.APITimeoutError):
        return BackendError("request timed out", kind="timeout", retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        cause = type(exc.__cause__).__name__ if exc.__cause__ else "connection error"
        return BackendError(cause, kind="connection", retryable=True)
    if isinstance(exc, openai.APIStatusError):
        return _status_error(exc)
    # A body that is not a chat completion, or an error event inside a stream.
    return BackendError(f"bad response: {str(exc)[:200]}", kind="server", retryable=True)


class OpenAICompatBackend(Backend):
    kind = "openai"

    def __init__(self, model_name: str, model_cfg: dict, generation_cfg: dict):
        super().__init__(model_name, model_cfg, generation_cfg)
        if not model_cfg.get("base_url"):
            raise ConfigError(f"models.{model_name}.base_url", "openai backend needs a base_url")
        if not self.model_id:
            raise ConfigError(
                f"models.{model_name}.model_id", "openai backend needs the served model name"
            )
        self.base_url = str(model_cfg["base_url"]).rstrip("/")
        self._client: openai.OpenAI | None = None
        self._aclient: tuple[asyncio.AbstractEventLoop, openai.AsyncOpenAI] | None = None
        self._headers: dict = {}
        self._lock = threading.Lock()
        # Cleared when the server rejects stream_options (older servers): streams then
        # go without it and report no usage, as they did before the option existed.
        self.stream_usage = True

    def _api_key(self) -> str | None:
        env = self.model_cfg.get("api_key_env")
        if not env:
            return None
        key = os.environ.get(env)
        if not key:
            raise ConfigError(
                f"models.{self.model_name}.api_key_env", f"environment variable {env} is not set"
            )
        return key

    def _client_args(self) -> dict:
        key = self._api_key()
        self._headers = {**_ACCOUNT_HEADERS, **({} if key else _UNKEYED_HEADERS)}
        return dict(
            base_url=self.base_url,
            # The SDK insists on a key; without one the header is omitted per request.
            api_key=key or "unused",
            max_retries=int(self.generation_cfg.get("max_retries", 6)),
            timeout=float(self.generation_cfg.get("timeout_s", 120)),
        )

    @property
    def client(self) -> openai.OpenAI:
        with self._lock:
            if self._client is None:
                self._client = openai.OpenAI(**self._client_args())
            return self._client

    def _async_client(self) -> openai.AsyncOpenAI:
        # An async client's connections belong to the event loop that opened them.
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._aclient is None or self._aclient[0] is not loop:
                self._aclient = (loop, openai.AsyncOpenAI(**self._client_args()))
            return self._aclient[1]

    def _request(self, messages: list[dict], params: dict, **stream_args) -> dict:
        check_messages(messages)
        # Model params (stop, top_k, ...) go through as they are: servers differ in
        # which they accept, and the SDK's keyword list is OpenAI's.
        return dict(
            model=self.model_id,
            messages=messages,
            extra_body=dict(params),
            extra_headers=self._headers,
            **stream_args,
        )

    def _create(self, messages: list[dict], params: dict, **stream_args):
        client = self.client
        try:
            return client.chat.completions.create(**self._request(messages, params, **stream_args))
        except openai.OpenAIError as exc:
            raise backend_error(exc) from None

    async def _acreate(self, messages: list[dict], params: dict, **stream_args):
        client = self._async_client()
        try:
            return await client.chat.completions.create(
                **self._request(messages, params, **stream_args)
            )
        except openai.OpenAIError as exc:
            raise backend_error(exc) from None

    def complete(self, messages: list[dict], params: dict, task: dict | None = None) -> Completion:
        started = time.perf_counter()
        data = self._create(messages, params)
        return self._completion(data, time.perf_counter() - started)

    def _completion(self, data, latency: float) -> Completion:
        # A body that is not JSON comes back as text; one without choices, unvalidated.
        choices = getattr(data, "choices", None)
        choice = choices[0] if isinstance(choices, list) and choices else None
        if choice is None or getattr(choice, "message", None) is None:
            raise BackendError("response has no choices[0].message", kind="server")
        if choice.finish_reason == "content_filter":
            raise BackendError("finish_reason content_filter", kind="refused")
        in_tok, out_tok = _tokens(data.usage)
        return Completion(
            text=choice.message.content or "",
            input_tokens=in_tok,
            output_tokens=out_tok,
            latency_s=latency,
            cost_usd=self.cost(in_tok, out_tok),
            model_id=self.model_id,
            finish_reason=choice.finish_reason,
        )

    def _stream_args(self) -> dict:
        return {
            "stream": True,
            **({"stream_options": {"include_usage": True}} if self.stream_usage else {}),
        }

    def _usage_refused(self, exc: BackendError) -> bool:
        """True (and streams stop asking for usage) when the server rejects stream_options."""
        if not self.stream_usage or exc.kind != "refused" or "stream_options" not in str(exc):
            return False
        self.stream_usage = False
        return True

    def _open_stream(self, messages: list[dict], params: dict):
        try:
            return self._create(messages, params, **self._stream_args())
        except BackendError as exc:
            if not self._usage_refused(exc):
                raise
        return self._create(messages, params, **self._stream_args())

    def stream(self, messages: list[dict], params: dict, task: dict | None = None) -> Iterator[str]:
        """Text pieces; returns a Completion with the upstream's usage and finish reason
        (no token counts from a server that sends no usage chunk)."""
        state = _StreamState(self)
        chunks = self._open_stream(messages, params)
        try:
            with chunks:
                for chunk in chunks:
                    yield from state.feed(chunk)
        except openai.OpenAIError as exc:
            raise backend_error(exc) from None
        except ValueError as exc:  # a data: line that is not JSON
            raise BackendError(f"bad stream chunk: {exc}", kind="server") from None
        return state.completion()

    async def acomplete(self, messages: list[dict], params: dict) -> Completion:
        """:meth:`complete` on the event loop (``codyn serve`` cancels it at its timeout)."""
        started = time.perf_counter()
        data = await self._acreate(messages, params)
        return self._completion(data, time.perf_counter() - started)

    async def astream(self, messages: list[dict], params: dict):
        """:meth:`stream` on the event loop: text pieces, then the Completion as last item."""
        state = _StreamState(self)
        try:
            chunks = await self._acreate(messages, params, **self._stream_args())
        except BackendError as exc:
            if not self._usage_refused(exc):
                raise
            chunks = await self._acreate(messages, params, **self._stream_args())
        try:
            async with chunks:
                async for chunk in chunks:
                    for piece in state.feed(chunk):
                        yield piece
        except openai.OpenAIError as exc:
            raise backend_error(exc) from None
        except ValueError as exc:
            raise BackendError(f"bad stream chunk: {exc}", kind="server") from None
        yield state.completion()

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
            # An async client is dropped with its loop; closing it needs that loop running.
            self._aclient = None


def _tokens(usage) -> tuple[int | None, int | None]:
    if usage is None:
        return None, None
    return getattr(usage, "prompt_tokens", None), getattr(usage, "completion_tokens", None)


class _StreamState:
    """What a stream has said so far: its text, usage and finish reason."""

    def __init__(self, backend: OpenAICompatBackend):
        self.backend = backend
        self.started = time.perf_counter()
        self.pieces: list[str] = []
        self.usage = None
        self.finish = None

    def feed(self, chunk) -> list[str]:
        self.usage = chunk.usage or self.usage
        new = []
        for choice in chunk.choices or []:
            self.finish = choice.finish_reason or self.finish
            delta = choice.delta.content if choice.delta else None
            if delta:
                new.append(delta)
        self.pieces += new
        return new

    def completion(self) -> Completion:
        in_tok, out_tok = _tokens(self.usage)
        return Completion(
            text="".join(self.pieces),
            input_tokens=in_tok,
            output_tokens=out_tok,
            latency_s=time.perf_counter() - self.started,
            cost_usd=self.backend.cost(in_tok, out_tok),
            model_id=self.backend.model_id,
            finish_reason=self.finish,
        )
