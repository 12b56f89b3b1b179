"""What every Snakemake script does around its one library call.

``with job(snakemake) as log:`` sends logging to the rule's log file, and after the
body succeeds writes a provenance sidecar for each output (see codyn.provenance):
rule, wildcards, params, inputs and outputs with sha256, code version, package
versions and start/end times. Snakemake's own metadata holds some of this; the
sidecar adds what it lacks and survives outside ``.snakemake/``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import logging
import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

from codyn.io import sha256_file, write_json

PROVENANCE_DIR = "provenance"
TRACKED_PACKAGES = (
    "codyn",
    "snakemake",
    "torch",
    "transformers",
    "peft",
    "trl",
    "scikit-learn",
    "pandas",
    "numpy",
    "codebleu",
    "sentence-transformers",
    "boto3",
)


def sidecar_path(output: str | os.PathLike, root: str | os.PathLike = ".") -> Path:
    return Path(root) / PROVENANCE_DIR / (str(Path(output)) + ".json")


def git_state(root: str | os.PathLike = ".") -> dict:
    def run(*args):
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=10
        ).stdout.strip()

    try:
        commit = run("rev-parse", "HEAD") or None
        # Outside a git checkout there is no commit and "dirty" means nothing.
        dirty = bool(run("status", "--porcelain", "--untracked-files=no")) if commit else None
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    return {"commit": commit, "dirty": dirty}


def package_versions() -> dict:
    out = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def content_sha256(path: str | os.PathLike) -> str | None:
    """sha256 of a file, or of a folder's files (relative names and their sha256).

    Router checkpoints are folders (``directory()`` outputs), so a folder gets one
    digest that changes when any file in it is added, removed or edited.
    """
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    if not path.is_dir():
        return None
    digest = hashlib.sha256()
    # Snakemake touches .snakemake_timestamp in a folder output after the job ends.
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.name != ".snakemake_timestamp")
    for file in files:
        digest.update(f"{file.relative_to(path).as_posix()}\0{sha256_file(file)}\n".encode())
    return digest.hexdigest()


def content_bytes(path: str | os.PathLike) -> int | None:
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return None


def _files(named) -> dict:
    out = {}
    for key, value in named.items():
        for path in value if isinstance(value, list) else [value]:
            path = str(path)
            out[path] = {"key": key, "sha256": content_sha256(path), "bytes": content_bytes(path)}
    return out


def script_info(smk) -> dict | None:
    """The rule's script (path and sha256), which Snakemake's metadata does not record.

    Snakemake runs a copy named ``tmpXXXX.<script name>`` with a preamble; the
    original sits in ``smk.scriptdir``.
    """
    scriptdir = getattr(smk, "scriptdir", None)
    running = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    if not scriptdir or not running.startswith("tmp") or "." not in running:
        return None
    original = Path(scriptdir) / running.split(".", 1)[1]
    if not original.is_file():
        return None
    try:
        shown = os.path.relpath(original)
    except ValueError:
        shown = str(original)
    return {"path": shown, "sha256": sha256_file(original)}


def _plain(obj):
    """Params as JSON-able data (Snakemake wraps them in Namedlist)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, str | int | float | bool) or obj is None:
        return obj
    return str(obj)


def write_sidecars(smk, started: _dt.datetime, ended: _dt.datetime) -> None:
    outputs = [str(p) for p in smk.output]
    record = {
        "rule": smk.rule,
        "wildcards": dict(smk.wildcards.items()),
        "params": _plain(dict(smk.params.items())),
        "inputs": _files(dict(smk.input.items()) or {"input": list(smk.input)}),
        "outputs": _files(dict(smk.output.items()) or {"output": outputs}),
        "log": [str(p) for p in smk.log],
        "threads": getattr(smk, "threads", None),
        "resources": _plain(
            {k: v for k, v in dict(smk.resources.items()).items() if not k.startswith("_")}
        )
        if hasattr(smk, "resources")
        else {},
        "script": script_info(smk),
        "code": git_state(),
        "packages": package_versions(),
        "host": platform.node(),
        # Set when the job ran under Slurm: ties the result to the cluster's job record.
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "started": started.isoformat(),
        "ended": ended.isoformat(),
    }
    for out in outputs:
        write_json(sidecar_path(out), {**record, "path": out})


@contextlib.contextmanager
def job(smk) -> Iterator[logging.Logger]:
    log_path = smk.log[0] if len(smk.log) else None
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w", encoding="utf-8"))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    logger = logging.getLogger(f"codyn.{smk.rule}")
    started = _dt.datetime.now(_dt.UTC)
    try:
        yield logger
    except Exception:
        logger.exception("job failed")
        raise
    write_sidecars(smk, started, _dt.datetime.now(_dt.UTC))
