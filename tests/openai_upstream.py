"""A small OpenAI-compatible chat server for tests: stands in for vLLM / Ollama on 127.0.0.1.

The served model name decides the behaviour:

- ``echo-*``: answers ``"<model> says: <sha256 of the messages>[:16]"`` (deterministic, so a
  test can tell which request an answer belongs to), with usage; streams it word by word.
- ``fail-*``: HTTP 500 (a broken upstream, to test fallback).
- ``slow-<seconds>``: sleeps, then answers like ``echo``.

A last message containing ``[cut]`` makes a stream break off (connection dropped) after
two chunks.

Run: ``python tests/openai_upstream.py --port 0 --port-file F``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import socket
import time

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse


def answer_for(model: str, messages: list) -> str:
    digest = hashlib.sha256(json.dumps(messages, sort_keys=True).encode("utf-8")).hexdigest()[:16]
    return f"{model} says: {digest}"


def create_app() -> FastAPI:
    app = FastAPI()
    app.state.calls = 0

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        app.state.calls += 1
        body = await request.json()
        model, messages = body.get("model", ""), body.get("messages", [])
        if model.startswith("fail-"):
            return JSONResponse(
                {"error": {"message": "upstream broke", "type": "server_error"}}, status_code=500
            )
        if model.startswith("slow-"):
            await asyncio.sleep(float(model.split("-", 1)[1]))
        text = answer_for(model, messages)
        usage = {
            "prompt_tokens": 7,
            "completion_tokens": len(text.split()),
            "total_tokens": 7 + len(text.split()),
        }
        created = int(time.time())
        if body.get("stream"):

            async def events():
                words = text.split(" ")
                for i, word in enumerate(words):
                    piece = word if i == 0 else " " + word
                    chunk = {
                        "id": "up-1",
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "choices": [
                            {"index": 0, "delta": {"content": piece}, "finish_reason": None}
                        ],
                    }
                    yield f"data: {json.dumps(chunk)}\n\n"
                    await asyncio.sleep(0)
                    if i == 1 and "[cut]" in str(messages[-1].get("content")):
                        raise RuntimeError("upstream dropped the stream on purpose")
                done = {
                    "id": "up-1",
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                }
                yield f"data: {json.dumps(done)}\n\n"
                if (body.get("stream_options") or {}).get("include_usage"):
                    # OpenAI's last chunk: no choices, the whole request's usage.
                    last = {**done, "choices": [], "usage": usage}
                    yield f"data: {json.dumps(last)}\n\n"
                yield "data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")
        return {
            "id": "up-1",
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
        }

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": []}

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", required=True)
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY
    sock.bind(("127.0.0.1", args.port))
    with open(args.port_file + ".tmp", "w") as fh:
        fh.write(str(sock.getsockname()[1]))
    import os

    os.replace(args.port_file + ".tmp", args.port_file)
    server = uvicorn.Server(uvicorn.Config(create_app(), log_level="warning", access_log=False))
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
