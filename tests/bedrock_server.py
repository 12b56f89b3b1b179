"""A Bedrock runtime Converse endpoint on 127.0.0.1 for tests that run Snakemake.

botocore's Stubber cannot reach Snakemake's job processes; this server can: the bedrock
backend's ``endpoint_url`` points boto3 at it, and every call goes through boto3's real
request signing, retries, serialisation and response parsing. It implements
``POST /model/{modelId}/converse`` with the Converse response shape (output.message,
stopReason, usage, metrics.latencyMs) and Bedrock's error shape for an unknown model,
and refuses requests that carry no SigV4 ``Authorization`` header, as AWS does.

``failures={model_id: (error_code, n)}`` makes that model answer each distinct prompt with
n errors of that code (``n=None``: forever) before its answer, with the HTTP status and
``x-amzn-ErrorType`` Bedrock uses, so botocore's own retry logic sees real errors.
``attempts`` counts every signed request per prompt: how often boto3 really asked.

What the models answer is the test's ``answer(model_id, prompt) -> str``: the answers
are made by the test, not by a model (the test says so), and only the protocol is real.
Tokens are counted as whitespace-separated words: the usage numbers are plausible, not
Llama's.
"""

from __future__ import annotations

import json
import os
import threading
import urllib.parse
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from chat_server import JSONReplies

# Bedrock error code -> HTTP status (the Bedrock runtime API reference)
ERROR_STATUS = {
    "ThrottlingException": 429,
    "ServiceUnavailableException": 503,
    "InternalServerException": 500,
    "ModelTimeoutException": 408,
    "ValidationException": 400,
}


class ConverseServer:
    def __init__(
        self,
        answer: Callable[[str, str], str],
        known_models: set[str],
        failures: dict[str, tuple[str, int | None]] | None = None,
    ):
        self.answer = answer
        self.known = set(known_models)
        self.failures = dict(failures or {})
        self.calls: Counter[str] = Counter()
        self.attempts: Counter[str] = Counter()
        self.unsigned = 0
        self._lock = threading.Lock()
        server = self

        class Handler(JSONReplies, BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                parts = self.path.split("/")
                if len(parts) != 4 or parts[1] != "model" or parts[3] != "converse":
                    self._send(404, {"message": f"no route {self.path}"})
                    return
                if not (self.headers.get("Authorization") or "").startswith("AWS4-HMAC-SHA256"):
                    with server._lock:
                        server.unsigned += 1
                    self._send(
                        403,
                        {"message": "Missing Authentication Token"},
                        {"x-amzn-ErrorType": "UnrecognizedClientException"},
                    )
                    return
                model_id = urllib.parse.unquote(parts[2])
                if model_id not in server.known:
                    self._send(
                        404,
                        {"message": f"Model {model_id} not found"},
                        {"x-amzn-ErrorType": "ResourceNotFoundException"},
                    )
                    return
                prompt = "".join(
                    block.get("text", "")
                    for msg in body.get("messages", [])
                    for block in msg.get("content", [])
                )
                with server._lock:
                    server.attempts[prompt] += 1
                    seen = server.attempts[prompt]
                code, times = server.failures.get(model_id, (None, 0))
                if code is not None and (times is None or seen <= times):
                    self._send(
                        ERROR_STATUS[code],
                        {"message": f"{code} number {seen}"},
                        {"x-amzn-ErrorType": code},
                    )
                    return
                text = server.answer(model_id, prompt)
                max_tokens = int(body.get("inferenceConfig", {}).get("maxTokens", 1024))
                words = text.split()
                stop = "end_turn"
                if len(words) > max_tokens:
                    text, stop = " ".join(words[:max_tokens]), "max_tokens"
                with server._lock:
                    server.calls[model_id] += 1
                n_in, n_out = len(prompt.split()), min(len(words), max_tokens)
                self._send(
                    200,
                    {
                        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
                        "stopReason": stop,
                        "usage": {
                            "inputTokens": n_in,
                            "outputTokens": n_out,
                            "totalTokens": n_in + n_out,
                        },
                        "metrics": {"latencyMs": 12},
                    },
                )

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> ConverseServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def fake_aws_env(monkeypatch) -> None:
    """Credentials that sign (the local server checks a signature is there), no real AWS."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "codyn-test",
        "AWS_SECRET_ACCESS_KEY": "codyn-test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
