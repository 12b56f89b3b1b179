"""Where a result file came from: the chain of jobs back to raw data.

``codyn provenance PATH [--json]`` joins two records of every job:

* the sidecar ``provenance/<output>.json`` that :mod:`codyn.job` writes after a
  script succeeds: rule, wildcards, params (the config slice the job used, which
  carries backend and model ids and cost weights), inputs and outputs with sha256,
  the script with its sha256, git commit and dirty flag, package versions, host,
  Slurm job id, start and end times;
* Snakemake's own record ``.snakemake/metadata/<urlsafe-base64 of the path>``:
  rule, input list, input checksums, start/end times, conda env and software
  stack hash. It is what Snakemake decides reruns by, so it is shown beside ours.

Each input is traced the same way until a file has no producing job (raw data or
a file from outside the pipeline). A file whose current sha256 differs from the
one recorded when it was produced is reported as modified after it was produced.

Exit status: 0 when the chain is complete and every file matches its record,
1 when something is modified, missing or has no record, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import base64
import datetime as _dt
import json
import os
import sys
from collections import deque
from pathlib import Path

from codyn.job import PROVENANCE_DIR, content_sha256

# Param keys whose values say which backend, model and cost weight a job used.
# Shown apart from the full params so a reader finds them without parsing them.
KEY_FACTS = (
    "backend",
    "model",
    "model_id",
    "models",
    "portfolio",
    "cost",
    "costs",
    "cost_weight",
    "lambda2",
    "setting",
    "router",
    "base_model",
    "encoder",
)

STATUS_OK = "ok"
STATUS_MODIFIED = "modified after it was produced"
STATUS_MISSING = "missing"
STATUS_UNRECORDED = "no recorded sha256"


def _relative(path: str | os.PathLike, root: Path) -> str:
    path = Path(path)
    if path.is_absolute():
        try:
            path = path.resolve().relative_to(root.resolve())
        except ValueError:
            return str(path)
    return os.path.normpath(str(path))


def snakemake_metadata(path: str, root: Path) -> dict | None:
    """Snakemake's record for ``path`` (relative to the workdir), or None.

    Snakemake 9's file persistence names the record by the urlsafe base64 of the
    output path, split into folders of at most NAME_MAX characters (``@`` marks
    a continued segment).
    """
    folder = root / ".snakemake" / "metadata"
    if not folder.is_dir():
        return None
    b64 = base64.urlsafe_b64encode(path.encode()).decode()
    max_len = os.pathconf(folder, "PC_NAME_MAX") if os.name == "posix" else 255
    max_len = max_len or 255
    parts = [b64[i : i + max_len - 1] for i in range(0, len(b64), max_len - 1)]
    parts = ["@" + s for s in parts[:-1]] + [parts[-1]]
    record = folder.joinpath(*parts)
    if not record.is_file():
        return None
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # unreadable, not UTF-8, not JSON
        return None
    return data if isinstance(data, dict) else None


def _find_sidecar(path: str, root: Path) -> tuple[str, dict] | None:
    """The sidecar of ``path`` or of the folder output that contains it."""
    candidate = Path(path)
    # Stops at "." (relative paths) and at the file system root, whose parent is itself
    # (an absolute path outside the working directory).
    while str(candidate) not in ("", ".") and candidate.parent != candidate:
        sidecar = root / PROVENANCE_DIR / (str(candidate) + ".json")
        if sidecar.is_file():
            try:
                return str(candidate), json.loads(sidecar.read_text(encoding="utf-8"))
            except (OSError, ValueError, RecursionError):  # unreadable, not UTF-8, not JSON
                return None
        candidate = candidate.parent
    return None


# sha256 of files already hashed during one trace() (a chain reads the same
# split or matrix from many jobs); None outside trace(), where nothing is cached.
_SHA_CACHE: dict[Path, str | None] | None = None


def _current_sha(path: Path) -> str | None:
    if _SHA_CACHE is None:
        return content_sha256(path)
    if path not in _SHA_CACHE:
        _SHA_CACHE[path] = content_sha256(path)
    return _SHA_CACHE[path]


def _file_state(path: str, recorded_sha: str | None, root: Path) -> dict:
    current = _current_sha(root / path)
    if current is None:
        status = STATUS_MISSING
    elif recorded_sha is None:
        status = STATUS_UNRECORDED
    elif current == recorded_sha:
        status = STATUS_OK
    else:
        status = STATUS_MODIFIED
    return {"path": path, "sha256": recorded_sha, "current_sha256": current, "status": status}


def key_facts(params, found: dict | None = None) -> dict:
    """Backend, model ids, cost weights ... wherever they sit in the params."""
    found = {} if found is None else found
    if isinstance(params, dict):
        for key, value in params.items():
            if key in KEY_FACTS and not isinstance(value, dict):
                found.setdefault(key, value)
            key_facts(value, found)
    elif isinstance(params, list):
        for value in params:
            key_facts(value, found)
    return found


def _duration(started: str | None, ended: str | None) -> float | None:
    try:
        return (
            _dt.datetime.fromisoformat(ended) - _dt.datetime.fromisoformat(started)
        ).total_seconds()
    except (TypeError, ValueError):
        return None


def _snakemake_summary(meta: dict | None) -> dict | None:
    if meta is None:
        return None

    def iso(ts):
        return _dt.datetime.fromtimestamp(ts, _dt.UTC).isoformat() if ts else None

    return {
        "rule": meta.get("rule"),
        "input": meta.get("input") or [],
        "input_checksums": meta.get("input_checksums") or {},
        "starttime": iso(meta.get("starttime")),
        "endtime": iso(meta.get("endtime")),
        "incomplete": meta.get("incomplete"),
        "conda_env": bool(meta.get("conda_env")),
        "software_stack_hash": meta.get("software_stack_hash"),
        "record_format_version": meta.get("record_format_version"),
    }


def raw_files(manifest: str, root: Path) -> list[dict]:
    """Files a fetch job's MANIFEST.json lists (data/raw/{dataset}/), checked now.

    The manifest is fetch's one declared output; the raw files beside it are
    what the chain ends in, so they are shown with their recorded sha256.
    """
    try:
        listed = json.loads((root / manifest).read_text()).get("files", [])
    except (OSError, json.JSONDecodeError, AttributeError):
        return []
    folder = Path(manifest).parent
    out = []
    for entry in listed if isinstance(listed, list) else []:
        if not isinstance(entry, dict) or "path" not in entry:
            continue
        state = _file_state(str(folder / entry["path"]), entry.get("sha256"), root)
        state["origin"] = entry.get("origin") or entry.get("url")
        out.append(state)
    return out


def manifest_generator(manifest: str, root: Path) -> dict | None:
    try:
        generator = json.loads((root / manifest).read_text()).get("generator")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None
    return generator if isinstance(generator, dict) else None


def _job_from_records(output: str, sidecar: dict | None, meta: dict | None, root: Path) -> dict:
    problems = []
    if sidecar is not None:
        job = _job_from_sidecar(output, sidecar, root, problems)
    else:
        # A job without our sidecar (a shell rule, or a script not wrapped in
        # codyn.job): Snakemake's record still names the rule and the inputs.
        problems.append("no codyn sidecar: params, code version and sha256 not recorded")
        job = _job_from_snakemake(output, meta, root)
    inputs, outputs = job["inputs"], job["outputs"]
    manifests = [
        item["path"]
        for item in outputs
        if Path(item["path"]).name == "MANIFEST.json" and item["current_sha256"]
    ]
    job["raw_files"] = [raw for manifest in manifests for raw in raw_files(manifest, root)]
    for raw in job["raw_files"]:
        if raw["status"] != STATUS_OK:
            problems.append(f"raw file {raw['path']}: {raw['status']}")
    # Datasets codyn makes itself have no raw files; their manifest names the maker.
    job["generator"] = next(
        (manifest_generator(manifest, root) for manifest in manifests),
        None,
    )
    job["snakemake"] = _snakemake_summary(meta)
    if meta is not None and meta.get("incomplete"):
        problems.append("Snakemake marks this output incomplete")
    if meta is not None and sidecar is not None and meta.get("rule") != sidecar.get("rule"):
        problems.append(
            f"Snakemake's record names rule {meta.get('rule')!r}, the sidecar {sidecar.get('rule')!r}"
        )
    for item in outputs:
        if item["status"] != STATUS_OK:
            problems.append(f"output {item['path']}: {item['status']}")
    for item in inputs:
        if item["status"] not in (STATUS_OK,):
            problems.append(f"input {item['path']}: {item['status']}")
    job["problems"] = problems
    return job


def _job_from_sidecar(output: str, sidecar: dict, root: Path, problems: list[str]) -> dict:
    """The job as codyn.job's sidecar records it, its files checked against the disk."""
    inputs = [
        _file_state(p, info.get("sha256"), root) for p, info in sidecar.get("inputs", {}).items()
    ]
    outputs = [
        _file_state(p, info.get("sha256"), root) for p, info in sidecar.get("outputs", {}).items()
    ]
    script = sidecar.get("script")
    if script:
        script = {**script, **_file_state(script["path"], script.get("sha256"), root)}
        if script["status"] != STATUS_OK:
            problems.append(f"script {script['path']}: {script['status']}")
    return {
        "rule": sidecar.get("rule"),
        "wildcards": sidecar.get("wildcards", {}),
        "params": sidecar.get("params", {}),
        "key_facts": key_facts(sidecar.get("params", {})),
        "inputs": inputs,
        "outputs": outputs,
        "log": sidecar.get("log", []),
        "script": script,
        "code": sidecar.get("code", {}),
        "packages": sidecar.get("packages", {}),
        "threads": sidecar.get("threads"),
        "resources": sidecar.get("resources", {}),
        "host": sidecar.get("host"),
        "slurm_job_id": sidecar.get("slurm_job_id"),
        "started": sidecar.get("started"),
        "ended": sidecar.get("ended"),
        "seconds": _duration(sidecar.get("started"), sidecar.get("ended")),
        "sidecar": str(Path(PROVENANCE_DIR) / (output + ".json")),
    }


