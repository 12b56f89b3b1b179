"""Prompt metadata from a header line, as tabular router features.

A prompt may open with one line of metadata, ``key: value | key: value`` (read by
:func:`codyn.prompts.parse_header`; what the importers' ``prompt_header`` option writes,
e.g. ``platform: atcoder | difficulty: hard | contest_date: 2024-03-02``, and what a
client of ``codyn serve`` can send). Inside a 384-d sentence embedding such a line is a
faint signal; as separate features it is the strongest one on LiveCodeBench
(benchmarks/NOTES.md). :class:`HeaderFeatures` learns, on the training prompts, one
column per key:

- numeric keys (every training value parses as a number or an ISO date; dates count
  days): one standardised column;
- other keys: one indicator column per value seen in training.

A prompt without the header, a missing key, an unseen value or an unparsable number
gives zeros there (the training mean, or "none of the known values"), never an error:
at serving time metadata is optional.

Ordinary first lines must not pass for metadata ("Task: write a function that ..."):
besides the header's own rules (:mod:`codyn.prompts`), a categorical value counts only
when at least ``min_count`` training prompts share it, and a key counts only when at
least ``min_share`` of the training prompts carry it.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import numpy as np

from codyn.prompts import parse_header


def as_number(value: str) -> float | None:
    """A float, or days since 1970-01-01 for an ISO date; None otherwise."""
    text = value.strip()
    try:
        number = float(text)
        return number if np.isfinite(number) else None
    except ValueError:
        pass
    try:
        when = dt.date.fromisoformat(text[:10])
    except ValueError:
        return None
    return float((when - dt.date(1970, 1, 1)).days)


class HeaderFeatures:
    """Learns the header's keys on training prompts; ``transform`` -> (n, d) float32."""

    def __init__(self, min_share: float = 0.5, min_count: int = 2):
        self.min_share = float(min_share)
        self.min_count = int(min_count)
        self.numeric: dict[str, tuple[float, float]] = {}
        self.categorical: dict[str, list[str]] = {}

    @property
    def n_features(self) -> int:
        return len(self.numeric) + sum(len(v) for v in self.categorical.values())

    def fit(self, prompts: list[str]) -> HeaderFeatures:
        headers = [parse_header(p) for p in prompts]
        keys = sorted({k for h in headers for k in h})
        self.numeric, self.categorical = {}, {}
        for key in keys:
            values = [h[key] for h in headers if key in h]
            if not prompts or len(values) < self.min_share * len(prompts):
                continue
            numbers = [as_number(v) for v in values]
            if all(n is not None for n in numbers):
                arr = np.asarray(numbers, dtype=float)
                self.numeric[key] = (float(arr.mean()), float(arr.std()) or 1.0)
            else:
                counts = Counter(v.lower() for v in values)
                kept = sorted(v for v, c in counts.items() if c >= self.min_count)
                if kept:
                    self.categorical[key] = kept
        return self

    def transform(self, prompts: list[str]) -> np.ndarray:
        out = np.zeros((len(prompts), self.n_features), dtype=np.float32)
        for i, prompt in enumerate(prompts):
            header = parse_header(prompt)
            col = 0
            for key, (mean, std) in self.numeric.items():
                number = as_number(header[key]) if key in header else None
                if number is not None:
                    out[i, col] = (number - mean) / std
                col += 1
            for key, values in self.categorical.items():
                value = header.get(key, "").lower()
                if value in values:
                    out[i, col + values.index(value)] = 1.0
                col += len(values)
        return out

    def describe(self) -> dict:
        return {"numeric": sorted(self.numeric), "categorical": dict(self.categorical)}

    def to_dict(self) -> dict:
        """JSON-able state (kept in router.json by routers that save no pickle)."""
        return {
            "min_share": self.min_share,
            "min_count": self.min_count,
            "numeric": {k: list(v) for k, v in self.numeric.items()},
            "categorical": {k: list(v) for k, v in self.categorical.items()},
        }

    @classmethod
    def from_dict(cls, state: dict) -> HeaderFeatures:
        out = cls(state.get("min_share", 0.5), state.get("min_count", 2))
        out.numeric = {k: (float(v[0]), float(v[1])) for k, v in state["numeric"].items()}
        out.categorical = {k: [str(x) for x in v] for k, v in state["categorical"].items()}
        return out
