"""The verified cascade in ``codyn serve``: request model ``codyn-cascade``.

The policy is :class:`codyn.routers.cascade.Cascade` (config ``serve.cascade``: ``stages``,
``accept_share``, ``no_examples``); this module runs it on live requests (:class:`CascadeRunner`).

Per request, the last user message is read as a task (:func:`task_view`): its visible
examples come from :func:`codyn.examples.visible_examples` (doctests, ``f(x) == y`` lines,
asserts, Example / Sample Input blocks), the entry point is the last ``def`` in the prompt,
else the function its examples call, else the answer is a stdin/stdout program. Then each
stage in turn: ask the stage's model (``"router"``: the predictive router's first choice, as
``codyn-auto`` would pick it), extract the code (:func:`codyn.scoring.extract.extract_code`),
run the examples in the server's warm :class:`codyn.scoring.sandbox.Sandbox`
(:func:`codyn.scoring.visible.run_checks`; untrusted code runs nowhere else), and return the
answer when the rule accepts it, else go on. The last stage's answer is returned whatever its
verdict. A stage whose upstream fails (error or ``upstream_timeout_s``) is passed over; when
the last stage fails that way, the latest answer in hand is returned; with none, 502.
A model asked twice (the router picked an earlier stage's model) is not called again.

Stage verdicts: ``pass`` / ``fail`` (share of examples passed vs ``accept_share``),
``timeout`` (an example ran out of ``sandbox_timeout_s`` or CPU time), ``error`` (no code,
syntax error, crash before the examples), ``no_examples`` (accepted or escalated by
``no_examples``), ``upstream_error``, ``router_error`` (a router stage whose router failed),
``repeat`` (model already asked).

The response is the usual chat completion from the returned stage's model, with ``usage``
and ``codyn.cost_usd`` summed over every stage called (a cost is null when a called stage's
price is unknown), ``codyn.cascade`` (one object per stage: model, verdict, accepted,
passed, total, sandbox_ms, upstream_ms, tokens, cost, reason) and the headers
``x-codyn-cascade`` (``small:fail(0/2),large:pass(2/2)``) and ``x-codyn-sandbox-ms``.
``stream: true`` asks each stage for its whole answer (nothing reaches the client before a
stage is accepted) and streams the returned text as server-sent events. The call log
record has ``cascade`` (the same stage list) and ``sandbox_s``.
"""

from __future__ import annotations

import ast
import asyncio
import concurrent.futures
import re
import time
from collections import Counter

from fastapi.responses import JSONResponse, StreamingResponse
from prometheus_client import Counter as PromCounter
from prometheus_client import Histogram

from codyn.config import load_schema, section_defaults
from codyn.errors import ConfigError, InputError
from codyn.examples import parse_examples, visible_examples
from codyn.policy import AUTO_MODEL
from codyn.routers.cascade import ROUTER_STAGE, Cascade
from codyn.scoring.extract import extract_code
from codyn.scoring.sandbox import Limits, Sandbox
from codyn.scoring.visible import VisibleVerdict, run_checks
from codyn.serve.models import Usage, completion_body
from codyn.serve.streaming import Chunks, replay

CASCADE_MODEL = "codyn-cascade"
MAX_NAME_GUESSES = 5  # called names tried as entry point when the prompt defines none

_DEF = re.compile(r"^[ \t]*(?:async[ \t]+)?def[ \t]+([A-Za-z_]\w*)[ \t]*\(", re.M)
_CALL_LINE = re.compile(r"^[ \t*-]*(?:>>>[ \t]*)?(?:assert[ \t]+)?([A-Za-z_]\w*)[ \t]*\(", re.M)
_NOT_NAMES = {"print", "assert", "len", "int", "str", "list", "dict", "set", "tuple", "sorted"}


# --- settings ---------------------------------------------------------------------------------


