"""An OpenAI-compatible chat server for tests whose models answer fixed texts.

``--answers FILE``: a JSON object mapping model name -> answer text, or -> an object mapping
the last user message -> answer text (per-prompt answers, for benchmarks). A request for a
model in it gets that text (and usage: 11 prompt tokens, one completion token per word); any
other model, or a prompt without an answer, gets HTTP 500 (a broken upstream). Each request is appended to ``--calls FILE`` as one
line ``{"model": ...}`` when given, so a test can count what was really asked.

Run: ``python tests/answer_upstream.py --answers A.json --port-file F [--calls C.jsonl]``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import time

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


def create_app(answers: dict[str, str], calls: str | None = None) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        model = body.get("model", "")
        if calls:
            with open(calls, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"model": model}) + "\n")
        text = answers.get(model)
        if isinstance(text, dict):
            users = [m for m in body.get("messages", []) if m.get("role") == "user"]
            text = text.get(users[-1].get("content")) if users else None
        if not isinstance(text, str):
            return JSONResponse(
                {"error": {"message": f"no answer for {model}", "type": "server_error"}},
                status_code=500,
            )
        n_out = len(text.split())
        return {
            "id": "fixed-1",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 11, "completion_tokens": n_out, "total_tokens": 11 + n_out},
        }

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--answers", required=True)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--calls")
    args = parser.parse_args()
    with open(args.answers, encoding="utf-8") as fh:
        answers = json.load(fh)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY
    sock.bind(("127.0.0.1", 0))
    with open(args.port_file + ".tmp", "w") as fh:
        fh.write(str(sock.getsockname()[1]))
    os.replace(args.port_file + ".tmp", args.port_file)
    app = create_app(answers, args.calls)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(sockets=[sock])


if __name__ == "__main__":
    main()