def _job_from_snakemake(output: str, meta: dict | None, root: Path) -> dict:
    """The job as far as Snakemake's own record tells it (rule, inputs, their checksums)."""
    checksums = (meta or {}).get("input_checksums") or {}
    inputs = [_file_state(p, None, root) for p in (meta or {}).get("input") or []]
    for item in inputs:
        recorded = checksums.get(item["path"])
        if recorded and recorded.startswith("sha256:"):
            recorded = recorded.removeprefix("sha256:")
        else:
            recorded = None
        if recorded and item["current_sha256"]:
            item["sha256"] = recorded
            item["status"] = STATUS_OK if recorded == item["current_sha256"] else STATUS_MODIFIED
    return {
        "rule": (meta or {}).get("rule"),
        "wildcards": {},
        "params": None,
        "key_facts": {},
        "inputs": inputs,
        "outputs": [_file_state(output, None, root)],
        "log": (meta or {}).get("log") or [],
        "script": None,
        "code": {},
        "packages": {},
        "started": None,
        "ended": None,
        "seconds": None,
        "sidecar": None,
    }


def trace(path: str | os.PathLike, root: str | os.PathLike = ".") -> dict:
    """The provenance chain of ``path``: its producing job and all upstream jobs.

    Returns ``{"target", "root", "status", "jobs", "sources", "problems"}``;
    ``jobs`` is breadth-first from the target (job 0 made the target), each job's
    inputs name the job that made them (``from_job``) or are sources.
    """
    global _SHA_CACHE
    _SHA_CACHE = {}
    try:
        return _trace(path, root)
    finally:
        _SHA_CACHE = None


