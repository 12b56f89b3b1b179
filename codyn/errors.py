"""Errors that name the file, record and field at fault.

Every bad input the pipeline meets ends in one of these, so a user reads
*where* the problem is, not a traceback from deep inside pandas.
"""

from __future__ import annotations


class CodynError(Exception):
    """Base class for errors meant to be read by a user."""


class InputError(CodynError):
    """A bad input file, record or field.

    ``path`` is the file, ``record`` a line number or record id, ``field`` the
    key or column. Any of them may be None when it does not apply.
    """

    def __init__(
        self,
        message: str,
        *,
        path: object | None = None,
        record: object | None = None,
        field: str | None = None,
    ):
        self.path = None if path is None else str(path)
        self.record = record
        self.field = field
        self.reason = message
        where = []
        if self.path is not None:
            where.append(self.path)
        if record is not None:
            where.append(f"record {record}")
        if field is not None:
            where.append(f"field '{field}'")
        prefix = ": ".join([", ".join(where)]) if where else ""
        super().__init__(f"{prefix}: {message}" if prefix else message)


class ConfigError(CodynError):
    """An invalid configuration; names the key path and the allowed values."""

    def __init__(self, key: str, message: str, allowed: object | None = None):
        self.key = key
        self.allowed = allowed
        text = f"config key '{key}': {message}"
        if allowed is not None:
            if isinstance(allowed, list | tuple | set | frozenset):
                allowed = ", ".join(map(str, sorted(allowed, key=str)))
            text += f" (allowed: {allowed})"
        super().__init__(text)


class UsageError(CodynError):
    """A bad command-line option value; names the option."""

    def __init__(self, option: str, message: str):
        self.option = option
        super().__init__(f"option {option}: {message}")
