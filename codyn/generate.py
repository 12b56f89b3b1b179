"""The generate stage: ask one model of the portfolio to answer every task of a dataset.

``generate(tasks_path, out_path, model_name, model_cfg, generation_cfg, seed)`` reads
``data/tasks/{dataset}.jsonl``, looks every task up in the response cache
(:mod:`codyn.cache`), asks the backend only what is missing (a thread pool of
``generation.concurrency``; tqdm progress with rate and ETA on stderr), appends
each answer to the cache as it arrives, then writes
``results/responses/{dataset}/{model}.jsonl`` atomically from the cache: one
record per task, in task order.

A failed request becomes an error record. The job fails (no output written) only
when the share of tasks without an answer exceeds ``generation.max_error_rate``.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from tqdm import tqdm

from codyn.backends import Backend, BackendError, make_backend
from codyn.cache import ResponseCache, cache_key, cache_path
from codyn.errors import CodynError, InputError
from codyn.io import read_jsonl, write_jsonl
from codyn.records import RESPONSE_FIELDS, validate_record, validate_task

log = logging.getLogger(__name__)


class GenerateError(CodynError):
    """Too many requests failed; carries the job summary."""

    def __init__(self, message: str, summary: dict):
        super().__init__(message)
        self.summary = summary


def replay_inputs(config: dict, model: str, dataset: str) -> list[str]:
    """The published-answers file a replay model reads for ``dataset`` (none otherwise)."""
    cfg = config["models"][model]
    if cfg.get("backend") != "replay":
        return []
    from codyn.backends.replay import replay_path

    return [str(replay_path(model, cfg, dataset))]


def load_tasks(path) -> list[dict]:
    tasks, seen = [], {}
    for lineno, rec in enumerate(read_jsonl(path), start=1):
        validate_task(rec, path=path, record=f"line {lineno}")
        if rec["id"] in seen:
            raise InputError(
                f"duplicate id (first on line {seen[rec['id']]})",
                path=path,
                record=f"line {lineno}",
                field="id",
            )
        seen[rec["id"]] = lineno
        tasks.append(rec)
    return tasks


def task_messages(task: dict) -> list[dict]:
    """The chat sent for a task: its prompt (paper A.8 template) as one user turn."""
    return [{"role": "user", "content": task["prompt"]}]


def _answer_record(
    backend: Backend, key: str, task: dict, messages: list[dict], params: dict
) -> dict:
    """Ask once; the cache record (answer or error) for ``key``."""
    rec = {
        "key": key,
        "backend": backend.kind,
        "model": backend.model_name,
        "model_id": backend.model_id,
        "simulated": backend.simulated,
        "asked_for": task["id"],
        "asked_at": time.time(),
    }
    try:
        c = backend.complete(messages, params, task)
    except BackendError as exc:
        rec.update(
            text=None,
            input_tokens=None,
            output_tokens=None,
            latency_s=None,
            cost_usd=None,
            finish_reason=None,
            error=str(exc),
            error_kind=exc.kind,
        )
        return rec
    rec.update(
        text=c.text,
        input_tokens=c.input_tokens,
        output_tokens=c.output_tokens,
        latency_s=c.latency_s,
        cost_usd=c.cost_usd,
        model_id=c.model_id,
        finish_reason=c.finish_reason,
        cost_estimated=c.cost_estimated,
        error=None,
        error_kind=None,
    )
    return rec


def response_record(cached: dict, task: dict, model_name: str, backend: Backend) -> dict:
    """The published response record (exactly RESPONSE_FIELDS) for ``task``."""
    in_tok, out_tok = cached.get("input_tokens"), cached.get("output_tokens")
    cost = backend.cost(in_tok, out_tok)  # today's prices, not those at asking time
    if cost is None:
        cost = cached.get("cost_usd")
    rec = {
        "task_id": task["id"],
        "dataset": task["dataset"],
        "model": model_name,
        "backend": backend.kind,
        "model_id": cached.get("model_id", backend.model_id),
        "key": cached["key"],
        "text": cached.get("text"),
        "input_tokens": in_tok,
        "output_tokens": out_tok,
        "latency_s": cached.get("latency_s"),
        "cost_usd": cost,
        "cost_estimated": bool(cached.get("cost_estimated", False)),
        "error": cached.get("error"),
        "simulated": bool(backend.simulated),
    }
    return validate_record(rec, RESPONSE_FIELDS, record=task["id"])


def _ask_missing(backend, cache, pending: dict, max_workers: int, desc: str) -> list[dict]:
    """Ask every (key -> (task, messages, params)) in ``pending``; append results to the cache."""
    results = []
    if not pending:
        return results
    bar = tqdm(
        total=len(pending),
        desc=desc,
        unit="req",
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=0.5,
    )
    items = iter(pending.items())
    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="generate") as pool:
        running = set()
        try:
            # Submit lazily (at most 2x workers queued) so an interrupt loses little work.
            while True:
                while len(running) < 2 * max_workers:
                    nxt = next(items, None)
                    if nxt is None:
                        break
                    key, (task, messages, params) = nxt
                    running.add(pool.submit(_answer_record, backend, key, task, messages, params))
                if not running:
                    break
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    rec = fut.result()
                    cache.append(rec)
                    results.append(rec)
                    bar.update(1)
                    if rec["error"] is not None:
                        bar.set_postfix(errors=sum(r["error"] is not None for r in results))
        except BaseException:
            for fut in running:
                fut.cancel()
            raise
        finally:
            bar.close()
    return results


def generate(
    tasks_path,
    out_path,
    model_name: str,
    model_cfg: dict,
    generation_cfg: dict,
    seed: int,
    cache_dir="cache",
    *,
    backend: Backend | None = None,
) -> dict:
    """Answer every task of ``tasks_path`` with one model; write ``out_path``; return the summary.

    ``backend`` overrides the one ``model_cfg`` names (tests inject stubbed clients).
    Raises :class:`GenerateError` (and writes nothing) above ``max_error_rate``.
    """
    started = time.perf_counter()
    tasks = load_tasks(tasks_path)
    backend = backend or make_backend(model_name, model_cfg, generation_cfg, seed=seed)
    try:
        params = backend.params()
        cache = ResponseCache(cache_path(cache_dir, backend.kind, model_name))
        answers, old_errors = cache.load()
        keyed, pending = _keyed_tasks(tasks, backend, params, answers)
        n_cached = sum(1 for _, key in keyed if key in answers)
        log.info(
            "%s: %d tasks, %d cached, %d to ask (%d failed before) with %s",
            model_name,
            len(tasks),
            n_cached,
            len(pending),
            sum(1 for k in pending if k in old_errors),
            backend.kind,
        )
        conc = int(generation_cfg.get("concurrency", 4))
        if backend.max_concurrency:
            conc = min(conc, backend.max_concurrency)
        try:
            fresh = _ask_missing(backend, cache, pending, max(1, conc), f"generate {model_name}")
        finally:
            cache.close()
        records, error_kinds = _response_records(keyed, answers, fresh, model_name, backend)
    finally:
        backend.close()

    n_err = sum(error_kinds.values())
    rate = n_err / len(records) if records else 0.0
    summary = {
        "model": model_name,
        "backend": backend.kind,
        "simulated": bool(backend.simulated),
        "tasks": len(records),
        "cached": n_cached,
        "asked": len(pending),
        "errors": n_err,
        "error_rate": round(rate, 4),
        "error_kinds": dict(error_kinds),
        "input_tokens": sum(r["input_tokens"] or 0 for r in records),
        "output_tokens": sum(r["output_tokens"] or 0 for r in records),
        "cost_usd": round(sum(r["cost_usd"] or 0.0 for r in records), 9),
        "cost_usd_this_run": round(sum(r["cost_usd"] or 0.0 for r in fresh), 9),
        "elapsed_s": round(time.perf_counter() - started, 3),
    }
    label = " (SIMULATED answers)" if backend.simulated else ""
    log.info("summary%s: %s", label, summary)
    max_rate = float(generation_cfg.get("max_error_rate", 0.05))
    if rate > max_rate:
        raise GenerateError(
            f"{n_err}/{len(records)} requests failed ({rate:.1%} > max_error_rate {max_rate:.1%}): "
            f"{dict(error_kinds)}; answers so far are cached, rerun to retry the failures",
            summary,
        )
    write_jsonl(out_path, records)
    return summary


def _keyed_tasks(
    tasks: list[dict], backend: Backend, params: dict, answers: dict
) -> tuple[list[tuple[dict, str]], dict]:
    """Each task with its cache key, and the requests to make (key -> task, messages,
    params) for the keys without a cached answer, each key once."""
    keyed, pending = [], {}
    for task in tasks:
        messages = task_messages(task)
        key = cache_key(backend.kind, backend.model_id, messages, params, backend.key_extra(task))
        keyed.append((task, key))
        if key not in answers and key not in pending:
            pending[key] = (task, messages, params)
    return keyed, pending


def _response_records(
    keyed: list[tuple[dict, str]], answers: dict, fresh: list[dict], model_name: str, backend
) -> tuple[list[dict], Counter]:
    """The response record of every task, in task order, and the count of each error kind."""
    fresh_by_key = {r["key"]: r for r in fresh}
    records, error_kinds = [], Counter()
    for task, key in keyed:
        cached = answers.get(key) or fresh_by_key[key]
        rec = response_record(cached, task, model_name, backend)
        if rec["error"] is not None:
            error_kinds[cached.get("error_kind") or "error"] += 1
        records.append(rec)
    return records, error_kinds


# --- helpers for rules/generate.smk (kept here so they are tested) ---


def generated_datasets(config: dict, names) -> list[str]:
    """Of ``names``, the datasets whose answers are generated (imported ones are not)."""
    return [n for n in names if config["datasets"][n]["adapter"] != "import"]


def generated_models(config: dict) -> list[str]:
    """Portfolio models that are asked (``import`` models have published scores only)."""
    return [m for m in config["portfolio"] if config["models"][m]["backend"] != "import"]


def uses_gpu(config: dict, model: str) -> int:
    """1 for local transformers models (the rule's ``gpu`` resource), else 0."""
    return 1 if config["models"][model]["backend"] == "hf" else 0


def model_config(config: dict, dataset: str, model: str) -> dict:
    """The ``models`` entry that answers ``dataset`` for portfolio slot ``model``.

    A dataset with a ``replay_portfolio`` (paper A.4: BigCodeBench's published samples
    stand in for the Llama models) answers that slot from the fetched generations
    (codyn.datasets.fetch.replay_file_name) with the slot's relative cost, as the paper
    did ("the same cost multipliers as with the original models"); prices are dropped
    (nobody is paid for a replayed answer).

    A replay model whose ``replay_file`` maps datasets to files gets only this dataset's
    file: the entry is the generate job's params, and another dataset's file (one added
    to the mapping) must not make this dataset's answers stale.
    """
    from codyn.datasets.fetch import replay_file_name
    from codyn.paths import DEFAULT_EXPERIMENT, layout

    base = config["models"][model]
    spec = (config["datasets"][dataset].get("replay_portfolio") or {}).get(model)
    if spec is None:
        if base.get("backend") == "replay" and isinstance(base.get("replay_file"), dict):
            from codyn.backends.replay import replay_path

            return {**base, "replay_file": str(replay_path(model, base, dataset))}
        return base
    return {
        "backend": "replay",
        "cost": base["cost"],
        "model_id": spec.get("published") or model,
        "replay_file": (
            f"{layout(config.get('experiment') or DEFAULT_EXPERIMENT).RAW.format(dataset=dataset)}"
            f"/{replay_file_name(model, spec)}"
        ),
        "params": {
            "replay_id_field": spec.get("id_field") or "task_id",
            "replay_text_field": spec.get("text_field") or "solution",
        },
        "size_b": base.get("size_b"),
    }


def name_pattern(names) -> str:
    """A wildcard constraint matching exactly these names (never matches when empty)."""
    return "|".join(re.escape(n) for n in names) or "(?!)"
