"""A real OpenAI-compatible chat-completions HTTP server for tests and benchmarks.

Run as a process: ``python tests/chat_server.py --delay 0.2`` prints the port it
listens on (127.0.0.1) as its first stdout line. The model name chooses the
behaviour, so one server covers every case:

- any name: answer ``echo: <last user message>`` after ``--delay`` seconds;
- ``throttle-N``: each distinct prompt gets N ``429`` before an answer;
- ``error500-N``: each distinct prompt gets N ``500`` before an answer;
- ``always429`` / ``always500``: never answers;
- ``retry-after-S-N``: N ``429`` with only ``Retry-After: S`` (whole seconds) per prompt;
- ``refuse``: ``400`` for prompts containing REFUSE, an answer otherwise;
- ``no-stream-options``: ``400`` for a request with ``stream_options`` (older servers);
- ``sleep-S``: waits S seconds before answering (client timeouts).
- ``garbage`` / ``no-choices``: a 200 whose body is not JSON / has no ``choices``;
- ``bad-chunk``: a stream whose second chunk is not JSON.

429 and 500 answers carry ``Retry-After: 0`` and ``retry-after-ms: 1`` (OpenAI's header),
so a client that honours them (the openai SDK) retries at once: the tests stay fast.
Streams send the text word by word, a last chunk with ``finish_reason``, and, when the
request asks ``stream_options.include_usage``, a usage chunk without choices (as OpenAI,
vLLM and Ollama do).

With ``--api-key K`` every request must carry ``Authorization: Bearer K`` (else 401).
``GET /stats`` returns the number of chat requests seen, per prompt, and how many of
them carried an Authorization header.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class JSONReplies:
    """What the test servers share: quiet logs and JSON replies."""

    def log_message(self, *args):  # keep test output clean
        pass

    def _send(self, status: int, body: dict, headers: dict | None = None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)


def serve(delay: float, api_key: str | None, port: int = 0) -> ThreadingHTTPServer:
    seen: Counter = Counter()
    authorized = Counter()
    lock = threading.Lock()

    class Handler(JSONReplies, BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; without this, Nagle + delayed ACK add
        # 40 ms to every keep-alive request.
        disable_nagle_algorithm = True

        def _send_raw(self, status: int, data: bytes, content_type: str):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _fail(self, status: int):
            message = "slow down" if status == 429 else "boom"
            retry = {"Retry-After": "0", "retry-after-ms": "1"}
            return self._send(status, {"error": {"message": message}}, retry)

        def do_GET(self):
            if self.path == "/stats":
                with lock:
                    counts = {"total": sum(seen.values()), "per_prompt": dict(seen)}
                    self._send(200, {**counts, "with_authorization": authorized["n"]})
            else:
                self._send(404, {"error": {"message": "not found"}})

        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            raw = self.rfile.read(length)
            if "Authorization" in self.headers:
                with lock:
                    authorized["n"] += 1
            if self.path.rstrip("/") != "/v1/chat/completions":
                return self._send(404, {"error": {"message": "not found"}})
            if api_key is not None and self.headers.get("Authorization") != f"Bearer {api_key}":
                return self._send(401, {"error": {"message": "invalid api key"}})
            try:
                body = json.loads(raw)
                prompt = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
                model = body["model"]
            except (ValueError, KeyError, IndexError, TypeError):
                return self._send(400, {"error": {"message": "bad request"}})
            with lock:
                seen[prompt] += 1
                count = seen[prompt]
            m = re.fullmatch(r"(throttle|error500)-(\d+)", model)
            if m and count <= int(m.group(2)):
                return self._fail(429 if m.group(1) == "throttle" else 500)
            if model in ("always429", "always500"):
                return self._fail(int(model[-3:]))
            m = re.fullmatch(r"retry-after-(\d+)-(\d+)", model)
            if m and count <= int(m.group(2)):
                return self._send(
                    429, {"error": {"message": "slow down"}}, {"Retry-After": m.group(1)}
                )
            if model == "no-stream-options" and "stream_options" in body:
                message = "stream_options: extra fields not permitted"
                return self._send(400, {"error": {"message": message}})
            if model == "refuse" and "REFUSE" in prompt:
                return self._send(400, {"error": {"message": "prompt refused by policy"}})
            if model == "garbage":
                return self._send_raw(200, b"<html>gateway</html>", "text/html")
            if model == "no-choices":
                return self._send(200, {"id": "x", "object": "chat.completion"})
            m = re.fullmatch(r"sleep-([\d.]+)", model)
            time.sleep(float(m.group(1)) if m else delay)
            text = f"echo: {prompt}"
            usage = {
                "prompt_tokens": len(prompt.split()),
                "completion_tokens": len(text.split()),
                "total_tokens": len(prompt.split()) + len(text.split()),
            }
            if body.get("stream"):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                if model == "bad-chunk":
                    self.wfile.write(b'data: {"choices": []}\n\ndata: {not json\n\n')
                    self.close_connection = True
                    return
                for piece in re.findall(r"\S+\s*", text):
                    chunk = {
                        "choices": [
                            {"index": 0, "delta": {"content": piece}, "finish_reason": None}
                        ]
                    }
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                last = [{"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}]
                if (body.get("stream_options") or {}).get("include_usage"):
                    last.append({"choices": [], "usage": usage})
                for chunk in last:
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")
                self.close_connection = True
                return
            self._send(
                200,
                {
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                },
            )

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):
            # A client killed mid-request (the tests do that on purpose) is not an error here.
            if not isinstance(sys.exc_info()[1], ConnectionError):
                super().handle_error(request, client_address)

    server = Server(("127.0.0.1", port), Handler)
    return server


@contextlib.contextmanager
def running_server(delay: float = 0.0, api_key: str | None = None) -> Iterator[str]:
    """Start this file as a server process; yield its base URL (``http://127.0.0.1:P/v1``)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--delay", str(delay)]
    if api_key is not None:
        cmd += ["--api-key", api_key]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def stats(base_url: str) -> dict:
    with urllib.request.urlopen(base_url.rsplit("/v1", 1)[0] + "/stats") as resp:
        return json.loads(resp.read())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--api-key", default=None)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args(argv)
    server = serve(args.delay, args.api_key, args.port)
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
