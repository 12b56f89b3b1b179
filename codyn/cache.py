"""The response cache: a rerun never pays twice for the same answer.

One append-only JSONL file per (backend, model): ``cache/responses/<backend>/<model>.jsonl``.
It is deliberately NOT a declared Snakemake output (Snakemake deletes the outputs of
a failed job; the cache must outlive it). Each record is one line written with a
single ``os.write`` on an ``O_APPEND`` descriptor, then fsync, under an exclusive
``flock`` so generate jobs of several datasets may share the file. A job killed
mid-write leaves at most a truncated last line: readers skip it, the next writer
cuts it off before appending.

Records are keyed by :func:`cache_key`, sha256 of (backend, model id, messages,
effective params, backend extras). Error records are kept (the job summary counts
them) but are not hits: the next run asks again.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import threading
from pathlib import Path

from codyn.io import read_jsonl

_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def cache_key(
    backend: str, model_id: str | None, messages: list[dict], params: dict, extra=None
) -> str:
    material = {
        "backend": backend,
        "model_id": model_id,
        "messages": messages,
        "params": params,
        "extra": extra or {},
    }
    blob = json.dumps(
        material, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def cache_path(cache_dir: str | os.PathLike, backend: str, model: str) -> Path:
    return (
        Path(cache_dir) / "responses" / _SAFE.sub("_", backend) / f"{_SAFE.sub('_', model)}.jsonl"
    )


class ResponseCache:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._fd: int | None = None

    def load(self) -> tuple[dict[str, dict], dict[str, dict]]:
        """(answers, errors) by key; the latest record of a key wins. A key whose latest
        record is an error but which has an earlier answer keeps the answer."""
        answers: dict[str, dict] = {}
        errors: dict[str, dict] = {}
        if not self.path.exists():
            return answers, errors
        for rec in read_jsonl(self.path, allow_truncated_last=True):
            key = rec.get("key")
            if not isinstance(key, str):
                continue
            if rec.get("error") is None:
                answers[key] = rec
                errors.pop(key, None)
            elif key not in answers:
                errors[key] = rec
        return answers, errors

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        return self._fd

    def _repair_tail(self, fd: int) -> None:
        """Cut a truncated last line (a writer killed mid-record) so the next record starts
        on a line of its own. Called with the flock held."""
        size = os.fstat(fd).st_size
        if size == 0:
            return
        if os.pread(fd, 1, size - 1) == b"\n":
            return
        # Walk back to the last newline; everything after it is the broken record.
        pos = size
        chunk = 4096
        while pos > 0:
            start = max(0, pos - chunk)
            block = os.pread(fd, pos - start, start)
            idx = block.rfind(b"\n")
            if idx >= 0:
                os.ftruncate(fd, start + idx + 1)
                return
            pos = start
        os.ftruncate(fd, 0)

    def append(self, record: dict) -> None:
        line = (json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            fd = self._open()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                self._repair_tail(fd)
                written = os.write(fd, line)
                if written != len(line):  # a full disk; leave a detectably broken tail
                    raise OSError(f"short write to {self.path} ({written}/{len(line)} bytes)")
                os.fsync(fd)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
