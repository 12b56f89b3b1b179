"""What every dataset adapter shares: file pins, field checks, seeded sampling.

An adapter module exposes

- ``SOURCES``: the fetch sources it supports (subset of url, mirror, package, file, made);
- ``MIRROR_FOLDER``: adapter name -> folder under ``mirror_dir`` (``../shared/datasets``);
- ``remote_files(adapter, cfg) -> list[RemoteFile]``: the upstream files, pinned;
- ``prepare(ctx: PrepareContext) -> Prepared``: the task records.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codyn.errors import InputError
from codyn.io import open_text


@dataclass(frozen=True)
class RemoteFile:
    """One upstream file: where it goes in ``data/raw/{dataset}``, where it comes from.

    ``url`` is pinned to an upstream commit, so ``sha256`` can be fixed here.
    ``mirror`` is the path relative to the adapter's folder in the mirror directory.
    """

    name: str
    url: str | None
    sha256: str | None
    mirror: str


@dataclass
class PrepareContext:
    name: str  # dataset name (key of config `datasets`)
    adapter: str
    cfg: dict  # that dataset's config entry
    raw_dir: Path
    manifest: dict
    seed: int

    def files(self) -> list[Path]:
        return [self.raw_dir / f["path"] for f in self.manifest["files"]]

    def file(self, name: str) -> Path:
        for f in self.manifest["files"]:
            if f["path"] == name:
                return self.raw_dir / name
        raise InputError(
            f"the fetch manifest lists no file {name!r} (source {self.manifest.get('source')!r})",
            path=self.raw_dir / "MANIFEST.json",
            field="files",
        )


@dataclass
class Prepared:
    tasks: list[dict]
    source_records: int  # records read from the source files
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (record id, reason)
    notes: list[str] = field(default_factory=list)


_MISSING = object()


def require(rec: dict, name: str, types: type | tuple, *, path, record) -> Any:
    """``rec[name]`` checked for presence and type; InputError names file, record, field."""
    if not isinstance(rec, dict):
        raise InputError("record is not a JSON object", path=path, record=record)
    value = rec.get(name, _MISSING)
    if value is _MISSING:
        raise InputError("missing field", path=path, record=record, field=name)
    if not isinstance(value, types):
        want = types.__name__ if isinstance(types, type) else "/".join(t.__name__ for t in types)
        raise InputError(
            f"expected {want}, got {type(value).__name__}", path=path, record=record, field=name
        )
    return value


def derive_seed(seed: int, *names: str) -> int:
    """A stable 64-bit seed from the config seed and names (never Python's hash())."""
    text = ":".join([str(seed), *names])
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:16], 16)


def seeded_rng(seed: int, *names: str) -> random.Random:
    return random.Random(derive_seed(seed, *names))


def sample_keep_order(items: Sequence, limit: int | None, seed: int, name: str) -> list:
    """At most ``limit`` items, a seeded sample that keeps upstream order."""
    items = list(items)
    if limit is None or limit >= len(items):
        return items
    rng = seeded_rng(seed, "limit", name)
    keep = sorted(rng.sample(range(len(items)), limit))
    return [items[i] for i in keep]


def read_text_lines(path: Path) -> list[str]:
    """Lines of a text file without their newline; errors name the file."""
    try:
        with open_text(path) as fh:
            text = fh.read()
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read file ({exc})", path=path) from exc
    if text and not text.endswith("\n"):
        raise InputError(
            "file does not end with a newline: truncated?",
            path=path,
            record=f"line {text.count(chr(10)) + 1}",
        )
    return text.split("\n")[:-1] if text else []


def task(
    *,
    id: str,
    dataset: str,
    kind: str,
    language: str,
    prompt: str,
    reference: str | None,
    tests: dict | None = None,
    label: bool | None = None,
    meta: dict | None = None,
) -> dict:
    return {
        "id": id,
        "dataset": dataset,
        "kind": kind,
        "language": language,
        "prompt": prompt,
        "reference": reference,
        "tests": tests,
        "label": label,
        "meta": meta or {},
    }