def _trace(path: str | os.PathLike, root: str | os.PathLike = ".") -> dict:
    """The body of :func:`trace`."""
    root = Path(root)
    target = _relative(path, root)
    walk = _Walk(root)
    walk.run(target)
    jobs, sources = walk.jobs, walk.sources
    for job in jobs:
        for item in job["inputs"]:
            upstream = walk.job_of_output.get(item["path"])
            item["from_job"] = upstream
            if upstream is None:
                item["source"] = True

    problems = []
    if not jobs:
        problems.append(f"{target}: no record of a job that produced it (not a pipeline output?)")
    for job in jobs:
        problems += [f"job {job['id']} ({job['rule']}): {p}" for p in job["problems"]]
    for src in sources.values():
        if src["status"] == STATUS_MISSING:
            problems.append(f"source {src['path']}: missing")
    return {
        "target": _target_state(target, jobs, root),
        "root": str(root.resolve()),
        "status": "complete" if not problems else "incomplete",
        "jobs": jobs,
        "sources": sorted(sources.values(), key=lambda s: s["path"]),
        "problems": problems,
    }


class _Walk:
    """Breadth-first from a target through the jobs that made each file: ``jobs`` in the
    order found, ``sources`` (files no job made) and which job made each output."""

    def __init__(self, root: Path):
        self.root = root
        self.jobs: list[dict] = []
        self.sources: dict[str, dict] = {}
        self.job_of_output: dict[str, int] = {}

    def run(self, target: str) -> None:
        queue: deque[str] = deque([target])
        seen: set[str] = set()
        while queue:
            file = queue.popleft()
            if file in seen:
                continue
            seen.add(file)
            index = self.producer(file)
            if index is None:
                self.sources[file] = {
                    "path": file,
                    "current_sha256": content_sha256(self.root / file),
                    "status": STATUS_MISSING if not (self.root / file).exists() else "source",
                }
                continue
            for item in self.jobs[index]["inputs"]:
                if item["path"] not in seen:
                    queue.append(item["path"])

    def producer(self, file: str) -> int | None:
        """The index of the job that made ``file`` (read from its records once), or None."""
        job_of_output = self.job_of_output
        if file in job_of_output:
            return job_of_output[file]
        found = _find_sidecar(file, self.root)
        output = found[0] if found else file
        if output in job_of_output:
            job_of_output[file] = job_of_output[output]
            return job_of_output[output]
        sidecar = found[1] if found else None
        meta = snakemake_metadata(output, self.root)
        if sidecar is None and meta is None:
            return None
        job = _job_from_records(output, sidecar, meta, self.root)
        job["id"] = len(self.jobs)
        self.jobs.append(job)
        for item in job["outputs"]:
            job_of_output[item["path"]] = job["id"]
        job_of_output[output] = job["id"]
        job_of_output[file] = job["id"]
        return job["id"]


