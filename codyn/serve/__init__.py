"""``codyn serve``: an OpenAI-compatible routing server in front of a portfolio.

``POST /v1/chat/completions`` routes the request's last user message with a trained router
and forwards the conversation to the chosen model's backend (any backend of the generate
stage, :mod:`codyn.backends`). The request's ``model`` selects the routing:

- ``codyn-auto``: the router, with the cost weight its router.json records for
  ``serve.target`` (chosen on out-of-fold predictions of the training split; w = 0, said
  at start-up and in ``/health``, for a router.json without one), or ``serve.cost_weight``
  when that is set;
- ``codyn-auto:0.25``: the router, with cost weight 0.25 for this request;
- a portfolio model name: that model, no routing and no fallback;
- ``codyn-cascade`` (with ``serve.cascade`` set): the verified cascade, stage by stage until
  an answer passes the prompt's own examples in the sandbox (:mod:`codyn.serve.cascade`).

When the chosen model fails (backend error or ``upstream_timeout_s``), the next model in
the router's order is tried. The response is the OpenAI shape with the served model in
``model``, an ``x-codyn-model`` header, and a ``codyn`` object (scores, cost weight, failed
attempts, simulated). ``stream: true`` answers with server-sent events; a fallback is only
possible before the first token.

Also ``GET /v1/models``, ``GET /health`` (never needs a token) and ``GET /metrics``
(Prometheus). Every chat call that passes validation is appended to ``serve.log_path`` as
one JSON line (:mod:`codyn.serve.record`).

The parts, each in its module:

- :mod:`~codyn.serve.models`: the OpenAI wire format (pydantic request and response models,
  errors in OpenAI's shape);
- :mod:`~codyn.serve.record`: the typed call record and the call log;
- :mod:`~codyn.serve.routing`: router scoring (batched) and the order of models to ask;
- :mod:`~codyn.serve.upstream`: the backends behind a timeout and the fallback order;
- :mod:`~codyn.serve.streaming`: server-sent events;
- :mod:`~codyn.serve.cascade`: the verified cascade;
- :mod:`~codyn.serve.service`: one chat call end to end; :mod:`~codyn.serve.metrics`;
- :mod:`~codyn.serve.auth`: bearer-token auth (a FastAPI dependency);
- :mod:`~codyn.serve.settings`: ``serve`` settings and router tuning;
- :mod:`~codyn.serve.app`: the app factory; :mod:`~codyn.serve.cli`: ``codyn serve``.
"""

from codyn.serve.app import create_app
from codyn.serve.cli import listening_socket, main
from codyn.serve.models import ApiError, ChatRequest, parse_chat_request
from codyn.serve.record import CallLog, CallRecord
from codyn.serve.service import RoutingService
from codyn.serve.settings import serve_settings, tune_router

__all__ = [
    "ApiError",
    "CallLog",
    "CallRecord",
    "ChatRequest",
    "RoutingService",
    "create_app",
    "listening_socket",
    "main",
    "parse_chat_request",
    "serve_settings",
    "tune_router",
]
