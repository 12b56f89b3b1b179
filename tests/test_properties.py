"""Property-based tests (Hypothesis) for the rules of codyn.validate as the importers, the
config loader and the prompt-header parser apply them: on input nobody wrote a case for,
the only exceptions are codyn's own errors, and what is accepted obeys the rule.

Kept small (a few dozen examples each, a deadline per example) so the suite stays fast;
the seed is derived from the test, so a failure reproduces (Hypothesis prints it).
"""

from __future__ import annotations

import copy
import csv
import math
import re

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from codyn import validate
from codyn.config import load_config, read_yaml
from codyn.errors import CodynError, ConfigError, InputError
from codyn.importers import import_matrix
from codyn.prompts import format_header, parse_header
from codyn.routers.header import HeaderFeatures, as_number

FAST = settings(
    max_examples=40,
    deadline=3000,  # ms per example; pandas I/O on a busy 2-core machine
    derandomize=True,
    database=None,  # nothing written into the checkout; derandomize makes runs repeatable
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=12,
)
NUMBER_LIKE = st.from_regex(r"\A[+-]?0*[0-9]{1,4}(\.[0-9]{0,3})?([eE][+-]?[0-9])?\Z")
CELL = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-3, 3).map(str),
    NUMBER_LIKE,
    st.sampled_from(["", " ", "nan", "NaN", "inf", "-inf", "n/a", "NA", "$0.5", "1,5"]),
    TEXT,
)
# what the rule accepts: a finite number (the range check is the importer's)
ID = st.one_of(NUMBER_LIKE, TEXT, st.sampled_from(["NA", "null", "None", "007", " x "]))


def _write_csv(path, rows: list[list[str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)


SCORE = st.one_of(
    st.sampled_from(["0", "1", "0.5", " 1 ", "1.0", "0e0", "1E0"]),
    st.floats(0, 1).map(repr),
)
USD = st.one_of(st.sampled_from(["0", "0.001", "2", "1e-3"]), st.floats(0, 1e6).map(repr))
VALID_ROW = st.tuples(
    ID.filter(lambda i: i.strip()), TEXT.filter(str.strip), SCORE, SCORE, USD, USD
)


@st.composite
def tables(draw):
    """A table that obeys every rule, then (half of the time) one cell replaced by
    anything: so both sides of the rule are exercised."""
    rows = [list(r) for r in draw(st.lists(VALID_ROW, min_size=1, max_size=5))]
    if draw(st.booleans()):
        i = draw(st.integers(0, len(rows) - 1))
        j = draw(st.integers(0, 5))
        rows[i][j] = draw(ID if j == 0 else CELL)
    if draw(st.integers(0, 9)) == 0:
        rows = []  # a header alone
    return rows


@FAST
@given(
    rows=tables(),
    relative=st.sampled_from(["config", "mean_usd"]),
    costs=st.one_of(st.tuples(USD, USD), st.tuples(CELL, CELL)),
)
def test_import_accepts_only_what_the_rules_allow(tmp_path_factory, rows, relative, costs):
    path = tmp_path_factory.mktemp("imp") / "t.csv"
    _write_csv(path, [["id", "q", "s1", "s2", "c1", "c2"], *rows])
    spec = {
        "format": "table",
        "path": str(path),
        "id_column": "id",
        "prompt_column": "q",
        "score_columns": {"a": "s1", "b": "s2"},
        "relative_cost": relative,
    }
    if relative == "mean_usd":
        spec["cost_columns"] = {"a": "c1", "b": "c2"}
        config_costs = None
    else:
        config_costs = {}
        for model, text in zip("ab", costs, strict=True):
            try:
                config_costs[model] = float(text)
            except ValueError:
                config_costs[model] = text  # not a number: the rule must say so
    try:
        m = import_matrix(spec, dataset="pub", costs=config_costs)
    except InputError:
        event("rejected")
        return
    event("accepted")
    assert len(m.frame) == len(rows) > 0
    assert m.frame["task_id"].tolist() == [r[0] for r in rows]  # ids exactly as written
    assert len(set(m.frame["task_id"])) == len(rows)
    scores = m.frame[["score::a", "score::b"]].to_numpy(dtype=float)
    assert np.isfinite(scores).all() and (scores >= 0).all() and (scores <= 1).all()
    costs_ = np.array(list(m.costs.values()), dtype=float)
    assert np.isfinite(costs_).all() and (costs_ >= 0).all() and (costs_ > 0).any()
    if relative == "mean_usd":
        usd = m.frame[["usd::a", "usd::b"]].to_numpy(dtype=float)
        assert np.isfinite(usd).all() and (usd >= 0).all()
    assert all(p.strip() for p in m.frame["prompt"])


JUNK = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-10, 10**6),
    st.booleans(),
    st.none(),
    TEXT,
    st.lists(st.integers(-2, 5), max_size=3),
)


