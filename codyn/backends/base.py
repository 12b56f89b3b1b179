"""The backend interface every answer source implements.

A backend turns chat messages into a :class:`Completion` or raises
:class:`BackendError`. Backends are thread-safe: the generate stage calls
``complete`` from a pool of ``generation.concurrency`` threads. Each network backend
has exactly one retry layer, its client library's (botocore's for Bedrock, the openai
SDK's for OpenAI-compatible servers): at most ``1 + generation.max_retries`` attempts
per request; what is still failing after them is a BackendError.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass

# Generation parameters that change an answer, hence belong to the cache key.
# concurrency, timeout_s, max_retries ... change how we ask, not what comes back.
ANSWER_PARAMS = ("max_tokens", "temperature", "top_p")


@dataclass
class Completion:
    text: str
    input_tokens: int | None
    output_tokens: int | None
    latency_s: float | None
    cost_usd: float | None
    model_id: str | None
    finish_reason: str | None = None
    # True when the token counts (hence the dollars) are estimated, not reported.
    cost_estimated: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


class BackendError(Exception):
    """A failed request. ``kind`` names the failure (throttled, timeout, refused,
    validation, server, connection, not_found, ...); ``retryable`` says whether asking
    again later may succeed (the backend's client has already spent its retries; the
    generate stage re-asks error records on the next run anyway)."""

    def __init__(self, message: str, *, kind: str, retryable: bool = False):
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable

    def __str__(self) -> str:
        return f"{self.kind}: {super().__str__()}"


def effective_params(model_cfg: dict, generation_cfg: dict) -> dict:
    """Generation parameters for one model: ``generation`` answer params, then the model's
    ``params`` over them (which may also add backend-specific ones such as ``stop``)."""
    params = {k: generation_cfg[k] for k in ANSWER_PARAMS if k in generation_cfg}
    params.update(model_cfg.get("params") or {})
    return params


def dollar_cost(model_cfg: dict, input_tokens: int | None, output_tokens: int | None):
    """USD from per-million-token prices; None when a price or a count is unknown."""
    price_in, price_out = model_cfg.get("price_in"), model_cfg.get("price_out")
    if price_in is None or price_out is None or input_tokens is None or output_tokens is None:
        return None
    return (input_tokens * price_in + output_tokens * price_out) / 1e6


class Backend:
    """Base class. Subclasses set ``kind`` and implement :meth:`complete`."""

    kind = "base"
    simulated = False
    # Largest useful number of concurrent requests (local models serialise).
    max_concurrency: int | None = None

    def __init__(self, model_name: str, model_cfg: dict, generation_cfg: dict):
        self.model_name = model_name
        self.model_cfg = dict(model_cfg)
        self.generation_cfg = dict(generation_cfg)

    @property
    def model_id(self) -> str | None:
        return self.model_cfg.get("model_id")

    def params(self) -> dict:
        return effective_params(self.model_cfg, self.generation_cfg)

    def key_extra(self, task: dict | None) -> dict:
        """What besides (backend, model id, prompt, params) decides the answer; part of the
        cache key. Real models: nothing. Simulated and replay: the task and their inputs."""
        return {}

    def cost(self, input_tokens: int | None, output_tokens: int | None) -> float | None:
        return dollar_cost(self.model_cfg, input_tokens, output_tokens)

    def complete(self, messages: list[dict], params: dict, task: dict | None = None) -> Completion:
        raise NotImplementedError

    def stream(self, messages: list[dict], params: dict, task: dict | None = None) -> Iterator[str]:
        """Text pieces; the generator's return value (StopIteration.value) is the
        :class:`Completion` with token counts, which the server reports as ``usage``."""
        completion = self.complete(messages, params, task)
        yield completion.text
        return completion

    def close(self) -> None:
        """Release clients, connections, model weights."""


def check_messages(messages: list[dict]) -> None:
    if not isinstance(messages, list) or not messages:
        raise BackendError("messages must be a non-empty list", kind="validation")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ("system", "user", "assistant"):
            raise BackendError(
                f"message {i}: role must be system, user or assistant", kind="validation"
            )
        if not isinstance(msg.get("content"), str):
            raise BackendError(f"message {i}: content must be a string", kind="validation")
