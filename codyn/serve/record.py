"""The call record of one chat request and the call log it is appended to.

One JSON line per chat call that passed validation (``serve.log_path``): prompt hash,
served model, predicted scores, latency, tokens and cost; no headers or keys, and text only
with ``serve.log_text`` (then ``prompt``, ``messages`` and ``text`` are present, ``text``
null when no answer came). A cascade call adds ``cascade`` (one object per stage),
``cascade_examples`` and ``sandbox_s``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from codyn.io import sha256_text

TEXT_KEYS = ("prompt", "messages", "text")
CASCADE_KEYS = ("cascade", "cascade_examples", "sandbox_s")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


@dataclass
class CallRecord:
    request_id: str
    requested_model: str
    prompt_sha256: str
    messages_sha256: str
    stream: bool
    ts: str = field(default_factory=_now)
    routed: bool = False
    cost_weight: float | None = None
    scores: dict[str, float | None] | None = None
    fallback_order: list[str] | None = None
    attempts: list[dict] = field(default_factory=list)  # failed upstream calls: model, error
    model: str | None = None
    model_id: str | None = None
    backend: str | None = None
    simulated: bool | None = None
    status: int | None = None
    error: str | None = None
    routing_s: float = 0.0
    upstream_s: float | None = None
    latency_s: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    relative_cost: float | None = None
    finish_reason: str | None = None
    # with serve.log_text only
    log_text: bool = False
    prompt: str | None = None
    messages: list[dict] | None = None
    text: str | None = None
    # cascade calls only
    cascade: list[dict] | None = None
    cascade_examples: int | None = None
    sandbox_s: float | None = None

    @classmethod
    def open(cls, request_id: str, req, *, log_text: bool) -> CallRecord:
        """The record of a validated request (``req``: :class:`~codyn.serve.models.ChatRequest`)."""
        messages_json = json.dumps(req.chat, sort_keys=True, ensure_ascii=False)
        rec = cls(
            request_id=request_id,
            requested_model=req.model,
            prompt_sha256=sha256_text(req.prompt),
            messages_sha256=sha256_text(messages_json),
            stream=req.stream,
            log_text=log_text,
        )
        if log_text:
            rec.prompt, rec.messages = req.prompt, req.chat
        return rec

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        del out["log_text"]
        for key in TEXT_KEYS if not self.log_text else ():
            del out[key]
        for key in CASCADE_KEYS if self.cascade is None else ():
            del out[key]
        return out


class CallLog:
    """Append-only JSONL. Each record is one ``write`` on an O_APPEND descriptor, so lines from
    concurrent requests (or several server processes) never interleave."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._lock = threading.Lock()

    def write(self, record: CallRecord) -> None:
        line = json.dumps(record.to_dict(), ensure_ascii=False, sort_keys=True, default=str)
        data = (line + "\n").encode("utf-8")
        with self._lock:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]

    def close(self) -> None:
        os.close(self._fd)
