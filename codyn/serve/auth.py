"""Bearer-token auth (``serve.auth_token_env``) as a FastAPI dependency; ``/health`` needs none."""

from __future__ import annotations

import hmac

from fastapi import Request

from codyn.serve.models import ApiError


def require_token(request: Request) -> None:
    """Refuse the request (401, OpenAI's ``invalid_api_key``) unless it carries the server's
    token as ``Authorization: Bearer <token>``; no-op when auth is off."""
    token = request.app.state.service.token
    if not token:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.encode()
    ):
        raise ApiError(401, "invalid or missing bearer token", code="invalid_api_key")
