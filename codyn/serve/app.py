"""The FastAPI app: endpoints, their dependencies (auth, the request body) and the mapping
of every error to OpenAI's error shape."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from codyn.serve.auth import require_token
from codyn.serve.models import ApiError, ChatRequest, error_response, parse_chat_request
from codyn.serve.routing import AUTO_MODEL
from codyn.serve.service import RoutingService

log = logging.getLogger("codyn.serve")

ENDPOINTS = {"/v1/chat/completions": "chat", "/v1/models": "models", "/metrics": "metrics"}


def started() -> float:
    """The request's start (a dependency listed first, so that it precedes auth and parsing)."""
    return time.perf_counter()


async def read_json(request: Request, limit: int) -> Any:
    """The body as JSON, refused (413) past ``limit`` bytes whether or not it says its length."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, "bad Content-Length header")
        if int(declared) > limit:
            raise ApiError(413, f"request body exceeds {limit} bytes", code="request_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body exceeds {limit} bytes", code="request_too_large")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise ApiError(400, "request body is empty; expected a JSON object")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # also a 5000-digit number (ValueError)
        raise ApiError(400, f"request body is not valid JSON ({exc})", code="invalid_json") from exc


async def chat_request(request: Request) -> ChatRequest:
    """The validated chat request (a dependency)."""
    limit = request.app.state.service.settings["max_body_bytes"]
    try:
        return parse_chat_request(await read_json(request, limit))
    except ApiError:
        raise
    except Exception as exc:
        # an ApiError keeps the client's keep-alive connection (see chat_completions)
        log.exception("unexpected error reading the request")
        raise ApiError(500, f"internal error: {type(exc).__name__}", "server_error") from exc


def _internal_error(service: RoutingService, endpoint: str, exc: Exception) -> Response:
    log.exception("unexpected error")
    service.metrics.requests.labels(endpoint, "500").inc()
    return error_response(500, f"internal error: {type(exc).__name__}", "server_error")


def _add_error_handlers(app: FastAPI, service: RoutingService) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        endpoint = ENDPOINTS.get(request.url.path, "other")
        service.metrics.requests.labels(endpoint, str(exc.status)).inc()
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        service.metrics.requests.labels("other", str(exc.status_code)).inc()
        return error_response(
            exc.status_code, f"{request.method} {request.url.path}: {exc.detail}", code=code
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        return _internal_error(service, "other", exc)


def _add_routes(app: FastAPI, service: RoutingService) -> None:
    auth = [Depends(require_token)]

    @app.post("/v1/chat/completions")
    async def chat_completions(
        t0: Annotated[float, Depends(started)],
        _auth: Annotated[None, Depends(require_token)],
        req: Annotated[ChatRequest, Depends(chat_request)],
    ):
        try:
            return await service.chat(req, t0)
        except (ApiError, StarletteHTTPException):
            raise
        except Exception as exc:
            # Answered here, not by the app-wide handler: Starlette re-raises what reaches
            # that one, and uvicorn then drops the client's keep-alive connection.
            return _internal_error(service, "chat", exc)

    @app.get("/v1/models", dependencies=auth)
    async def models():
        service.metrics.requests.labels("models", "200").inc()
        return service.model_list()

    @app.get("/v1/models/{name:path}", dependencies=auth)
    async def model(name: str):
        found = [m for m in service.model_list()["data"] if m["id"] == name]
        if not found and name.startswith(AUTO_MODEL + ":"):
            service.planner.resolve(name)
            found = [service.model_card(name)]
        if not found:
            raise ApiError(
                404, f"the model {name!r} does not exist", code="model_not_found", param="model"
            )
        return found[0]

    @app.get("/health")
    async def health():
        return service.health()

    @app.get("/metrics", dependencies=auth)
    async def metrics():
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def create_app(
    router, config: dict, *, settings: dict | None = None, backends: dict | None = None
) -> FastAPI:
    """The FastAPI app serving ``router`` over the portfolio in ``config``.

    ``settings`` overrides ``config['serve']`` (defaults from the schema); ``backends`` maps
    model name -> backend (default: :func:`codyn.backends.make_backend` for each router model).
    """
    service = RoutingService(router, config, settings=settings, backends=backends)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        # The cascade's sandbox workers start with the server (not on a user's request) and
        # end with it; without a lifespan (ASGI tests) they start on first use.
        if service.cascade:
            await asyncio.to_thread(service.cascade.start)
        try:
            yield
        finally:
            service.close()

    app = FastAPI(
        title="codyn routing server",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.service = service
    _add_error_handlers(app, service)
    _add_routes(app, service)
    return app