def _target_state(target: str, jobs: list[dict], root: Path) -> dict:
    target_state = None
    if jobs:
        target_state = next(
            (o for o in jobs[0]["outputs"] if o["path"] == target),
            _file_state(target, None, root),
        )
        if target_state["path"] != target:
            target_state = None
    if target_state is None:
        # The target is a file inside a folder output: the folder's digest covers it.
        target_state = {"path": target, "current_sha256": content_sha256(root / target)}
        if jobs:
            target_state["status"] = jobs[0]["outputs"][0]["status"] if jobs[0]["outputs"] else "?"
        else:
            target_state["status"] = "unknown"
    return target_state


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "-"


def format_chain(chain: dict) -> str:
    """Human-readable report of :func:`trace`'s result."""
    lines = []
    target = chain["target"]
    lines.append(
        f"{target['path']}  sha256 {_short(target.get('current_sha256'))}  [{target['status']}]"
    )
    lines.append(
        f"chain: {len(chain['jobs'])} job(s), {len(chain['sources'])} source file(s); "
        f"{chain['status']}"
    )
    for job in chain["jobs"]:
        lines.append("")
        lines += _format_job(job)
        lines += _format_files(job)
        smk = job.get("snakemake")
        if smk:
            lines.append(
                f"  snakemake record: rule {smk['rule']}, {len(smk['input'])} input(s), "
                f"{len(smk['input_checksums'])} checksum(s), {smk['starttime']} -> {smk['endtime']}"
                + (", conda env recorded" if smk["conda_env"] else "")
            )
        else:
            lines.append("  snakemake record: none (.snakemake/metadata has no entry)")
    if chain["sources"]:
        lines.append("")
        lines.append("sources (no producing job):")
        for src in chain["sources"]:
            lines.append(
                f"  {src['path']}  sha256 {_short(src['current_sha256'])}  [{src['status']}]"
            )
    if chain["problems"]:
        lines.append("")
        lines.append("problems:")
        lines += [f"  - {p}" for p in chain["problems"]]
    return "\n".join(lines)


