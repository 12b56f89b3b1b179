"""Tiny routing data, routers trained on it, and configs, for the route CLI and server tests.

Two kinds of prompts: list chores every model solves (so the cheapest should get them)
and graph/dynamic-programming problems only the large model solves. A router that reads
the prompt can tell them apart; the data is written in the targets format that
codyn.routing_data reads, so routers train on it exactly as in the pipeline.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from codyn.ranking import ranking_score
from codyn.routers import make_router
from codyn.routing_data import load_routing_data
from codyn.splits import fit_scaler

REPO = Path(__file__).resolve().parent.parent
MODELS = ["sim-small", "sim-mid", "sim-large"]
COSTS = {"sim-small": 1.0, "sim-mid": 5.0, "sim-large": 72.0}
SETTINGS = {"setting1": 0.0, "setting2": 0.25}

EASY = [
    "Write a Python function that returns the sum of a list of integers.",
    "Write a function that reverses a string.",
    "Return the maximum element of a list of numbers.",
    "Count how many times a character appears in a string.",
    "Write a function that checks whether a list is empty.",
    "Return the first element of a list, or None for an empty list.",
    "Concatenate two lists and return the result.",
    "Write a function that converts a string to upper case.",
    "Return the length of the longest word in a sentence.",
    "Remove duplicates from a list while keeping the order.",
    "Write a function that squares every number in a list.",
    "Return the last character of a string.",
    "Check whether a number is even.",
    "Join a list of strings with commas.",
    "Return the minimum of three numbers.",
    "Write a function that counts the vowels in a word.",
]
HARD = [
    "Find the shortest path in a weighted directed graph with negative edges and detect negative cycles.",
    "Compute the maximum flow of a network with Dinic's algorithm and return the min cut.",
    "Solve the travelling salesman problem on 18 cities with bitmask dynamic programming.",
    "Count the number of distinct palindromic subsequences modulo 1e9+7 with dynamic programming.",
    "Find strongly connected components of a directed graph with Tarjan's algorithm.",
    "Compute the longest increasing subsequence in O(n log n) and reconstruct it.",
    "Given a tree with 2e5 nodes answer lowest common ancestor queries with binary lifting.",
    "Implement a segment tree with lazy propagation for range add and range minimum queries.",
    "Find the minimum cost bipartite matching with the Hungarian algorithm.",
    "Count lattice paths avoiding obstacles on a grid with dynamic programming modulo a prime.",
    "Compute articulation points and bridges of an undirected graph.",
    "Solve the knapsack problem with item dependencies forming a tree using tree dynamic programming.",
    "Find the number of shortest paths between two nodes of a graph with Dijkstra.",
    "Minimise the edit distance between two strings with weighted operations and print the alignment.",
    "Detect a cycle in a directed graph and return the nodes of one cycle in order.",
    "Compute the convex hull of 1e5 points and the diameter of the point set.",
]


def task_frame() -> pd.DataFrame:
    rows = []
    for kind, prompts, scores in (("easy", EASY, (1.0, 1.0, 1.0)), ("hard", HARD, (0.0, 0.0, 1.0))):
        for i, prompt in enumerate(prompts):
            row = {
                "task_id": f"{kind}-{i}",
                "dataset": "toy",
                "kind": "generate",
                "prompt": prompt,
                "split": "test" if i % 4 == 3 else "train",
            }
            for m, s in zip(MODELS, scores, strict=True):
                row[f"score::{m}"] = s
            rows.append(row)
    return pd.DataFrame(rows)


def write_targets(path: Path) -> Path:
    """A targets.parquet in the format of codyn.splits / codyn.routing_data."""
    frame = task_frame()
    raw = frame[[f"score::{m}" for m in MODELS]].set_axis(MODELS, axis=1)
    scaler = fit_scaler(raw[frame["split"] == "train"])
    norm = np.column_stack([(raw[m] - scaler[m]["mean"]) / scaler[m]["std"] for m in MODELS])
    for j, m in enumerate(MODELS):
        frame[f"norm::{m}"] = norm[:, j]
    costs = np.array([COSTS[m] for m in MODELS])
    for name, lambda2 in SETTINGS.items():
        rs = ranking_score(norm, costs, lambda2=lambda2)
        for j, m in enumerate(MODELS):
            frame[f"rs::{name}::{m}"] = rs[:, j]
    meta = {
        "models": MODELS,
        "costs": COSTS,
        "settings": SETTINGS,
        "lambda1": 1.0,
        "scaler": scaler,
        "simulated": True,
        "dataset": "toy",
    }
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({b"codyn": json.dumps(meta).encode()})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def train_router(router_type: str, targets: Path, out: Path, params: dict | None = None) -> Path:
    data = load_routing_data([targets], "setting1", "train")
    make_router(router_type, params or {}, seed=7).fit(data).save(out)
    return out


def write_config(path: Path, *, models: dict | None = None, serve: dict | None = None) -> Path:
    """A valid config whose portfolio is the toy one (simulated unless ``models`` says else)."""
    entries = {
        m: {
            "backend": "simulated",
            "cost": COSTS[m],
            "size_b": size,
            "price_in": 0.5,
            "price_out": 1.5,
        }
        for m, size in zip(MODELS, (8, 70, 405), strict=True)
    }
    entries.update(models or {})
    config = {
        "seed": 11,
        "run_datasets": ["humaneval"],
        "datasets": {"humaneval": {"adapter": "humaneval", "source": "package"}},
        "portfolio": list(entries),
        "models": entries,
        "serve": serve or {},
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def python_env(cache_dir: Path, extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env["CODYN_CACHE"] = str(cache_dir)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


def start_serve(router_dir, configs, root: Path, name: str, env: dict, timeout_s: float = 90.0):
    """``codyn serve`` on a free port with ``configs``; its log is ``root/<name>.log``."""
    port_file = root / f"{name}.port"
    return start_process(
        [
            "-m",
            "codyn.cli",
            "serve",
            "--router",
            str(router_dir),
            "--config",
            *map(str, configs),
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--log-level",
            "warning",
        ],
        port_file,
        env,
        root / f"{name}.log",
        timeout_s=timeout_s,
    )


def start_process(
    args: list[str], port_file: Path, env: dict, log_file: Path, timeout_s: float = 90.0
):
    """Start a server process that writes its port to ``port_file``; returns (process, port)."""
    log = open(log_file, "wb")
    proc = subprocess.Popen(
        [sys.executable, *args], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"server exited with {proc.returncode}:\n{log_file.read_text()[-3000:]}"
            )
        if port_file.exists() and port_file.read_text().strip():
            port = int(port_file.read_text())
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return proc, port
            except OSError:
                pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"server did not start in {timeout_s} s:\n{log_file.read_text()[-3000:]}")


def stop_process(proc) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