def cascade_settings(spec: dict, models: list[str]) -> dict:
    """``serve.cascade`` over the schema's defaults, checked against the served portfolio."""
    props = load_schema()["properties"]["serve"]["properties"]["cascade"]["properties"]
    if not isinstance(spec, dict):
        raise ConfigError("serve.cascade", "must be a mapping with 'stages'")
    unknown = set(spec) - set(props)
    if unknown:
        raise ConfigError(
            f"serve.cascade.{sorted(unknown)[0]}", "unknown key", allowed=sorted(props)
        )
    out = {k: None for k in props} | section_defaults("serve.cascade")
    out.update(spec)
    stages = out.get("stages")
    if not isinstance(stages, list) or not stages:
        raise ConfigError("serve.cascade.stages", "must be a non-empty list of model names")
    for i, stage in enumerate(stages):
        if stage != ROUTER_STAGE and stage not in models:
            raise ConfigError(
                f"serve.cascade.stages[{i}]",
                f"{stage!r} is neither a served model nor {ROUTER_STAGE!r}",
                allowed=[ROUTER_STAGE, *models],
            )
    try:
        out["policy"] = Cascade(tuple(stages), float(out["accept_share"]), out["no_examples"])
    except InputError as exc:
        raise ConfigError(f"serve.cascade.{exc.field or 'stages'}", str(exc)) from exc
    return out


# --- the prompt as a task ---------------------------------------------------------------------


def _called_names(prompt: str) -> list[str]:
    names = Counter(m.group(1) for m in _CALL_LINE.finditer(prompt))
    return [n for n, _ in names.most_common() if n not in _NOT_NAMES][:MAX_NAME_GUESSES]


def guess_entry_point(prompt: str) -> str | None:
    """The function an answer must define: the prompt's last ``def`` (HumanEval puts helpers
    first), else the name its example lines call most usefully, else None (stdin program)."""
    defined = [m.group(1) for m in _DEF.finditer(prompt)]
    if defined:
        return defined[-1]
    best, most = None, 0
    for name in _called_names(prompt):
        found = len(parse_examples(prompt, name).checks)
        if found > most:
            best, most = name, found
    return best


def _code_prefix(prompt: str, entry: str | None) -> str:
    """The prompt's own code (signature, imports) when it is code, for answers that are only
    a function body (as the hidden-test scorer assembles them); "" otherwise."""
    if not entry:
        return ""
    candidates = [prompt, extract_code(prompt, "python", entry_point=entry) or ""]
    for code in candidates:
        try:
            ast.parse(code)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        if re.search(rf"^[ \t]*(?:async[ \t]+)?def[ \t]+{re.escape(entry)}\b", code, re.M):
            return code
    return ""


def task_view(prompt: str) -> dict:
    """A task dict for the last user message (``tests`` and ``checks`` as the scorer uses them)."""
    entry = guess_entry_point(prompt)
    tests: dict = {"entry_point": entry, "prefix": _code_prefix(prompt, entry)}
    if entry is None:
        tests = {"type": "stdio"}
    task = {"kind": "generate", "prompt": prompt, "tests": tests}
    task["checks"] = visible_examples(task)
    return task


# --- running the cascade ----------------------------------------------------------------------


def _verdict_name(verdict: VisibleVerdict) -> str:
    if verdict.status in ("fail", "error") and "timeout" in verdict.detail:
        return "timeout"
    return verdict.status


def accepts(policy: Cascade, verdict: VisibleVerdict) -> bool:
    """The policy's accept rule on one answer's verdict (the last stage is returned anyway)."""
    if verdict.status == "no_examples":
        return policy.no_examples == "accept"
    if verdict.status == "error" or not verdict.n_total:
        return False
    return verdict.n_passed / verdict.n_total >= policy.accept_share - 1e-12


def _sum(values: list) -> int | float | None:
    """The sum, or None when any value is unknown (an underestimate would mislead)."""
    if not values or any(not isinstance(v, int | float) for v in values):
        return None
    return sum(values)


def _reason(name: str, verdict: VisibleVerdict, accepted: bool, is_last: bool) -> str:
    if accepted:
        if name == "no_examples":
            return "no examples: accepted"
        return f"passed {verdict.n_passed}/{verdict.n_total} examples"
    if is_last:
        return "last stage: returned whatever its verdict"
    if name == "no_examples":
        return "no examples: escalated"
    return f"{name} on the examples: escalated"


