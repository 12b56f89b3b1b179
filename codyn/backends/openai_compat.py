"""Any OpenAI-compatible chat-completions server (vLLM, Ollama, TGI, ...) by base URL.

``base_url`` is the API root as the OpenAI SDK takes it (``http://host:8000/v1``);
requests go to ``{base_url}/chat/completions``. The API key, if any, is read from
the environment variable named by ``api_key_env`` and only ever put in the
Authorization header: never in errors, logs or records.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterator

import httpx

from codyn.backends.base import Backend, BackendError, Completion, check_messages, with_backoff
from codyn.errors import ConfigError


def _status_error(response: httpx.Response) -> BackendError:
    status = response.status_code
    if status == 429:
        err = BackendError("HTTP 429", kind="throttled", retryable=True)
        retry_after = response.headers.get("retry-after")
        try:
            err.retry_after = min(float(retry_after), 60.0) if retry_after else None
        except ValueError:
            err.retry_after = None
        return err
    if status in (408, 504):
        return BackendError(f"HTTP {status}", kind="timeout", retryable=True)
    if status >= 500:
        return BackendError(f"HTTP {status}", kind="server", retryable=True)
    if status in (401, 403):
        return BackendError(f"HTTP {status}", kind="access_denied", retryable=False)
    if status == 404:
        return BackendError(f"HTTP {status}", kind="not_found", retryable=False)
    # 400/422: the server refused this prompt (too long, bad parameters, policy).
    return BackendError(f"HTTP {status}: {response.text[:200]}", kind="refused", retryable=False)


class OpenAICompatBackend(Backend):
    kind = "openai"

    def __init__(
        self,
        model_name: str,
        model_cfg: dict,
        generation_cfg: dict,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ):
        super().__init__(model_name, model_cfg, generation_cfg)
        if not model_cfg.get("base_url"):
            raise ConfigError(f"models.{model_name}.base_url", "openai backend needs a base_url")
        if not self.model_id:
            raise ConfigError(
                f"models.{model_name}.model_id", "openai backend needs the served model name"
            )
        self.base_url = str(model_cfg["base_url"]).rstrip("/")
        self._sleep = sleep
        self._rng = random.Random()
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def _headers(self) -> dict:
        headers = {"Content-Type": "application/json"}
        env = self.model_cfg.get("api_key_env")
        if env:
            key = os.environ.get(env)
            if not key:
                raise ConfigError(
                    f"models.{self.model_name}.api_key_env",
                    f"environment variable {env} is not set",
                )
            headers["Authorization"] = f"Bearer {key}"
        return headers

    @property
    def client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                conc = int(self.generation_cfg.get("concurrency", 4))
                self._client = httpx.Client(
                    base_url=self.base_url,
                    headers=self._headers(),
                    timeout=float(self.generation_cfg.get("timeout_s", 120)) or None,
                    limits=httpx.Limits(
                        max_connections=max(conc, 1), max_keepalive_connections=max(conc, 1)
                    ),
                )
            return self._client

    def body(self, messages: list[dict], params: dict, stream: bool = False) -> dict:
        check_messages(messages)
        body = {"model": self.model_id, "messages": messages, **params}
        if stream:
            body["stream"] = True
            # Ask for the final usage chunk, as OpenAI, vLLM and Ollama send it.
            body["stream_options"] = {"include_usage": True}
        return body

    def _post_once(self, body: dict) -> dict:
        try:
            response = self.client.post("/chat/completions", json=body)
        except httpx.TimeoutException:
            raise BackendError("request timed out", kind="timeout", retryable=True) from None
        except httpx.TransportError as exc:
            raise BackendError(type(exc).__name__, kind="connection", retryable=True) from None
        if response.status_code != 200:
            raise _status_error(response)
        try:
            return response.json()
        except json.JSONDecodeError:
            raise BackendError("response is not JSON", kind="server", retryable=True) from None

    def complete(self, messages: list[dict], params: dict, task: dict | None = None) -> Completion:
        body = self.body(messages, params)
        started = time.perf_counter()
        data = with_backoff(
            lambda: self._post_once(body),
            max_retries=int(self.generation_cfg.get("max_retries", 6)),
            sleep=self._sleep,
            rng=self._rng,
        )
        latency = time.perf_counter() - started
        try:
            choice = data["choices"][0]
            text = choice["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise BackendError("response has no choices[0].message", kind="server") from None
        usage = data.get("usage") or {}
        in_tok, out_tok = usage.get("prompt_tokens"), usage.get("completion_tokens")
        finish = choice.get("finish_reason")
        if finish == "content_filter":
            raise BackendError("finish_reason content_filter", kind="refused")
        return Completion(
            text=text,
            input_tokens=in_tok,
            output_tokens=out_tok,
            latency_s=latency,
            cost_usd=self.cost(in_tok, out_tok),
            model_id=self.model_id,
            finish_reason=finish,
        )

    def stream(self, messages: list[dict], params: dict, task: dict | None = None) -> Iterator[str]:
        """Text pieces; returns a Completion with the upstream's usage and finish reason."""
        body = self.body(messages, params, stream=True)
        started = time.perf_counter()
        pieces: list[str] = []
        usage: dict = {}
        finish = None

        def done() -> Completion:
            in_tok, out_tok = usage.get("prompt_tokens"), usage.get("completion_tokens")
            return Completion(
                text="".join(pieces),
                input_tokens=in_tok,
                output_tokens=out_tok,
                latency_s=time.perf_counter() - started,
                cost_usd=self.cost(in_tok, out_tok),
                model_id=self.model_id,
                finish_reason=finish,
            )

        try:
            with self.client.stream("POST", "/chat/completions", json=body) as response:
                if response.status_code != 200:
                    response.read()
                    raise _status_error(response)
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        return done()
                    try:
                        chunk = json.loads(payload)
                    except json.JSONDecodeError:
                        raise BackendError("stream chunk is not JSON", kind="server") from None
                    if not isinstance(chunk, dict):
                        raise BackendError("stream chunk is not an object", kind="server")
                    if isinstance(chunk.get("usage"), dict):
                        usage = chunk["usage"]
                    for choice in chunk.get("choices") or []:
                        delta = (choice.get("delta") or {}).get("content")
                        finish = choice.get("finish_reason") or finish
                        if delta:
                            pieces.append(delta)
                            yield delta
                return done()
        except httpx.TimeoutException:
            raise BackendError("request timed out", kind="timeout", retryable=True) from None
        except httpx.TransportError as exc:
            raise BackendError(type(exc).__name__, kind="connection", retryable=True) from None

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
