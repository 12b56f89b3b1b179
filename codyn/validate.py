"""The rules every user-supplied number, name and table is checked against.

One module, so that a config file, a command-line flag and an imported table obey the
same rules and fail the same way, before any work starts:

- a cost is a finite number >= 0, and a set of costs has at least one > 0 (costs are
  divided by their maximum);
- a timeout is a finite number > 0;
- ids are text, exactly as given (never ``7`` for ``"007"``): readers keep id columns
  as strings, :func:`text_id` turns what a file holds into that text;
- a name (model, column, key) appears once;
- a table has rows.

A rule is told *where* the value came from (:class:`Where`): a config key, a command-line
option, or a file / record / field; the error it raises names that place
(:class:`~codyn.errors.ConfigError`, :class:`~codyn.errors.UsageError` or
:class:`~codyn.errors.InputError`).
"""

from __future__ import annotations

import math
import numbers
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from codyn.errors import CodynError, ConfigError, InputError, UsageError


@dataclass(frozen=True)
class Where:
    """Where a value came from: ``key`` (config key path), ``option`` (CLI flag), or
    ``path``/``record``/``field`` (a file, a row or line, a column or key)."""

    path: object | None = None
    record: object | None = None
    field: str | None = None
    key: str | None = None
    option: str | None = None

    def at(self, sub: object) -> Where:
        """The place of one member (a model's cost, a list item)."""
        if self.key is not None:
            return replace(self, key=f"{self.key}.{sub}" if self.key else str(sub))
        if self.option is not None:
            return replace(self, option=f"{self.option} {sub}")
        return replace(self, field=f"{self.field}.{sub}" if self.field else str(sub))

    def error(self, message: str) -> CodynError:
        if self.key is not None:
            return ConfigError(self.key, message)
        if self.option is not None:
            return UsageError(self.option, message)
        return InputError(message, path=self.path, record=self.record, field=self.field)


def number(value: object, where: Where, *, minimum: float | None = None, strict=False) -> float:
    """``value`` as a finite float (bools and strings are not numbers), ``>= minimum``
    (``> minimum`` with ``strict``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise where.error(f"{value!r} is not a number")
    value = float(value)
    if not math.isfinite(value):
        raise where.error(f"{value!r} is not a finite number")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        raise where.error(f"{value:g} must be {'>' if strict else '>='} {minimum:g}")
    return value


def cost(value: object, where: Where) -> float:
    """A cost: finite and >= 0."""
    return number(value, where, minimum=0.0)


def costs(values: Mapping[str, object], where: Where) -> dict[str, float]:
    """A cost per name: each finite and >= 0, at least one > 0."""
    out = {str(name): cost(value, where.at(name)) for name, value in values.items()}
    if out and not any(v > 0 for v in out.values()):
        raise where.error(
            f"every cost is 0 ({', '.join(out)}); at least one must be > 0 "
            "(costs are compared relative to the largest)"
        )
    return out


def timeout(value: object, where: Where) -> float:
    """A timeout in seconds: finite and > 0."""
    return number(value, where, minimum=0.0, strict=True)


def count(value: object, where: Where, minimum: int = 1, maximum: int | None = None) -> int:
    """A whole number in [minimum, maximum] (workers, k, epochs)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise where.error(f"{value!r} is not a whole number")
    if value < minimum:
        raise where.error(f"{value} must be >= {minimum}")
    if maximum is not None and value > maximum:
        raise where.error(f"{value} must be <= {maximum}")
    return int(value)


def unique(names: Iterable[object], where: Where, what: str = "name") -> list:
    """``names`` as a list; a name given twice is an error (never keep-first or keep-last)."""
    names = list(names)
    twice = [n for n, c in Counter(names).items() if c > 1]
    if twice:
        raise where.error(f"{what} {twice[0]!r} is given {Counter(names)[twice[0]]} times")
    return names


def has_rows(n_rows: int, where: Where) -> int:
    """A table must hold at least one row (a header alone is not a table)."""
    if n_rows < 1:
        raise where.error("no rows (only a header, or an empty file)")
    return n_rows


def text_id(value: object) -> str | None:
    """An id as text, as the file gave it; None for a missing one.

    Strings are kept verbatim (``"007"`` stays ``"007"``); readers keep id columns as
    text, so this is the usual path. A number that a typed format stored (Parquet, a
    JSON number) is its ``str``: ``7`` -> ``"7"``, ``7.5`` -> ``"7.5"``.
    """
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, str):
        return value
    return str(value)


def no_surrogates(text: str, where: Where) -> str:
    """Text that can be written as UTF-8: a lone surrogate (``"\\ud800"`` from JSON, or
    undecodable bytes smuggled in by ``surrogateescape``) cannot, and is an error here,
    not a UnicodeEncodeError deep inside a writer."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise where.error(
            f"contains a lone surrogate {text[exc.start]!r} at character {exc.start} "
            "(not valid Unicode text)"
        ) from None
    return text


def finite_everywhere(obj: object, where: Where) -> None:
    """No NaN or infinity anywhere in a nested config (YAML's ``.nan`` / ``.inf`` pass
    JSON-schema ``minimum`` checks, because every comparison with NaN is false)."""
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            finite_everywhere(value, where.at(key))
    elif isinstance(obj, list | tuple):
        for i, value in enumerate(obj):
            finite_everywhere(value, where.at(i))
    elif isinstance(obj, float) and not math.isfinite(obj):
        raise where.error(f"{obj!r} is not a finite number")
