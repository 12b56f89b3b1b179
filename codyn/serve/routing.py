"""Routing a request: which models to ask, in which order.

``codyn-auto`` scores the prompt with the router and ranks the models with the cost weight
(the router.json calibration for ``serve.target``, or ``serve.cost_weight``);
``codyn-auto:0.25`` uses 0.25; a portfolio model name is that model alone. Concurrent
prompts are scored in one ``predict_scores`` batch (a single scoring thread), so 32 clients
cost about one forward pass each round instead of 32 competing ones.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time

import numpy as np

# The routing policy the server shares with `codyn route`: its one import in this package.
from codyn.policy import AUTO_MODEL, auto_weight, fallback_order, parse_auto_model, score_dict
from codyn.serve.models import ApiError

__all__ = ["AUTO_MODEL", "Planner", "ScoreBatcher"]

log = logging.getLogger("codyn.serve")


class ScoreBatcher:
    """Scores prompts with the router in one thread, batching the prompts that arrive while
    a batch runs. A batch is sorted by length and scored in chunks of ``chunk``: a padded
    forward pass costs as much as its longest prompt, and each chunk answers its callers as
    soon as it is done."""

    def __init__(self, router, max_batch: int = 64, chunk: int = 8, on_batch=None):
        self.router = router
        self.max_batch = max_batch
        self.chunk = chunk
        self.executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="codyn-router")
        self.pending: list[tuple[str, asyncio.Future]] = []
        self.running = False
        self.on_batch = on_batch
        self._task: asyncio.Task | None = None  # held so the drain task is not garbage-collected

    async def scores(self, prompt: str) -> np.ndarray:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.pending.append((prompt, future))
        if not self.running:
            self.running = True
            self._task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self.pending:
                batch, self.pending = self.pending[: self.max_batch], self.pending[self.max_batch :]
                batch.sort(key=lambda item: len(item[0]))
                for start in range(0, len(batch), self.chunk):
                    await self._score(batch[start : start + self.chunk])
        finally:
            self.running = False

    async def _score(self, chunk: list[tuple[str, asyncio.Future]]) -> None:
        live = [(p, fut) for p, fut in chunk if not fut.done()]  # skip requests already gone
        if not live:
            return
        if self.on_batch:
            self.on_batch(len(live))
        loop = asyncio.get_running_loop()
        try:
            out = await loop.run_in_executor(
                self.executor, self.router.predict_scores, [p for p, _ in live]
            )
            out = np.asarray(out, dtype=float)
            if out.shape != (len(live), len(self.router.models)):
                raise RuntimeError(f"router returned scores of shape {out.shape}")
        except Exception as exc:  # a router failure fails its chunk, not the server
            for _, fut in live:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for (_, fut), row in zip(live, out, strict=True):
            if not fut.done():
                fut.set_result(row)


class Planner:
    """The router of one server, its cost weight for ``codyn-auto`` and its batcher."""

    def __init__(self, router, settings: dict, metrics):
        self.router = router
        self.models = list(router.models)
        self.costs = np.asarray(router.costs, dtype=float)
        self.metrics = metrics
        self.batcher = ScoreBatcher(router, on_batch=metrics.batch.observe)
        self.auto_weight, self.auto_source = auto_weight(
            router, settings["cost_weight"], settings["target"]
        )

    def resolve(self, name: str) -> tuple[float | None, list[int] | None]:
        """(cost weight, None) for auto models, (None, [index]) for a concrete model."""
        try:
            weight = parse_auto_model(name, self.auto_weight)
        except ValueError as exc:
            raise ApiError(400, f"bad model {name!r}: {exc}", param="model") from exc
        if weight is not None:
            return weight, None
        if name in self.models:
            return None, [self.models.index(name)]
        raise ApiError(
            404,
            f"the model {name!r} does not exist; use {AUTO_MODEL}, {AUTO_MODEL}:<cost weight> "
            f"or one of {', '.join(self.models)}",
            code="model_not_found",
            param="model",
        )

    async def plan(self, model: str, prompt: str, rec) -> list[int]:
        """The models to try for ``model``, in order; fills the routing part of ``rec``."""
        weight, order = self.resolve(model)
        if order is not None:
            return order
        t0 = time.perf_counter()
        try:
            row = await self.batcher.scores(prompt)
        except Exception as exc:
            log.exception("router failed")
            raise ApiError(
                500, f"router failed: {type(exc).__name__}", "server_error", code="router_error"
            ) from exc
        rec.routing_s = time.perf_counter() - t0
        self.metrics.routing.observe(rec.routing_s)
        order = fallback_order(row, self.costs, weight)
        rec.routed, rec.cost_weight = True, weight
        rec.scores = score_dict(self.models, row)
        rec.fallback_order = [self.models[i] for i in order]
        if not order:
            raise ApiError(
                503,
                "the router can pick none of its models for this prompt",
                "server_error",
                code="no_model",
            )
        return order
