"""Amazon Bedrock through the Converse API (boto3 ``bedrock-runtime``).

Region and credentials come from the standard AWS chain (environment, profile,
instance role); the config may name a region, never credentials. One retry layer:
botocore's adaptive mode (client-side rate limiting, then retries of throttling and
transient errors with exponential backoff and jitter), at most ``1 + max_retries``
attempts per request in all. Errors that outlast it become a BackendError at once.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

from codyn.backends.base import Backend, BackendError, Completion, check_messages

# Bedrock error code -> (kind, retryable)
ERROR_KINDS = {
    "ThrottlingException": ("throttled", True),
    "ServiceQuotaExceededException": ("throttled", True),
    "TooManyRequestsException": ("throttled", True),
    "ModelTimeoutException": ("timeout", True),
    "ModelNotReadyException": ("server", True),
    "ServiceUnavailableException": ("server", True),
    "InternalServerException": ("server", True),
    "ModelErrorException": ("server", True),
    "ValidationException": ("validation", False),
    "AccessDeniedException": ("access_denied", False),
    "ResourceNotFoundException": ("not_found", False),
    "UnrecognizedClientException": ("access_denied", False),
}
# stopReason values that mean the model refused / was filtered rather than answered.
REFUSED_STOPS = ("guardrail_intervened", "content_filtered")


@contextlib.contextmanager
def bedrock_errors():
    """botocore's errors (raised once its retries are spent) as BackendErrors."""
    from botocore.exceptions import ClientError, ReadTimeoutError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    try:
        yield
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "ClientError")
        message = exc.response.get("Error", {}).get("Message", "")
        kind, retryable = ERROR_KINDS.get(code, ("client_error", False))
        raise BackendError(f"{code}: {message}", kind=kind, retryable=retryable) from None
    except ReadTimeoutError:
        raise BackendError("read timeout", kind="timeout", retryable=True) from None
    except BotoConnectionError as exc:
        raise BackendError(type(exc).__name__, kind="connection", retryable=True) from None


def retry_config(generation_cfg: dict) -> dict:
    """botocore's retry settings: the only retries a Bedrock request gets."""
    return {"mode": "adaptive", "total_max_attempts": 1 + int(generation_cfg.get("max_retries", 6))}


class BedrockBackend(Backend):
    kind = "bedrock"

    def __init__(self, model_name: str, model_cfg: dict, generation_cfg: dict, *, client=None):
        super().__init__(model_name, model_cfg, generation_cfg)
        if not self.model_id:
            from codyn.errors import ConfigError

            raise ConfigError(
                f"models.{model_name}.model_id", "bedrock needs a model or inference-profile id"
            )
        self._client = client
        self._client_lock = threading.Lock()

    @property
    def client(self):
        with self._client_lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                timeout = float(self.generation_cfg.get("timeout_s", 120))
                self._client = boto3.client(
                    "bedrock-runtime",
                    region_name=self.model_cfg.get("region") or None,
                    # null: the Region's endpoint; else a VPC endpoint or a local server
                    endpoint_url=self.model_cfg.get("endpoint_url") or None,
                    config=Config(
                        retries=retry_config(self.generation_cfg),
                        read_timeout=timeout,
                        connect_timeout=min(timeout, 30),
                        max_pool_connections=max(
                            10, int(self.generation_cfg.get("concurrency", 4))
                        ),
                    ),
                )
            return self._client

    def request(self, messages: list[dict], params: dict) -> dict:
        """The Converse request for ``messages`` (system messages go to ``system``)."""
        check_messages(messages)
        system = [{"text": m["content"]} for m in messages if m["role"] == "system"]
        turns = [
            {"role": m["role"], "content": [{"text": m["content"]}]}
            for m in messages
            if m["role"] != "system"
        ]
        inference = {}
        if "max_tokens" in params:
            inference["maxTokens"] = int(params["max_tokens"])
        if "temperature" in params:
            inference["temperature"] = float(params["temperature"])
        if "top_p" in params:
            inference["topP"] = float(params["top_p"])
        if params.get("stop"):
            stop = params["stop"]
            inference["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
        req = {"modelId": self.model_id, "messages": turns, "inferenceConfig": inference}
        if system:
            req["system"] = system
        return req

    def complete(self, messages: list[dict], params: dict, task: dict | None = None) -> Completion:
        request = self.request(messages, params)
        started = time.perf_counter()
        with bedrock_errors():
            response = self.client.converse(**request)
        wall = time.perf_counter() - started
        blocks = response.get("output", {}).get("message", {}).get("content", [])
        text = "".join(b.get("text", "") for b in blocks)
        stop = response.get("stopReason")
        if stop in REFUSED_STOPS:
            raise BackendError(f"stopReason {stop}", kind="refused", retryable=False)
        usage = response.get("usage", {})
        in_tok, out_tok = usage.get("inputTokens"), usage.get("outputTokens")
        latency_ms = response.get("metrics", {}).get("latencyMs")
        return Completion(
            text=text,
            input_tokens=in_tok,
            output_tokens=out_tok,
            # Bedrock's own latency excludes our queueing and retries; fall back to wall time.
            latency_s=latency_ms / 1000.0 if latency_ms is not None else wall,
            cost_usd=self.cost(in_tok, out_tok),
            model_id=self.model_id,
            finish_reason=stop,
        )

    def stream(self, messages: list[dict], params: dict, task: dict | None = None) -> Iterator[str]:
        """Text pieces; returns a Completion with the stream's usage (``metadata`` event)."""
        request = self.request(messages, params)
        started = time.perf_counter()
        pieces, usage, stop, latency_ms = [], {}, None, None
        # botocore retries opening the stream; a stream that breaks later is not retried.
        with bedrock_errors():
            response = self.client.converse_stream(**request)
            for event in response["stream"]:
                delta = event.get("contentBlockDelta", {}).get("delta", {})
                if "text" in delta:
                    pieces.append(delta["text"])
                    yield delta["text"]
                stop = event.get("messageStop", {}).get("stopReason", stop)
                if "metadata" in event:
                    usage = event["metadata"].get("usage") or {}
                    latency_ms = (event["metadata"].get("metrics") or {}).get("latencyMs")
        in_tok, out_tok = usage.get("inputTokens"), usage.get("outputTokens")
        return Completion(
            text="".join(pieces),
            input_tokens=in_tok,
            output_tokens=out_tok,
            latency_s=latency_ms / 1000.0
            if latency_ms is not None
            else time.perf_counter() - started,
            cost_usd=self.cost(in_tok, out_tok),
            model_id=self.model_id,
            finish_reason=stop,
        )