VALID_CONFIG = {
    "cost": st.one_of(st.integers(0, 100), st.floats(0, 100)),
    "other_cost": st.one_of(st.integers(1, 100), st.floats(0.5, 100)),
    "k": st.integers(1, 50),
    "timeout": st.floats(0.01, 1e4),
    "threshold": st.floats(0, 1),
    "hidden": st.one_of(st.integers(1, 512), st.lists(st.integers(1, 64), min_size=1, max_size=3)),
}


@st.composite
def config_values(draw):
    """Valid values, then (most of the time) one of them replaced by anything."""
    values = {k: draw(v) for k, v in VALID_CONFIG.items()}
    bad = draw(st.one_of(st.none(), st.sampled_from(sorted(VALID_CONFIG))))
    if bad is not None:
        values[bad] = draw(JUNK)
    return values


@FAST
@given(values=config_values())
def test_config_accepts_only_what_the_rules_allow(repo_root, values):
    cost, other_cost, k = values["cost"], values["other_cost"], values["k"]
    timeout, threshold, hidden = values["timeout"], values["threshold"], values["hidden"]
    override = {
        "models": {"gpt35-analogical": {"cost": cost}, "gpt4-mapcoder": {"cost": other_cost}},
        "routers": {
            "knn": {"type": "knn", "k": k},
            "rorf-cheap-top": {"type": "rorf", "threshold": threshold},
            "mlp": {"type": "mlp", "hidden": hidden},
        },
        "scoring": {"timeout_s": timeout},
    }
    try:
        cfg = load_config(repo_root / "config.yaml", overrides=copy.deepcopy(override))
    except ConfigError:
        event("rejected")
        return
    event("accepted")
    is_number = lambda v: isinstance(v, int | float) and not isinstance(v, bool)  # noqa: E731
    costs = [cfg["models"][m]["cost"] for m in cfg["portfolio"]]
    assert all(is_number(c) and math.isfinite(c) and c >= 0 for c in costs) and max(costs) > 0
    assert is_number(k) and isinstance(k, int) and k >= 1
    assert is_number(timeout) and math.isfinite(timeout) and timeout > 0
    assert is_number(threshold) and 0 <= threshold <= 1
    assert (isinstance(hidden, int) and not isinstance(hidden, bool) and hidden >= 1) or (
        isinstance(hidden, list) and hidden and all(h >= 1 for h in hidden)
    )


@FAST
@given(text=st.text(max_size=200))
def test_any_yaml_text_loads_or_is_a_config_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("yaml") / "c.yaml"
    try:
        path.write_text(text, encoding="utf-8")
    except UnicodeEncodeError:
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        read_yaml(path)
    except ConfigError:
        pass


@FAST
@given(values=st.dictionaries(TEXT, JUNK, max_size=4))
def test_cost_rule(values):
    try:
        out = validate.costs(values, validate.Where(key="costs"))
    except CodynError:
        return
    assert all(math.isfinite(v) and v >= 0 for v in out.values())
    assert not out or max(out.values()) > 0


# ---------------------------------------------------------------- the prompt header

KEY = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_.-]{0,39}\Z")
VALUE = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Zl", "Zp"), blacklist_characters="|\n"),
    max_size=64,
).filter(lambda v: v == v.strip())
_KEY = re.compile(r"[a-z_][a-z0-9_.-]{0,39}")


@FAST
@given(prompt=st.text(max_size=300))
def test_header_parser_never_fails_and_returns_valid_pairs(prompt):
    pairs = parse_header(prompt)
    assert isinstance(pairs, dict)
    first = prompt.split("\n", 1)[0]
    for key, value in pairs.items():
        assert _KEY.fullmatch(key) and key in first.lower()
        assert isinstance(value, str) and len(value) <= 64 and "|" not in value
        number = as_number(value)
        assert number is None or math.isfinite(number)


@FAST
@given(pairs=st.dictionaries(KEY, VALUE, min_size=1, max_size=5), body=st.text(max_size=50))
def test_header_round_trip(pairs, body):
    lowered = {k.lower() for k in pairs}
    parsed = parse_header(format_header(pairs) + "\n" + body)
    if len(lowered) < len(pairs):
        assert parsed == {}  # a key given twice (up to case): not a header
    else:
        assert parsed == {k.lower(): v for k, v in pairs.items()}


@FAST
@given(
    train=st.lists(
        st.one_of(
            st.text(max_size=80),
            st.builds(
                lambda p, b: format_header(p) + "\n" + b,
                st.dictionaries(
                    st.sampled_from(["platform", "difficulty", "date", "n"]),
                    st.one_of(VALUE, NUMBER_LIKE, st.dates().map(str)),
                    max_size=3,
                ),
                st.text(max_size=20),
            ),
        ),
        min_size=0,
        max_size=8,
    ),
    new=st.lists(st.text(max_size=80), max_size=3),
)
def test_header_features_are_finite_for_any_prompts(train, new):
    features = HeaderFeatures().fit(train)
    for prompts in (train, new):
        x = features.transform(prompts)
        assert x.shape == (len(prompts), features.n_features) and x.dtype == np.float32
        assert np.isfinite(x).all()
    again = HeaderFeatures.from_dict(features.to_dict())
    np.testing.assert_array_equal(again.transform(train), features.transform(train))