def _format_job(job: dict) -> list[str]:
    """A job's rule, when and where it ran, with which code, packages and params."""
    wc = ", ".join(f"{k}={v}" for k, v in job["wildcards"].items()) or "-"
    lines = [f"job {job['id']}: rule {job['rule']}  ({wc})"]
    if job["started"]:
        took = f"  ({job['seconds']:.2f} s)" if job["seconds"] is not None else ""
        lines.append(f"  ran       {job['started']} -> {job['ended']}{took} on {job.get('host')}")
    if job.get("slurm_job_id"):
        lines.append(f"  slurm     job {job['slurm_job_id']}")
    code = job.get("code") or {}
    if code:
        dirty = {True: " (dirty tree)", False: " (clean tree)", None: ""}[code.get("dirty")]
        lines.append(f"  code      git {code.get('commit') or 'unknown'}{dirty}")
    if job.get("script"):
        s = job["script"]
        lines.append(f"  script    {s['path']}  sha256 {_short(s['sha256'])}  [{s['status']}]")
    if job.get("packages"):
        pk = ", ".join(f"{k} {v}" for k, v in sorted(job["packages"].items()))
        lines.append(f"  packages  {pk}")
    if job["key_facts"]:
        kf = ", ".join(f"{k}={json.dumps(v)}" for k, v in job["key_facts"].items())
        lines.append(f"  uses      {kf}")
    if job["params"] is not None:
        lines.append(f"  params    {json.dumps(job['params'], sort_keys=True)}")
    if job.get("resources"):
        res = ", ".join(f"{k}={v}" for k, v in sorted(job["resources"].items()))
        lines.append(f"  resources threads={job.get('threads')}, {res}")
    return lines


def _format_files(job: dict) -> list[str]:
    """A job's inputs, outputs, raw files and maker, each with its digest and state."""
    lines = []
    for item in job["inputs"]:
        origin = f"from job {item['from_job']}" if item["from_job"] is not None else "source"
        lines.append(
            f"  input     {item['path']}  sha256 {_short(item['sha256'])}  "
            f"[{item['status']}] {origin}"
        )
    for item in job["outputs"]:
        lines.append(
            f"  output    {item['path']}  sha256 {_short(item['sha256'])}  [{item['status']}]"
        )
    for raw in job.get("raw_files", []):
        origin = f"  from {raw['origin']}" if raw.get("origin") else ""
        lines.append(
            f"  raw file  {raw['path']}  sha256 {_short(raw['sha256'])}  [{raw['status']}]{origin}"
        )
    if job.get("generator"):
        gen = job["generator"]
        lines.append(f"  made by   {gen.get('module', '?')}  sha256 {_short(gen.get('sha256'))}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="codyn provenance",
        description="Trace a file under results/ or data/ back to raw inputs: every job's "
        "rule, params, inputs (sha256), code version, packages and times.",
    )
    parser.add_argument("path", help="a pipeline output, e.g. results/tables/table2.csv")
    parser.add_argument("--json", action="store_true", help="print the chain as JSON")
    parser.add_argument(
        "--root",
        default=".",
        help="the workflow's working directory (holds provenance/ and .snakemake/)",
    )
    args = parser.parse_args(argv)
    root = Path(args.root)
    target = Path(args.path)
    if not root.is_dir():
        print(f"codyn provenance: --root {args.root}: not a folder", file=sys.stderr)
        return 2
    if not args.path.strip() or (root / target).resolve() == root.resolve():
        print(
            "codyn provenance: name a file (or folder) under the workflow folder", file=sys.stderr
        )
        return 2
    if not (root / target).resolve().is_relative_to(root.resolve()):
        print(
            f"codyn provenance: {args.path}: outside the workflow folder {root.resolve()} "
            "(records only cover files under it; pass --root)",
            file=sys.stderr,
        )
        return 2
    if not (target if target.is_absolute() else root / target).exists():
        found = _find_sidecar(_relative(target, root), root)
        if found is None:
            print(f"codyn provenance: {args.path}: no such file and no record", file=sys.stderr)
            return 2
    chain = trace(args.path, root)
    if args.json:
        print(json.dumps(chain, indent=2, sort_keys=True, default=str))
    else:
        print(format_chain(chain))
    return 0 if chain["status"] == "complete" else 1


if __name__ == "__main__":
    sys.exit(main())
