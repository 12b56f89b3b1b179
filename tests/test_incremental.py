"""Incremental reruns and interrupted runs, on real Snakemake runs.

Two workflows:
* the small workflow of test_provenance (fast): kill -9 of a job and of
  snakemake itself, then resume;
* the embedded default (slow, one full run per session reused by every check):
  after a full run nothing is planned; changing one model's generation params,
  adding a dataset, changing one router's hyper-parameter or editing a script
  plans only the jobs that depend on the change.

What would rerun is read from ``snakemake --summary`` (its ``plan`` column).
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from codyn import paths as codyn_paths
from codyn import provenance
from codyn.job import content_sha256

REPO = Path(__file__).resolve().parent.parent
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
# What a copy of the pipeline needs; codyn itself is imported from the venv.
PIPELINE_FILES = (
    "Snakefile",
    "rules",
    "scripts",
    "envs",
    "config.yaml",
    "config",
    "profiles",
    "report",
    "data/inputs",
)
# The embedded default's paths (results/default/..., codyn/paths.py).
P = codyn_paths.layout(codyn_paths.DEFAULT_EXPERIMENT)
CORES = os.environ.get("CODYN_TEST_CORES", "2")
FULL_RUN_TIMEOUT = int(os.environ.get("CODYN_FULL_RUN_TIMEOUT", "2400"))


# ---------------------------------------------------------------- helpers
def copy_pipeline(dest: Path) -> Path:
    """The workflow files of this checkout in ``dest`` (a fresh working directory)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in PIPELINE_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest


def clone_run(src: Path, dest: Path) -> Path:
    """Copy a finished run; copy2 keeps mtimes, so Snakemake sees the same state."""
    shutil.copytree(src, dest, symlinks=True, ignore=shutil.ignore_patterns("locks"))
    return dest