def _cascade_header(stages: list[dict]) -> str:
    """``small:fail(0/2),large:pass(2/2)``"""
    return ",".join(
        f"{s['model'] or s['spec']}:{s['verdict']}"
        + (f"({s['passed']}/{s['total']})" if s.get("total") else "")
        for s in stages
    )


class CascadeRunner:
    """The cascade of one server: policy, warm sandbox, and the per-request loop."""

    def __init__(self, service, spec: dict):
        self.service = service
        self.settings = cascade_settings(spec, service.models)
        self.policy: Cascade = self.settings["policy"]
        scoring = dict(service.config.get("scoring") or {})
        limits = Limits.from_config({**scoring, "timeout_s": self.settings["sandbox_timeout_s"]})
        workers = int(self.settings["sandbox_workers"])
        self.sandbox = Sandbox(limits, workers=workers, isolation=scoring.get("isolation", "auto"))
        # blocking sandbox calls run here, not in the upstream pool they would starve
        self.pool = concurrent.futures.ThreadPoolExecutor(
            workers * 2, thread_name_prefix="codyn-sandbox"
        )
        registry = service.metrics.registry
        self.stage_count = PromCounter(
            "codyn_cascade_stages",
            "Cascade stages answered, by model, verdict and whether accepted",
            ["model", "verdict", "accepted"],
            registry=registry,
        )
        self.sandbox_seconds = Histogram(
            "codyn_cascade_sandbox_seconds",
            "Time to run one answer on the prompt's examples",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )

    def start(self) -> None:
        self.sandbox.start()

    def close(self) -> None:
        self.sandbox.close()
        self.pool.shutdown(wait=False, cancel_futures=True)

    def describe(self) -> dict:
        return {
            "model": CASCADE_MODEL,
            **self.policy.to_dict(),
            "sandbox": self.sandbox.describe() if self.sandbox.isolation else None,
        }

    async def _stage_models(self, req, rec) -> list[tuple[str, str | None, str]]:
        """(stage spec, model or None, why None) per stage; the router is asked once."""
        out = []
        for spec in self.policy.stages:
            if spec != ROUTER_STAGE:
                out.append((spec, spec, ""))
                continue
            try:
                order = await self.service.planner.plan(AUTO_MODEL, req.prompt, rec)
            except Exception as exc:  # noqa: BLE001 - a router failure skips its stage only
                out.append((spec, None, f"router failed: {getattr(exc, 'message', exc)}"[:200]))
                continue
            out.append((spec, self.service.models[order[0]], ""))
        return out

    async def _verify(self, task: dict, text: str) -> tuple[VisibleVerdict, float]:
        started = time.perf_counter()
        if not task["checks"]:
            return VisibleVerdict("no_examples"), 0.0
        code = extract_code(text, "python", entry_point=task["tests"].get("entry_point"))
        loop = asyncio.get_running_loop()
        verdict = await loop.run_in_executor(
            self.pool, run_checks, code, task["checks"], task["tests"], self.sandbox
        )
        return verdict, time.perf_counter() - started

    async def _stage(self, req, rec, task: dict, stage: dict, is_last: bool):
        """Ask one stage's model and run its answer on the examples; fills ``stage`` and
        returns the completion (None when the upstream failed)."""
        model, upstream = stage["model"], self.service.upstream
        try:
            completion, upstream_s = await upstream.ask(model, req)
        except Exception as exc:  # noqa: BLE001 - any upstream failure escalates
            upstream.failed(rec, model, exc)
            stage.update(verdict="upstream_error", reason=rec.attempts[-1]["error"])
            return None
        verdict, sandbox_s = await self._verify(task, completion.text)
        rec.sandbox_s += sandbox_s
        self.service.metrics.upstream.labels(model).observe(upstream_s)
        self.service.metrics.answered(model, completion)
        accepted = accepts(self.policy, verdict)
        name = _verdict_name(verdict)
        self.stage_count.labels(model, name, str(accepted).lower()).inc()
        if task["checks"]:
            self.sandbox_seconds.observe(sandbox_s)
        stage.update(
            verdict=name,
            accepted=accepted,
            passed=verdict.n_passed,
            total=verdict.n_total,
            sandbox_ms=round(sandbox_s * 1000, 3),
            upstream_ms=round(upstream_s * 1000, 3),
            input_tokens=getattr(completion, "input_tokens", None),
            output_tokens=getattr(completion, "output_tokens", None),
            cost_usd=getattr(completion, "cost_usd", None),
            reason=_reason(name, verdict, accepted, is_last),
            detail=verdict.detail[:200],
        )
        return completion

    async def run(self, req, rec, t0: float):
        """Stage by stage until an answer is accepted (module doc); the response."""
        task = task_view(req.prompt)
        rec.cascade, rec.sandbox_s, rec.cascade_examples = [], 0.0, len(task["checks"])
        stages = rec.cascade
        answers: dict[str, tuple] = {}  # model -> (completion, stage index)
        chosen = None
        last = len(self.policy.stages) - 1
        for j, (spec, model, why) in enumerate(await self._stage_models(req, rec)):
            stage = {"stage": j, "spec": spec, "model": model, "verdict": None, "accepted": False}
            stages.append(stage)
            if model is None:  # the router could not score the prompt
                stage.update(verdict="router_error", reason=why)
                continue
            if model in answers or any(s["model"] == model for s in stages[:-1]):
                stage.update(verdict="repeat", reason="model already asked at an earlier stage")
                if j == last and model in answers:
                    chosen = answers[model][1]
                continue
            completion = await self._stage(req, rec, task, stage, j == last)
            if completion is None:
                continue
            answers[model] = (completion, j)
            if stage["accepted"] or j == last:
                chosen = j
                break
        if chosen is None and answers:  # the last stage(s) failed upstream: the latest answer
            chosen = max(j for _, j in answers.values())
            stages[chosen]["reason"] += "; later stages failed, so returned"
        if chosen is None:
            raise self.service.upstream.all_failed(rec)
        model = stages[chosen]["model"]
        return self._respond(req, rec, t0, model, answers[model][0])

    def _respond(self, req, rec, t0: float, model: str, completion):
        service, stages = self.service, rec.cascade
        called = [s for s in stages if "upstream_ms" in s]
        service.served(rec, model, None, None)
        rec.input_tokens = _sum([s["input_tokens"] for s in called])
        rec.output_tokens = _sum([s["output_tokens"] for s in called])
        rec.cost_usd = _sum([s["cost_usd"] for s in called])
        rec.upstream_s = sum(s["upstream_ms"] for s in called) / 1000
        rec.model_id = getattr(completion, "model_id", None) or rec.model_id
        rec.finish_reason = getattr(completion, "finish_reason", None) or "stop"
        rec.relative_cost = sum(float(service.model_cfg[s["model"]]["cost"]) for s in called)
        text = completion.text
        if rec.log_text:
            rec.text = text
        service.finish(rec, 200, t0)
        usage = Usage.of(rec.input_tokens, rec.output_tokens)
        info = {
            **service.codyn_info(rec),
            "cascade": stages,
            "examples": rec.cascade_examples,
            "sandbox_ms": round(rec.sandbox_s * 1000, 3),
        }
        headers = service.headers(rec)
        headers["x-codyn-cascade"] = _cascade_header(stages)
        headers["x-codyn-sandbox-ms"] = f"{rec.sandbox_s * 1000:.3f}"
        finish = rec.finish_reason
        if not req.stream:
            body = completion_body(rec.request_id, model, text, finish, usage, info)
            return JSONResponse(body, headers=headers)
        headers["cache-control"] = "no-cache"
        events = replay(Chunks(rec.request_id, model), text, finish, usage, req.include_usage, info)
        return StreamingResponse(events, media_type="text/event-stream", headers=headers)
