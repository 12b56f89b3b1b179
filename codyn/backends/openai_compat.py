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

    @property
    def client(self) -> openai.OpenAI:
        with self._lock:
            if self._client is None:
                key = self._api_key()
                self._headers = {**_ACCOUNT_HEADERS, **({} if key else _UNKEYED_HEADERS)}
                self._client = openai.OpenAI(
                    base_url=self.base_url,
                    # The SDK insists on a key; without one the header is omitted per request.
                    api_key=key or "unused",
                    max_retries=int(self.generation_cfg.get("max_retries", 6)),
                    timeout=float(self.generation_cfg.get("timeout_s", 120)),
                )
            return self._client

    def _create(self, messages: list[dict], params: dict, **stream_args):
        check_messages(messages)
        client = self.client
        try:
            # Model params (stop, top_k, ...) go through as they are: servers differ in
            # which they accept, and the SDK's keyword list is OpenAI's.
            return client.chat.completions.create(
                model=self.model_id,
                messages=messages,
                extra_body=dict(params),
                extra_headers=self._headers,
                **stream_args,
            )
        except openai.OpenAIError as exc:
            raise backend_error(exc) from None

    def complete(self, messages: list[dict], params: dict, task: dict | None = None) -> Completion:
        started = time.perf_counter()
        data = self._create(messages, params)
        latency = time.perf_counter() - started
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

    def _open_stream(self, messages: list[dict], params: dict):
        if self.stream_usage:
            try:
                return self._create(
                    messages, params, stream=True, stream_options={"include_usage": True}
                )
            except BackendError as exc:
                if exc.kind != "refused" or "stream_options" not in str(exc):
                    raise
                self.stream_usage = False
        return self._create(messages, params, stream=True)

    def stream(self, messages: list[dict], params: dict, task: dict | None = None) -> Iterator[str]:
        """Text pieces; returns a Completion with the upstream's usage and finish reason
        (no token counts from a server that sends no usage chunk)."""
        started = time.perf_counter()
        pieces: list[str] = []
        usage, finish = None, None
        chunks = self._open_stream(messages, params)
        try:
            with chunks:
                for chunk in chunks:
                    usage = chunk.usage or usage
                    for choice in chunk.choices or []:
                        finish = choice.finish_reason or finish
                        delta = choice.delta.content if choice.delta else None
                        if delta:
                            pieces.append(delta)
                            yield delta
        except openai.OpenAIError as exc:
            raise backend_error(exc) from None
        except ValueError as exc:  # a data: line that is not JSON
            raise BackendError(f"bad stream chunk: {exc}", kind="server") from None
        in_tok, out_tok = _tokens(usage)
        return Completion(
            text="".join(pieces),
            input_tokens=in_tok,
            output_tokens=out_tok,
            latency_s=time.perf_counter() - started,
            cost_usd=self.cost(in_tok, out_tok),
            model_id=self.model_id,
            finish_reason=finish,
        )

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def _tokens(usage) -> tuple[int | None, int | None]:
    if usage is None:
        return None, None
    return getattr(usage, "prompt_tokens", None), getattr(usage, "completion_tokens", None)
