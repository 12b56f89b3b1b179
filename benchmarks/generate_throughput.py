"""Throughput of the generate stage against a local OpenAI-compatible server.

The server (tests/chat_server.py, a separate process on 127.0.0.1) answers every
request after a fixed delay, standing in for a model's latency. We time the real
generate() path (thread pool, HTTP client, cache appends with fsync, output write):

1. requests/s sequentially (concurrency 1) and with the configured concurrency;
2. a rerun where all 1,000 requests are cache hits (nothing is asked).

    .venv/bin/python benchmarks/generate_throughput.py [--delay 0.2] [--concurrency 8]

Prints a table and writes results/benchmarks/generate_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from chat_server import running_server, stats  # noqa: E402

import codyn.backends.openai_compat  # noqa: E402,F401 (the SDK import, ~1 s, is not timed)
from codyn.generate import generate  # noqa: E402
from codyn.io import write_json  # noqa: E402


def write_tasks(path: Path, n: int, tag: str) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(
                json.dumps(
                    {
                        "id": f"{tag}{i}",
                        "dataset": "bench",
                        "kind": "generate",
                        "language": "python",
                        "prompt": f"[{tag}] write function number {i}",
                        "reference": None,
                        "tests": None,
                        "label": None,
                        "meta": {},
                    }
                )
                + "\n"
            )
    return path


def run(url: str, work: Path, n: int, concurrency: int, tag: str) -> dict:
    tasks = write_tasks(work / f"{tag}.jsonl", n, tag)
    cfg = {"backend": "openai", "model_id": "echo", "base_url": url, "cost": 1}
    gen = {
        "concurrency": concurrency,
        "timeout_s": 30,
        "max_retries": 2,
        "max_error_rate": 0.0,
        "max_tokens": 64,
        "temperature": 0.0,
        "top_p": 1.0,
    }
    started = time.perf_counter()
    summary = generate(tasks, work / f"{tag}.out.jsonl", "bench", cfg, gen, 0, work / "cache")
    elapsed = time.perf_counter() - started
    return {
        "requests": n,
        "asked": summary["asked"],
        "cached": summary["cached"],
        "concurrency": concurrency,
        "seconds": round(elapsed, 3),
        "requests_per_s": round(n / elapsed, 2),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--delay", type=float, default=0.2, help="server delay per request (s)")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--sequential-requests", type=int, default=25)
    ap.add_argument("--cached-requests", type=int, default=1000)
    ap.add_argument("--out", default=str(REPO / "results/benchmarks/generate_throughput.json"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory() as tmp, running_server(delay=args.delay) as url:
        work = Path(tmp)
        seq = run(url, work, args.sequential_requests, 1, "seq")
        par = run(url, work, args.sequential_requests * args.concurrency, args.concurrency, "par")
        # Fill the cache with 1,000 answers (the server's delay off for the fill would need a
        # second server; at the configured concurrency this takes delay * 1000 / concurrency).
        fill = run(url, work, args.cached_requests, max(args.concurrency, 32), "hit")
        asked_before = stats(url)["total"]
        hit = run(url, work, args.cached_requests, args.concurrency, "hit")
        assert stats(url)["total"] == asked_before and hit["asked"] == 0, (
            "cache rerun asked the server"
        )

    speedup = par["requests_per_s"] / seq["requests_per_s"]
    result = {
        "server_delay_s": args.delay,
        "sequential": seq,
        "concurrent": par,
        "speedup": round(speedup, 2),
        "cache_fill": fill,
        "cache_hit_rerun": hit,
        "python": sys.version.split()[0],
    }
    print(f"server delay {args.delay * 1000:.0f} ms per request")
    print(f"{'case':<28}{'requests':>9}{'conc':>6}{'seconds':>10}{'req/s':>10}")
    for name, row in (
        ("sequential", seq),
        (f"concurrency {args.concurrency}", par),
        ("cache fill", fill),
        ("cache-hit rerun", hit),
    ):
        print(
            f"{name:<28}{row['requests']:>9}{row['concurrency']:>6}{row['seconds']:>10.3f}"
            f"{row['requests_per_s']:>10.1f}"
        )
    print(f"speedup concurrency {args.concurrency} / sequential: {speedup:.2f}x (goal >= 6x)")
    print(
        f"cache-hit rerun of {hit['requests']} requests: {hit['seconds']:.3f} s (goal well under 1 s)"
    )
    write_json(args.out, result)
    return 0 if speedup >= 6 and hit["seconds"] < 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
