"""The routing service: one chat call from a validated request to its response and record."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid

from fastapi.responses import JSONResponse, Response

from codyn.serve.cascade import CASCADE_MODEL, CascadeRunner
from codyn.serve.metrics import Metrics
from codyn.serve.models import ApiError, ChatRequest, completion_body
from codyn.serve.record import CallLog, CallRecord
from codyn.serve.routing import AUTO_MODEL, Planner
from codyn.serve.settings import check_portfolio, serve_settings
from codyn.serve.streaming import Chunks, GuardedStream, Lease, Relay, usage_of
from codyn.serve.upstream import Upstream

log = logging.getLogger("codyn.serve")


class RoutingService:
    """State shared by the endpoints: the planner (router), the upstream caller, the
    concurrency bound, metrics and the call log."""

    def __init__(
        self, router, config: dict, *, settings: dict | None = None, backends: dict | None = None
    ):
        check_portfolio(router, config)
        self.router = router
        self.config = config
        self.settings = {**serve_settings(config), **(settings or {})}
        self.models = list(router.models)
        self.model_cfg = {m: config["models"][m] for m in self.models}
        self.metrics = Metrics()
        self.planner = Planner(router, self.settings, self.metrics)
        self.upstream = Upstream(self.model_cfg, config, self.settings, self.metrics, backends)
        self.simulated = {m: self.model_cfg[m]["backend"] == "simulated" for m in self.models}
        for m, backend in self.upstream.backends.items():
            self.simulated[m] = bool(getattr(backend, "simulated", self.simulated[m]))
        self.semaphore: asyncio.Semaphore | None = None
        self.log = CallLog(self.settings["log_path"]) if self.settings.get("log_path") else None
        env = self.settings.get("auth_token_env")
        self.token = os.environ.get(env, "") if env else ""
        self.created = int(time.time())
        spec = self.settings.get("cascade")
        self.cascade = CascadeRunner(self, spec) if spec is not None else None

    @property
    def auto_weight(self) -> float:
        return self.planner.auto_weight

    @property
    def auto_source(self) -> str:
        return self.planner.auto_source

    async def acquire(self) -> Lease:
        if self.semaphore is None:
            self.semaphore = asyncio.Semaphore(self.settings["max_concurrency"])
        try:
            await asyncio.wait_for(self.semaphore.acquire(), self.settings["request_timeout_s"])
        except TimeoutError as exc:
            raise ApiError(
                503, "server is at capacity; retry later", "server_error", code="overloaded"
            ) from exc
        return Lease(self.semaphore)

    # the record ---------------------------------------------------------------------------------
    def served(self, rec: CallRecord, model: str, completion=None, upstream_s=None) -> None:
        """Fill the record and the metrics for the model that answered."""
        cfg = self.model_cfg[model]
        rec.model, rec.backend, rec.simulated = model, cfg["backend"], self.simulated[model]
        rec.model_id = getattr(completion, "model_id", None) or cfg.get("model_id")
        rec.relative_cost, rec.upstream_s = float(cfg["cost"]), upstream_s
        if completion is not None:
            rec.input_tokens = getattr(completion, "input_tokens", None)
            rec.output_tokens = getattr(completion, "output_tokens", None)
            rec.cost_usd = getattr(completion, "cost_usd", None)
            rec.finish_reason = getattr(completion, "finish_reason", None) or rec.finish_reason
            self.metrics.answered(model, completion)
        self.metrics.routed.labels(model, str(rec.routed).lower()).inc()
        if rec.fallback_order and model != rec.fallback_order[0]:
            self.metrics.fallbacks.inc()
        if upstream_s is not None:
            self.metrics.upstream.labels(model).observe(upstream_s)

    def finish(self, rec: CallRecord, status: int, t0: float, error: str | None = None) -> None:
        """Close the record (status, latency) and append it to the call log."""
        rec.status, rec.error = status, error
        rec.latency_s = time.perf_counter() - t0
        self.metrics.latency.observe(rec.latency_s)
        self.metrics.requests.labels("chat", str(status)).inc()
        if self.log is not None:
            try:
                self.log.write(rec)
            except OSError:
                log.exception("cannot append to the call log %s", self.settings["log_path"])

    def headers(self, rec: CallRecord) -> dict:
        h = {"x-codyn-request-id": rec.request_id}
        if rec.model:
            h["x-codyn-model"] = rec.model
            h["x-codyn-simulated"] = "true" if rec.simulated else "false"
        if rec.upstream_s is not None:
            h["x-codyn-upstream-ms"] = f"{rec.upstream_s * 1000:.3f}"
        h["x-codyn-routing-ms"] = f"{rec.routing_s * 1000:.3f}"
        if rec.latency_s is not None:
            # time inside the server up to the response body (what overhead benchmarks subtract from)
            h["x-codyn-server-ms"] = f"{rec.latency_s * 1000:.3f}"
        return h

    @staticmethod
    def codyn_info(rec: CallRecord) -> dict:
        """The ``codyn`` object of a response."""
        return {
            "request_id": rec.request_id,
            "routed": rec.routed,
            "cost_weight": rec.cost_weight,
            "scores": rec.scores,
            "fallback_order": rec.fallback_order,
            "failed_attempts": rec.attempts,
            "simulated": rec.simulated,
            "model_id": rec.model_id,
            "cost_usd": rec.cost_usd,
        }

    # chat ---------------------------------------------------------------------------------------
    async def chat(self, req: ChatRequest, t0: float) -> Response:
        cascade = self.cascade is not None and req.model == CASCADE_MODEL
        if not cascade:
            self.planner.resolve(req.model)  # unknown names fail before any work
        rec = CallRecord.open(
            "chatcmpl-" + uuid.uuid4().hex, req, log_text=bool(self.settings.get("log_text"))
        )
        lease = None
        self.metrics.in_flight.inc()
        handed_over = False
        try:
            # Waiting for a slot is the overload case (503); the rest of the time budget is
            # the request's own (504).
            lease = await self.acquire()
            remaining = self.settings["request_timeout_s"] - (time.perf_counter() - t0)
            try:
                async with asyncio.timeout(max(remaining, 0.0)):
                    if cascade:
                        return await self.cascade.run(req, rec, t0)
                    order = await self.planner.plan(req.model, req.prompt, rec)
                    names = [self.models[i] for i in order]
                    if not req.stream:
                        return await self.complete(req, rec, names, t0)
                    response = await self.start_stream(req, rec, names, lease, t0)
                    handed_over = True
                    return response
            except TimeoutError as exc:
                limit = self.settings["request_timeout_s"]
                raise ApiError(
                    504, f"request took longer than {limit} s", "server_error", code="timeout"
                ) from exc
        except ApiError as err:
            self.finish(rec, err.status, t0, err.message)
            return err.response(self.headers(rec))
        finally:
            if not handed_over:
                self.metrics.in_flight.dec()
                if lease is not None:
                    lease.release()

    async def complete(self, req: ChatRequest, rec: CallRecord, order: list[str], t0: float):
        model, completion, upstream_s = await self.upstream.first_answer(order, req, rec)
        self.served(rec, model, completion, upstream_s)
        if rec.log_text:
            rec.text = completion.text
        self.finish(rec, 200, t0)
        usage = usage_of(completion)
        finish = rec.finish_reason or "stop"
        info = self.codyn_info(rec)
        body = completion_body(rec.request_id, model, completion.text, finish, usage, info)
        return JSONResponse(body, headers=self.headers(rec))

    async def start_stream(self, req, rec: CallRecord, order: list[str], lease: Lease, t0: float):
        """Stream from the first model that yields a first piece (falling back before any
        byte is sent)."""
        model, stream, first, started = await self.upstream.first_stream(order, req, rec)
        relay = Relay(
            Chunks(rec.request_id, model),
            stream,
            first,
            timeout=self.upstream.timeout,
            deadline=t0 + self.settings["request_timeout_s"],
        )
        done = False

        async def cleanup():
            nonlocal done
            if done:
                return
            done = True
            lease.release()
            self.metrics.in_flight.dec()
            await stream.aclose()
            status, error = relay.status, relay.error
            if relay.failure_reason:
                self.metrics.failures.labels(model, relay.failure_reason).inc()
            if status == 200 and relay.finish_reason is None:
                status, error = 499, "client closed the stream"
            self.served(rec, model, relay.completion, time.perf_counter() - started)
            rec.finish_reason = relay.finish_reason or rec.finish_reason
            if rec.log_text:
                rec.text = "".join(relay.pieces)
            self.finish(rec, status, t0, error)

        rec.model, rec.simulated = model, self.simulated[model]
        headers = {**self.headers(rec), "cache-control": "no-cache"}
        events = relay.events(req.include_usage)
        return GuardedStream(events, cleanup, media_type="text/event-stream", headers=headers)

    # listings -----------------------------------------------------------------------------------
    def model_card(self, name: str) -> dict:
        return {"id": name, "object": "model", "created": self.created, "owned_by": "codyn"}

    def model_list(self) -> dict:
        names = [AUTO_MODEL, *([CASCADE_MODEL] if self.cascade else []), *self.models]
        return {"object": "list", "data": [self.model_card(n) for n in names]}

    def health(self) -> dict:
        return {
            "status": "ok",
            "router": getattr(self.router, "name", None) or type(self.router).__name__,
            "models": self.models,
            "cost_weight": self.auto_weight,
            "cost_weight_source": self.auto_source,
            "simulated": any(self.simulated.values()),
            "auth": bool(self.token),
            "cascade": self.cascade.describe() if self.cascade else None,
        }

    def close(self) -> None:
        if self.cascade:
            self.cascade.close()
        self.upstream.close()
        if self.log is not None:
            self.log.close()
