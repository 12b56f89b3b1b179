"""Profiles, rule resources, and real runs on a single-node Slurm cluster.

The cluster (tests/slurm_cluster.py) is real: Debian's slurm-wlm and munge,
installed with apt-get when missing (root only), slurmctld and slurmd on this
host, no GPU, one gres-free partition. Tests that need it carry the `slurm`
marker; without root or apt-get they skip, unless CODYN_REQUIRE_SLURM=1 (CI),
which turns the skip into a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from codyn import paths as codyn_paths
from codyn import provenance
from codyn.job import content_sha256

sys.path.insert(0, str(Path(__file__).resolve().parent))
from slurm_cluster import SlurmCluster, SlurmUnavailable  # noqa: E402
from test_incremental import REPO, SNAKEMAKE, copy_pipeline, get_full_run, planned  # noqa: E402

PROFILES = REPO / "profiles"
# The embedded default's slice that goes through Slurm: the real HumanEval
# dataset from fetch to its score matrix, over the whole simulated portfolio
# (13 jobs: fetch, prepare, 5 generate, 5 score, matrix). The whole default is
# some 300 jobs, each a fresh Snakemake process under Slurm: too slow for CI's
# 2 cores, and the rest of the DAG adds no Slurm behaviour this slice lacks.
P = codyn_paths.layout(codyn_paths.DEFAULT_EXPERIMENT)
SLURM_TARGETS = os.environ.get("CODYN_SLURM_TARGETS", P.MATRIX.format(dataset="humaneval")).split()


# ------------------------------------------------------------ profiles
def _top_level_keys(path: Path) -> list[tuple[int, str]]:
    lines = path.read_text().splitlines()
    return [
        (i, m.group(1))
        for i, line in enumerate(lines)
        if (m := re.match(r"^([A-Za-z][\w-]*):", line))
    ]


@pytest.mark.parametrize("profile", ["default", "local", "slurm"])
def test_every_profile_key_is_commented(profile):
    path = PROFILES / profile / "config.yaml"
    lines = path.read_text().splitlines()
    keys = _top_level_keys(path)
    assert keys, f"{path} sets nothing"
    for index, key in keys:
        above = lines[index - 1] if index else ""
        assert above.startswith("#"), f"{path}: key {key!r} has no comment right above it"
    yaml.safe_load(path.read_text())


def test_slurm_profile_uses_the_executor_plugin_and_squeue():
    profile = yaml.safe_load((PROFILES / "slurm" / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert profile["slurm-status-command"] == "squeue"
    assert {"mem_mb", "runtime"} <= set(profile["default-resources"])


def _rule_blocks() -> dict[str, str]:
    """Rule name -> its text, with a `use rule A as B` block prefixed by A's text."""
    blocks: dict[str, str] = {}
    for smk in sorted((REPO / "rules").glob("*.smk")):
        text = smk.read_text()
        starts = [
            (m.start(), m.group(1) or m.group(3), m.group(2))
            for m in re.finditer(r"^(?:rule (\w+):|use rule (\w+) as (\w+) with:)", text, re.M)
        ]
        if not starts:
            continue
        ends = [start for start, _, _ in starts[1:]] + [len(text)]
        for (start, name, base), end in zip(starts, ends, strict=True):
            body = text[start:end]
            blocks[name] = (blocks.get(base, "") + body) if base else body
    return blocks


def test_rules_carry_threads_memory_runtime_and_gpu_rules_an_a10g():
    blocks = _rule_blocks()
    assert blocks, "no rules found"
    profile = yaml.safe_load((PROFILES / "slurm" / "config.yaml").read_text())
    set_resources = profile.get("set-resources", {})
    for name, body in blocks.items():
        if "localrule: True" in body or not re.search(r"^\s+(script|shell|run):", body, re.M):
            continue
        missing = [k for k in ("threads:", "mem_mb=", "runtime=") if k not in body]
        assert not missing, f"rule {name} lacks {missing}"
        if re.search(r"^\s+gpu=1,?\s*$", body, re.M):
            entry = set_resources.get(name, {})
            assert entry.get("gpu_model") == "a10g" or "a10g" in str(entry.get("gres", "")), (
                f"GPU rule {name} has no A10G request in profiles/slurm"
            )
    # Every set-resources entry names a rule that exists.
    assert set(set_resources) <= set(blocks), set(set_resources) - set(blocks)


