"""File I/O with the two guarantees every stage relies on.

1. Writes are atomic: content goes to a temporary file in the same folder and is
   renamed into place, so a killed job never leaves a half-written output that
   looks complete.
2. Reads of JSONL name the file and line of a malformed record.

Files and folders get the permissions the umask asks for (0644 / 0755 under umask 022,
0664 / 0775 under 002, so that a group on a shared file system can read a colleague's
results): ``mkstemp`` and ``mkdtemp`` create 0600 / 0700 whatever the umask, so the
temporary file or folder is chmod-ed before it is renamed into place.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from codyn.errors import InputError


def current_umask() -> int:
    """The process umask, read without changing it (``os.umask`` can only be read by
    setting it, which races with other threads creating files)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def honour_umask(path: str | os.PathLike, directory: bool = False) -> None:
    """Give a file made by mkstemp (0600) or a folder made by mkdtemp (0700) the mode an
    ordinary ``open``/``mkdir`` would have given it."""
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it into place on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            honour_umask(tmp_path, directory=tmp_path.is_dir())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[io.IOBase]:
    """Open a file for writing atomically (see :func:`atomic_path`)."""
    if "b" not in mode:
        kwargs.setdefault("encoding", "utf-8")
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path) as fh:
        fh.write(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_open(path) as fh:
        json.dump(obj, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> int:
    n = 0
    with atomic_open(path) as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n")
            n += 1
    return n


def open_text(path: str | os.PathLike) -> io.TextIOBase:
    """Open a text file, transparently gunzipping ``*.gz``."""
    path = Path(path)
    if not path.exists():
        raise InputError("file does not exist", path=path)
    # utf-8-sig: UTF-8, and a leading byte-order mark (Windows editors) is dropped.
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig")
    return open(path, encoding="utf-8-sig")


def decode_utf8(data: bytes, name: object) -> str:
    """``data`` as text. The policy everywhere: input is UTF-8 (a leading byte-order mark
    is dropped); anything else is an InputError naming the source, the byte and where it
    is, never a guess at another encoding."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(
            f"not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start} (line {line}) "
            "cannot be decoded; codyn reads UTF-8 (convert the file, e.g. "
            "iconv -f latin1 -t utf-8)",
            path=name,
        ) from None


def read_text(path: str | os.PathLike) -> str:
    """A text file (``*.gz`` unpacked) as a string, decoded by :func:`decode_utf8`."""
    path = Path(path)
    if not path.exists():
        raise InputError("file does not exist", path=path)
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(f"cannot read file ({exc})", path=path) from None
    return decode_utf8(data, path)


def read_jsonl(path: str | os.PathLike, *, allow_truncated_last: bool = False) -> Iterator[dict]:
    """Yield the JSON objects of a JSONL(.gz) file; errors name file and line.

    ``allow_truncated_last`` skips an unparsable *final* line that has no trailing
    newline: what an append-only writer leaves when it is killed mid-record.
    """
    try:
        with open_text(path) as fh:
            lines = fh.readlines()
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read file ({exc})", path=path) from exc
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            if allow_truncated_last and lineno == len(lines) and not line.endswith("\n"):
                return
            raise InputError(
                f"malformed JSON ({exc.msg})", path=path, record=f"line {lineno}"
            ) from exc
        except (RecursionError, ValueError) as exc:  # nesting too deep, a 5000-digit number
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise InputError(
                f"unreadable JSON ({reason})", path=path, record=f"line {lineno}"
            ) from None
        if "\\u" in line.lower():
            _check_unicode(obj, path, f"line {lineno}")
        if not isinstance(obj, dict):
            raise InputError(
                f"expected a JSON object, got {type(obj).__name__}",
                path=path,
                record=f"line {lineno}",
            )
        yield obj


def _check_unicode(obj: Any, path, record) -> None:
    """JSON may escape a lone surrogate (``"\\ud800"``), which no UTF-8 writer, hash or
    sandbox can encode: an error here, naming the line, not a UnicodeEncodeError later."""
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(
            f"a string holds a lone surrogate {exc.object[exc.start]!r} (not valid Unicode text)",
            path=path,
            record=record,
        ) from None


def read_json(path: str | os.PathLike, required: Iterable[str] = ()) -> dict:
    """A JSON object from a file; errors name the file (missing, malformed, not an
    object) and the first ``required`` key it lacks."""
    path = Path(path)
    if not path.is_file():
        raise InputError("file does not exist", path=path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, depth
        raise InputError(f"malformed JSON ({type(exc).__name__}: {exc})"[:500], path=path) from None
    if not isinstance(obj, dict):
        raise InputError(f"expected a JSON object, got {type(obj).__name__}", path=path)
    for key in required:
        if key not in obj:
            raise InputError("missing key", path=path, field=key)
    return obj


def read_csv(path: str | os.PathLike, required: Iterable[str] = (), **read_csv_kwargs):
    """A pandas frame from a CSV file; errors name the file (missing, unreadable) and the
    first ``required`` column it lacks. ``read_csv_kwargs`` go to :func:`pandas.read_csv`."""
    import pandas as pd  # io stays importable without pandas' start-up cost

    try:
        frame = pd.read_csv(path, **read_csv_kwargs)
    except FileNotFoundError as exc:
        raise InputError("file does not exist", path=path) from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"not a readable CSV ({exc})", path=path) from exc
    for col in required:
        if col not in frame.columns:
            raise InputError("missing column", path=path, field=col)
    return frame


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