def snakemake(folder: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SNAKEMAKE, "--cores", CORES, *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def planned(folder: Path, *args: str) -> dict[str, str]:
    """Outputs Snakemake would (re)create now, with their rule: {output: rule}."""
    done = snakemake(folder, "--summary", *args, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    plan = {}
    for line in done.stdout.splitlines():
        cols = line.split("\t")
        if len(cols) < 6 or cols[0] == "output_file":
            continue
        if cols[-1].strip() != "no update":
            plan[cols[0]] = cols[2]
    return plan


def overlay(folder: Path, name: str, values: dict) -> list[str]:
    """A config file merged over config.yaml (Snakemake merges nested keys). It names the
    default experiment: an unnamed config file would be an experiment of its own."""
    path = folder / name
    values = {"experiment": codyn_paths.DEFAULT_EXPERIMENT, **values}
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return ["--configfile", "config.yaml", name]


def matches(pattern: str, path: str, **fixed: str) -> bool:
    """Does ``path`` fit a codyn.paths pattern, with some wildcards fixed?"""
    regex = re.escape(pattern)
    for name in re.findall(r"\{(\w+)\}", pattern):
        value = re.escape(fixed[name]) if name in fixed else r"[^/]+"
        regex = regex.replace(re.escape("{" + name + "}"), f"(?P<{name}>{value})", 1)
    return re.fullmatch(regex + r"(/.*)?", path) is not None


def _script_processes(folder: Path, script_name: str) -> list[int]:
    """Pids running Snakemake's copy of a script in ``folder`` (.snakemake/scripts/tmpXXXX.<name>)."""
    wanted = f"{folder.resolve()}/.snakemake/scripts/tmp"
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if wanted in cmd and cmd.rstrip().endswith("." + script_name):
            pids.append(int(entry.name))
    return pids


def _with_pause(source: str, seconds: int) -> str:
    """The script with a sleep at its start (after any __future__ import)."""
    lines = source.splitlines(keepends=True)
    at = max(
        (i + 1 for i, line in enumerate(lines) if line.startswith("from __future__")), default=0
    )
    return "".join(lines[:at]) + f"import time; time.sleep({seconds})\n" + "".join(lines[at:])


def interrupt(folder: Path, script: Path, what: str, *args: str, wait: float = 900) -> None:
    """Start snakemake, and once a job of ``script`` runs, kill -9 it.

    ``what`` is "job" (the job's process dies, snakemake survives) or
    "snakemake" (snakemake and all its children die, like a lost node). The
    script is paused so the kill lands mid-job, then restored with its old
    mtime, so only Snakemake's own records can tell that the job did not end.
    """
    original, stat = script.read_text(), script.stat()
    script.write_text(_with_pause(original, 300))
    proc = subprocess.Popen(
        [SNAKEMAKE, "--cores", CORES, *args],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + wait
        while not (pids := _script_processes(folder, script.name)):
            assert proc.poll() is None, (
                f"snakemake ended before the job ran:\n{proc.stderr.read()[-3000:]}"
            )
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.2)
        time.sleep(1)
        if what == "job":
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            proc.wait(timeout=120)
            assert proc.returncode != 0
        else:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        script.write_text(original)
        os.utime(script, (stat.st_atime, stat.st_mtime))


# ---------------------------------------------------- small workflow (fast)
@pytest.fixture
def toy_run(tmp_path) -> Path:
    from test_provenance import make_workflow

    folder = make_workflow(tmp_path / "wf")
    # The workflow profile that the real pipeline picks up from profiles/default.
    shutil.copytree(REPO / "profiles" / "default", folder / "profiles" / "default")
    done = snakemake(folder)
    assert done.returncode == 0, done.stderr[-3000:]
    assert planned(folder) == {}
    return folder


@pytest.mark.parametrize("what", ["job", "snakemake"])
def test_kill_9_mid_job_is_resumed_without_clean_up(toy_run, what):
    folder = toy_run
    target = "results/scores/toy/m-small.csv"
    before = content_sha256(folder / target)
    # A params change makes the job rerun; it is undone after the kill, so that
    # only Snakemake's records can tell that the job did not finish.
    snakefile = folder / "Snakefile"
    original = snakefile.read_text()
    snakefile.write_text(original.replace('"cost": 1}', '"cost": 3}'))
    interrupt(folder, folder / "scripts" / "score.py", what, target)
    snakefile.write_text(original)

    marker = (
        folder / ".snakemake" / "incomplete" / base64.urlsafe_b64encode(target.encode()).decode()
    )
    if what == "job":
        # Snakemake saw the job die and removed its output: nothing stale is left.
        assert not (folder / target).exists()
    else:
        # Snakemake died too. It removes a job's old outputs before starting it,
        # and writes are atomic, so the output is absent, never half-written;
        # were it there, Snakemake's incomplete marker would flag it. The lock
        # stays: Snakemake's guard against two runs in one folder, lifted with
        # `--unlock` (which touches no output).
        assert not (folder / target).exists() or marker.exists()
        locked = snakemake(folder, target)
        assert locked.returncode != 0 and "LockException" in locked.stderr
        assert snakemake(folder, "--unlock").returncode == 0
    # Nothing else changed, yet the interrupted job is planned when its output
    # is asked for: that output does not pass as fresh (it is missing, or
    # Snakemake marked it incomplete and profiles/default reruns such jobs).
    assert planned(folder, target) == {target: "score"}
    done = snakemake(folder, target)
    assert done.returncode == 0, done.stderr[-3000:]
    assert planned(folder) == {}
    assert content_sha256(folder / target) == before
    assert [m for m in (folder / ".snakemake" / "incomplete").rglob("*") if m.is_file()] == []
    chain = provenance.trace("results/tables/table2.csv", folder)
    assert chain["status"] == "complete", chain["problems"]


# ----------------------------------------------- embedded default (slow)
_FULL_RUNS: dict[str, Path] = {}


def get_full_run(tmp_path_factory) -> Path:
    """One full run of the embedded default in a fresh copy of the pipeline.

    Cached per session: test_slurm compares its Slurm run with this one.
    """
    if "run" not in _FULL_RUNS and os.environ.get("CODYN_FULL_RUN_DIR"):
        # A finished run made earlier (developers' shortcut; CI runs it afresh).
        # It is copied, and the first check below proves it is up to date.
        source = Path(os.environ["CODYN_FULL_RUN_DIR"])
        _FULL_RUNS["run"] = clone_run(source, tmp_path_factory.mktemp("pipeline") / "run")
    if "run" not in _FULL_RUNS:
        folder = copy_pipeline(tmp_path_factory.mktemp("pipeline") / "run")
        started = time.monotonic()
        done = snakemake(folder, timeout=FULL_RUN_TIMEOUT)
        assert done.returncode == 0, done.stderr[-6000:]
        print(f"full run of the embedded default: {time.monotonic() - started:.0f} s")
        _FULL_RUNS["run"] = folder
    return _FULL_RUNS["run"]


@pytest.fixture(scope="session")
def full_run(tmp_path_factory) -> Path:
    return get_full_run(tmp_path_factory)


def _config(folder: Path) -> dict:
    return yaml.safe_load((folder / "config.yaml").read_text())


def _assert_only(plan: dict[str, str], allowed, must_have=()) -> None:
    unexpected = sorted(path for path in plan if not allowed(path))
    assert not unexpected, f"would rerun more than it should: {unexpected[:20]}"
    missing = sorted(set(must_have) - set(plan))
    assert not missing, f"would not rerun: {missing[:20]}"


# Per-dataset outputs up to the splits: a change elsewhere must leave them alone.
PER_DATASET_UPSTREAM = (P.RAW, P.TASKS, P.RESPONSES, P.SCORES, P.MATRIX, P.SPLIT, P.TARGETS)


@pytest.mark.slow
def test_full_run_then_nothing_is_planned(full_run):
    assert planned(full_run) == {}
    dry = snakemake(full_run, "-n")
    assert dry.returncode == 0
    assert "Nothing to be done" in dry.stdout + dry.stderr


@pytest.mark.slow
def test_provenance_of_table2_is_a_complete_chain(full_run):
    chain = provenance.trace(P.TABLE2, full_run)
    assert chain["status"] == "complete", chain["problems"][:20]
    rules = {job["rule"] for job in chain["jobs"]}
    assert {"generate", "score", "matrix"} <= rules
    for job in chain["jobs"]:
        assert job["packages"].get("codyn") and job["started"] and job["ended"]
        assert job["snakemake"] is not None
    # It ends in fetch jobs, one per dataset: the raw files they listed (each
    # still matching its sha256), or the codyn module that made the dataset.
    fetches = [job for job in chain["jobs"] if job["rule"] == "fetch"]
    assert {job["wildcards"]["dataset"] for job in fetches} == set(
        _config(full_run)["run_datasets"]
    )
    assert all(job["raw_files"] or job["generator"] for job in fetches)
    assert any(job["raw_files"] for job in fetches)  # HumanEval, from its package
    # Backend and model ids of the answers, and the routers' cost weights.
    facts = [job["key_facts"] for job in chain["jobs"]]
    assert any(f.get("backend") == "replay" for f in facts)
    assert any("lambda2" in f for f in facts)
    done = subprocess.run(
        [sys.executable, "-m", "codyn.cli", "provenance", P.TABLE2],
        cwd=full_run,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "rule generate" in done.stdout


@pytest.mark.slow
def test_one_models_generation_params_rerun_only_its_jobs(full_run):
    config = _config(full_run)
    model = config["portfolio"][0]
    others = [m for m in config["portfolio"] if m != model]
    extra = overlay(
        full_run, "changed-model.yaml", {"models": {model: {"params": {"temperature": 0.7}}}}
    )
    plan = planned(full_run, *extra)

    def allowed(path: str) -> bool:
        if matches(P.TASKS, path):
            return False
        if matches(P.RESPONSES, path) or matches(P.SCORES, path):
            return matches(P.RESPONSES, path, model=model) or matches(P.SCORES, path, model=model)
        return True  # downstream of the scores (matrix, splits, routers, tables)

    own = [p for p in plan if matches(P.RESPONSES, p, model=model)]
    assert own, "changing the model's params reruns none of its generate jobs"
    _assert_only(plan, allowed)
    assert not any(matches(P.RESPONSES, p, model=m) for p in plan for m in others)
    assert any(matches(P.SCORES, p, model=model) for p in plan)


@pytest.mark.slow
def test_adding_a_dataset_reruns_nothing_of_the_others(full_run):
    config = _config(full_run)
    old = list(config["run_datasets"])
    template = "humaneval"
    new = f"{template}-extra"
    # The replayed systems read the new dataset's answers from humaneval's files.
    replays = {
        m: {"replay_file": {new: config["models"][m]["replay_file"][template]}}
        for m in config["portfolio"]
    }
    extra = overlay(
        full_run,
        "added-dataset.yaml",
        {
            "datasets": {new: {**config["datasets"][template], "limit": 12}},
            "run_datasets": [*old, new],
            "models": replays,
        },
    )
    plan = planned(full_run, *extra)

    def allowed(path: str) -> bool:
        return not any(
            matches(pattern, path, dataset=d) for pattern in PER_DATASET_UPSTREAM for d in old
        )

    _assert_only(plan, allowed, must_have=[P.TASKS.format(dataset=new)])


@pytest.mark.slow
def test_one_routers_hyperparameter_retrains_only_that_router(full_run, tmp_path):
    config = _config(full_run)
    router = next(r for r in config["run_routers"] if config["routers"][r]["type"] == "knn")
    k = config["routers"][router]["k"]
    extra = overlay(full_run, "changed-router.yaml", {"routers": {router: {"k": k + 2}}})
    plan = planned(full_run, *extra)

    def allowed(path: str) -> bool:
        if any(matches(pattern, path) for pattern in PER_DATASET_UPSTREAM):
            return False
        if matches(P.ROUTER, path):
            return matches(P.ROUTER, path, router=router)
        if matches(P.PREDICTIONS, path):
            return matches(P.PREDICTIONS, path, router=router)
        if matches(P.EVAL, path):
            return matches(P.EVAL, path, router=router)
        return True  # tables and figures that gather every router

    must = [P.ROUTER_JSON.format(router=router, setting=s) for s in config["cost_settings"]]
    _assert_only(plan, allowed, must_have=must)

    # And for real: the rerun does exactly that, after which nothing is planned.
    run = clone_run(full_run, tmp_path / "run")
    extra = overlay(run, "changed-router.yaml", {"routers": {router: {"k": k + 2}}})
    done = snakemake(run, *extra, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    assert planned(run, *extra) == {}
    for other in config["run_routers"]:
        for setting in config["cost_settings"]:
            path = P.ROUTER_JSON.format(router=other, setting=setting)
            if other == router:
                assert content_sha256(run / path) != content_sha256(full_run / path), path
            else:  # not rewritten at all: same bytes, same mtime
                assert (run / path).stat().st_mtime == (full_run / path).stat().st_mtime, path


@pytest.mark.slow
def test_editing_a_script_reruns_only_its_rules_jobs(full_run, tmp_path):
    run = clone_run(full_run, tmp_path / "run")
    script = run / "scripts" / "matrix.py"
    script.write_text(script.read_text() + "\n# edited\n")
    plan = planned(run)
    config = _config(run)
    must = [P.MATRIX.format(dataset=d) for d in config["run_datasets"]]

    def allowed(path: str) -> bool:
        return not any(matches(p, path) for p in (P.TASKS, P.RESPONSES, P.SCORES))

    _assert_only(plan, allowed, must_have=must)
    assert {plan[m] for m in must} == {"matrix"}


@pytest.mark.slow
@pytest.mark.parametrize("what", ["job", "snakemake"])
def test_kill_9_mid_job_of_the_pipeline(full_run, tmp_path, what):
    run = clone_run(full_run, tmp_path / "run")
    config = _config(run)
    dataset = config["run_datasets"][0]
    target = P.MATRIX.format(dataset=dataset)
    before = content_sha256(run / target)
    # Scores are deterministic: an edited-then-restored script must give the same matrix.
    script = run / "scripts" / "matrix.py"
    os.utime(script)  # "edited": reruns the matrix jobs
    interrupt(run, script, what, target)
    if what == "snakemake":
        assert snakemake(run, "--unlock").returncode == 0
    assert target in planned(run, target)
    # Only the target: editing matrix.py would otherwise retrain every router.
    done = snakemake(run, target, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    assert planned(run, target) == {}
    assert content_sha256(run / target) == before


@pytest.mark.slow
def test_two_experiments_in_one_checkout_keep_their_outputs(full_run, tmp_path):
    """A second experiment built after the default writes under its own name: the default's
    tables stay byte for byte, and `snakemake -n` plans nothing for either afterwards."""
    run = clone_run(full_run, tmp_path / "run")
    before = {p: content_sha256(p) for p in (run / "results" / "default").rglob("*") if p.is_file()}
    second = overlay(
        run,
        "second.yaml",
        {
            "experiment": "second",
            "run_datasets": ["humaneval"],
            "datasets": {"humaneval": {"limit": 40}},
            "portfolio": ["gpt35-analogical", "gpt4-cot"],
            "run_routers": ["random", "oracle", "sbs"],
        },
    )
    done = snakemake(run, *second)
    assert done.returncode == 0, done.stderr[-3000:]
    mine = codyn_paths.layout("second")
    for table in (mine.TABLE2, mine.ORACLE_GAP, mine.CASCADE):
        assert (run / table).is_file(), table
    assert "results/second/" in mine.TABLE2 and "results/default/" in P.TABLE2
    after = {p: content_sha256(p) for p in (run / "results" / "default").rglob("*") if p.is_file()}
    assert after == before
    assert planned(run) == {}
    assert planned(run, *second) == {}