@pytest.mark.parametrize("profile", ["local", "slurm"])
def test_profiles_parse_in_snakemake(profile, tmp_path):
    from test_provenance import make_workflow

    folder = make_workflow(tmp_path / "wf")
    shutil.copytree(PROFILES, folder / "profiles")
    done = subprocess.run(
        [SNAKEMAKE, "--profile", f"profiles/{profile}", "-n"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"Using profiles profiles/{profile} and workflow specific profile" in done.stderr


# ------------------------------------------------------- real cluster
@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    try:
        with SlurmCluster(tmp_path_factory.mktemp("slurm")) as running:
            yield running
    except SlurmUnavailable as exc:
        if os.environ.get("CODYN_REQUIRE_SLURM") == "1":
            pytest.fail(f"CODYN_REQUIRE_SLURM=1 but {exc}")
        pytest.skip(str(exc))


def _gpu_rules() -> list[str]:
    return [n for n, body in _rule_blocks().items() if re.search(r"^\s+gpu=", body, re.M)]


def run_on_slurm(folder: Path, cluster: SlurmCluster, *targets: str, timeout: float = 1500):
    """`snakemake --executor slurm --profile profiles/slurm`, fitted to the test cluster.

    Only what the test cluster lacks is overridden: it has no GPU (GPU rules get
    gpu=0, so no --gpus request), few CPUs (--max-threads) and one partition
    (its default), and its status polls can be frequent.
    """
    gpu_off = [f"{rule}:gpu=0" for rule in _gpu_rules()]
    args = [
        SNAKEMAKE,
        *targets,  # before the options: --set-resources takes every word after it
        "--executor",
        "slurm",
        "--profile",
        "profiles/slurm",
        "--jobs",
        str(os.cpu_count() or 2),
        "--slurm-init-seconds-before-status-checks",
        "2",
        "--seconds-between-status-checks",
        "3",
        "--latency-wait",
        "10",
        # The node's CPUs: a rule asking for more threads gets this many.
        "--max-threads",
        str(os.cpu_count() or 2),
        *(["--set-resources", *gpu_off] if gpu_off else []),
    ]
    return subprocess.run(
        args, cwd=folder, env=cluster.env, capture_output=True, text=True, timeout=timeout
    )


def _slurm_log_ids(folder: Path) -> set[str]:
    """Job ids in the names of the plugin's per-job logs (logs/slurm/.../<jobid>.log)."""
    return {p.stem for p in (folder / "logs" / "slurm").rglob("*.log") if p.stem.isdigit()}


@pytest.mark.slow
@pytest.mark.slurm
def test_toy_workflow_runs_through_slurm(cluster, tmp_path):
    from test_provenance import make_workflow, run_snakemake

    local = make_workflow(tmp_path / "local")
    assert run_snakemake(local).returncode == 0
    folder = make_workflow(tmp_path / "wf")
    shutil.copytree(PROFILES, folder / "profiles")
    before = cluster.job_ids()
    done = run_on_slurm(folder, cluster, timeout=600)
    assert done.returncode == 0, done.stderr[-5000:] + cluster.logs()

    submitted = set(re.findall(r"submitted with SLURM jobid (\d+)", done.stderr))
    assert len(submitted) == 6  # every job but the local `all`
    assert submitted <= cluster.job_ids() - before
    assert submitted == _slurm_log_ids(folder)
    chain = provenance.trace("results/tables/table2.csv", folder)
    assert chain["status"] == "complete", chain["problems"]
    assert {job["slurm_job_id"] for job in chain["jobs"]} <= submitted
    assert all(job["slurm_job_id"] for job in chain["jobs"])
    for out in (
        "results/tables/table2.csv",
        "results/scores/toy/m-big.csv",
        "results/routers/r1/setting2",
    ):
        assert content_sha256(folder / out) == content_sha256(local / out), out


def _same_content(a: Path, b: Path) -> bool:
    if a.suffix == ".parquet":
        return pd.read_parquet(a).equals(pd.read_parquet(b))
    return content_sha256(a) == content_sha256(b)


@pytest.mark.slow
@pytest.mark.slurm
def test_embedded_default_through_slurm_equals_the_local_run(cluster, tmp_path_factory, tmp_path):
    full_run = get_full_run(tmp_path_factory)  # the local run, shared with test_incremental
    folder = copy_pipeline(tmp_path / "slurm-run")
    before = cluster.job_ids()
    started = time.monotonic()
    done = run_on_slurm(folder, cluster, *SLURM_TARGETS)
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-6000:] + cluster.logs()
    print(f"{len(SLURM_TARGETS)} target(s) through Slurm in {took:.0f} s")

    submitted = set(re.findall(r"submitted with SLURM jobid (\d+)", done.stderr))
    assert submitted, "no job was submitted to Slurm"
    assert submitted <= cluster.job_ids() - before
    assert submitted <= _slurm_log_ids(folder)

    produced = [p for p in (folder / "provenance").rglob("*.json")]
    assert produced, "no job wrote a provenance sidecar"
    compared = 0
    for target in SLURM_TARGETS:
        chain = provenance.trace(target, folder)
        assert chain["status"] == "complete", chain["problems"][:10]
        for job in chain["jobs"]:
            assert job["slurm_job_id"] in submitted, f"{job['rule']} did not run under Slurm"
            for out in job["outputs"]:
                if out["path"].startswith("results/responses/") or out["path"].endswith(".json"):
                    continue  # responses and run summaries (*.json) carry timings
                assert _same_content(folder / out["path"], full_run / out["path"]), out["path"]
                compared += 1
    assert compared >= len(SLURM_TARGETS)
    # Snakemake's records of the Slurm jobs are complete: locally, nothing is planned.
    assert planned(folder, *SLURM_TARGETS) == {}
