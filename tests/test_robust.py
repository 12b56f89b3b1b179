"""Bad input and determinism (issue 19): no hang, no silent acceptance, no traceback, the
same results every run. One test (or a parametrised case) per reported case; the
property-based tests for the same rules are in tests/test_properties.py."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import route_fixtures as rf
import yaml
from result_trees import compare_trees
from test_incremental import copy_pipeline

from codyn import validate
from codyn.config import load_config
from codyn.errors import ConfigError, InputError, UsageError
from codyn.importers import import_matrix
from codyn.importers import main as import_main
from codyn.io import atomic_open, current_umask, write_json
from codyn.route_cli import read_prompts
from codyn.routers import ROUTER_TYPES, load_router, router_class
from codyn.routers.base import ROUTER_JSON
from codyn.routers.params import PARAMS

REPO = Path(__file__).resolve().parent.parent
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def codyn(*args: str, stdin: bytes | None = None, env: dict | None = None, timeout=120):
    """Run the ``codyn`` command as a user does (a fresh process, this checkout first)."""
    return subprocess.run(
        [sys.executable, "-m", "codyn.cli", *args],
        input=stdin,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        timeout=timeout,
        cwd=REPO,
    )


# ---------------------------------------------------------------- determinism: CodeBLEU

# Java pairs whose data-flow match upstream codebleu computes differently from one
# process to the next (parent-variable lists built with list(set(names))).
PAIRS = [
    (
        "int f(int a, int b) { int c = 0; for (int i = 0; i < a; i++) { c = c + a + b + i; } return c; }",
        "int f(int a, int b) { int c = 0; for (int i = 0; i < b; i++) { c = c + b + a + i; } return c; }",
    ),
    (
        "int g(int p, int q) { int r = p * q; if (r > p) { r = r - q + p; } else { r = r + p - q; } return r; }",
        "int g(int p, int q) { int r = q * p; if (r > q) { r = q - r + p; } else { r = p + r - q; } return r; }",
    ),
]
SEEDS = ("0", "1", "5")
UPSTREAM_PROBE = """
import json, sys
import codyn.scoring.codebleu_metric as cm
from codebleu import dataflow_match
if sys.argv[1] == "upstream":
    dataflow_match.get_data_flow = cm._upstream_get_data_flow
pairs = json.loads(sys.argv[2])
print(json.dumps([cm.pair_codebleu(a, b, "java")["dataflow_match_score"] for a, b in pairs]))
"""


def _probe(mode: str, seed: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", UPSTREAM_PROBE, mode, json.dumps(PAIRS)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONHASHSEED": seed},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_upstream_dataflow_match_depends_on_the_hash_seed_ours_does_not():
    # The control: these pairs do expose upstream's hash-order dependence...
    assert len({_probe("upstream", s) for s in SEEDS}) > 1
    # ...and with codyn's sorted data flow every process agrees.
    assert len({_probe("ours", s) for s in SEEDS}) == 1


def _codebleu_task_files(folder: Path) -> tuple[Path, Path]:
    tasks, responses = [], []
    for i, (reference, answer) in enumerate(PAIRS * 2):
        tid = f"refine-{i}"
        tasks.append(
            {
                "id": tid,
                "dataset": "toy",
                "kind": "refine",
                "language": "java",
                "prompt": "fix it",
                "reference": reference,
                "tests": None,
                "label": None,
                "meta": {},
            }
        )
        responses.append({"task_id": tid, "model": "m", "text": f"```java\n{answer}\n```"})
    write = lambda p, rows: p.write_text("".join(json.dumps(r) + "\n" for r in rows))  # noqa: E731
    write(folder / "tasks.jsonl", tasks)
    write(folder / "m.jsonl", responses)
    return folder / "tasks.jsonl", folder / "m.jsonl"


def test_score_stage_gives_the_same_bytes_under_any_hash_seed(tmp_path):
    tasks, responses = _codebleu_task_files(tmp_path)
    outputs = []
    for seed in SEEDS:
        out = tmp_path / f"scores-{seed}.csv"
        done = codyn(
            "score",
            "--tasks",
            str(tasks),
            "--responses",
            str(responses),
            "--out",
            str(out),
            env={"PYTHONHASHSEED": seed},
        )
        assert done.returncode == 0, done.stderr.decode()
        outputs.append(out.read_bytes())
    assert b"dataflow_match=" in outputs[0]
    assert outputs[0] == outputs[1] == outputs[2]


# ---------------------------------------------------------------- determinism: a pipeline twice

# The embedded default (real replayed answers: extraction, sandbox, visible examples,
# agreement, cascade, routers, Table 2) on a seeded sample of each dataset.
TINY = {
    "experiment": "tiny",
    "datasets": {"humaneval": {"limit": 16}, "mbpp": {"limit": 24}},
    "run_routers": ["linear", "knn", "sbs", "oracle"],
}
TINY_TARGETS = [
    "results/tiny/tables/table2.csv",
    "results/tiny/tables/oracle_gap.csv",
    "results/tiny/tables/agreement.csv",
    "results/tiny/tables/cascade.csv",
]


@pytest.mark.slow
def test_two_builds_with_different_hash_seeds_give_the_same_results(tmp_path):
    """The embedded default, sampled, built from scratch in two folders under two hash
    seeds: every file under data/ and results/ the same (tests/result_trees.py says what
    "the same" means per format)."""
    builds = []
    for seed in ("1", "2"):
        folder = copy_pipeline(tmp_path / f"build-{seed}")
        (folder / "tiny.yaml").write_text(yaml.safe_dump(TINY))
        done = subprocess.run(
            [SNAKEMAKE, *TINY_TARGETS, "--cores", "2", "--configfile", "tiny.yaml"],
            cwd=folder,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONHASHSEED": seed},
            timeout=900,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        builds.append(folder)
    a, b = builds
    for target in TINY_TARGETS:
        assert (a / target).is_file(), target
    assert list((a / "results/tiny/scores/mbpp").glob("*.csv"))
    for sub in ("data", "results"):
        assert compare_trees(a / sub, b / sub) == []


def test_tree_comparison_sees_every_kind_of_difference(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        (root / "t").mkdir(parents=True)
        pd.DataFrame({"x": [1, 2]}).to_parquet(root / "t" / "m.parquet")
        (root / "t" / "s.csv").write_text("x\n1\n")
        write_json(root / "t" / "meta.json", {"n": 2, "wall_s": 0.1})
    write_json(b / "t" / "meta.json", {"n": 2, "wall_s": 9.9})  # a run time: not a result
    assert compare_trees(a, b) == []
    (b / "t" / "s.csv").write_text("x\n2\n")
    pd.DataFrame({"x": [1, 3]}).to_parquet(b / "t" / "m.parquet")
    write_json(b / "t" / "meta.json", {"n": 3, "wall_s": 0.1})
    (b / "t" / "extra.md").write_text("new")
    problems = "\n".join(compare_trees(a, b))
    for expected in (
        "s.csv: bytes differ",
        "m.parquet: parquet rows differ",
        "meta.json",
        "extra.md",
    ):
        assert expected in problems


# ---------------------------------------------------------------- provenance must not hang


def test_provenance_of_a_path_outside_the_workflow_returns(tmp_path):
    outside = tmp_path / "elsewhere.csv"
    outside.write_text("a\n")
    root = tmp_path / "wf"
    root.mkdir()
    done = codyn("provenance", str(outside), "--root", str(root), timeout=60)
    assert done.returncode == 2
    assert b"outside the workflow folder" in done.stderr
    # the lookup itself stops at the file system root
    from codyn.provenance import _find_sidecar

    assert _find_sidecar(str(outside), root) is None


# ---------------------------------------------------------------- codyn import


def _table(tmp_path, name="t.csv", **columns) -> Path:
    base = {"id": ["a", "b", "c"], "q": ["p1", "p2", "p3"], "m1": [1, 0, 1], "m2": [0, 1, 1]}
    base.update(columns)
    path = tmp_path / name
    pd.DataFrame(base).to_csv(path, index=False)
    return path


def _spec(path, **extra) -> dict:
    return {
        "format": "table",
        "path": str(path),
        "id_column": "id",
        "prompt_column": "q",
        "score_columns": {"cheap": "m1", "dear": "m2"},
        **extra,
    }


@pytest.mark.parametrize(
    ("costs", "words"),
    [
        ({"cheap": -1.0, "dear": 2.0}, "must be >= 0"),
        ({"cheap": float("nan"), "dear": 2.0}, "not a finite number"),
        ({"cheap": float("inf"), "dear": 2.0}, "not a finite number"),
        ({"cheap": 0.0, "dear": 0.0}, "every cost is 0"),
    ],
)
def test_import_rejects_bad_relative_costs(tmp_path, costs, words):
    with pytest.raises(InputError, match=words) as err:
        import_matrix(_spec(_table(tmp_path)), dataset="pub", costs=costs)
    assert err.value.field.startswith("costs")


@pytest.mark.parametrize(
    ("cells", "words", "row"),
    [
        (["0.1", "-0.2", "0.3"], "negative cost", "'b'"),
        (["0.1", "nan", "0.3"], "NaN or infinite", "'b'"),
        (["0.1", "inf", "0.3"], "NaN or infinite", "'b'"),
        (["0.1", "$0.2", "0.3"], "non-numeric cost", "'b'"),
        (["0.1", "", "0.3"], "missing or non-numeric", "'b'"),
    ],
)
def test_import_names_the_bad_dollar_cell(tmp_path, cells, words, row):
    path = _table(tmp_path, c1=cells, c2=["1", "1", "1"])
    spec = _spec(path, cost_columns={"cheap": "c1", "dear": "c2"}, relative_cost="mean_usd")
    with pytest.raises(InputError, match=words) as err:
        import_matrix(spec, dataset="pub")
    assert err.value.field == "c1" and row in str(err.value) and "row 1" in str(err.value)


def test_import_all_zero_dollar_costs(tmp_path):
    path = _table(tmp_path, c1=[0, 0, 0], c2=[0.0, 0.0, 0.0])
    spec = _spec(path, cost_columns={"cheap": "c1", "dear": "c2"}, relative_cost="mean_usd")
    with pytest.raises(InputError, match="every cost is 0"):
        import_matrix(spec, dataset="pub")


def test_import_header_only_table(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id,q,m1,m2\n")
    with pytest.raises(InputError, match="no rows") as err:
        import_matrix(_spec(path), dataset="pub", costs={"cheap": 1, "dear": 2})
    assert str(path) in str(err.value)


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_import_keeps_ids_as_written(tmp_path, suffix):
    ids = ["007", "1e3", "12.50", "NA", " 3"]
    path = tmp_path / f"t.{suffix}"
    frame = pd.DataFrame({"id": ids, "q": list("abcde"), "m1": [1] * 5, "m2": [0] * 5})
    if suffix == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True)
    m = import_matrix(_spec(path), dataset="pub", costs={"cheap": 1, "dear": 2})
    assert m.frame["task_id"].tolist() == ids


def test_import_rejects_a_model_or_column_named_twice(tmp_path, capsys):
    path = _table(tmp_path)
    out = tmp_path / "m.parquet"
    base = [str(path), "-o", str(out), "--id-column", "id", "--prompt-column", "q"]
    assert import_main([*base, "--score", "a=m1", "--score", "a=m2", "--cost", "a=1"]) == 1
    assert "--score" in capsys.readouterr().err and not out.exists()
    assert import_main([*base, "--score", "a=m1", "--cost", "a=1", "--cost", "a=2"]) == 1
    assert "'a' is given twice" in capsys.readouterr().err
    dup = tmp_path / "dup.csv"
    dup.write_text("id,q,m1,m1\na,p,1,0\n")
    with pytest.raises(InputError, match="column 'm1' is given 2 times"):
        import_matrix(_spec(dup, score_columns=["m1"]), dataset="pub", costs={"m1": 1})
    with pytest.raises(InputError, match="given 2 times"):
        import_matrix(_spec(path, score_columns=["m1", "m1"]), dataset="pub", costs={"m1": 1})


@pytest.mark.parametrize(
    "flags",
    [
        ["--cost", "a=-1"],
        ["--cost", "a=nan"],
        ["--cost", "a=0"],
        ["--cost", "a=cheap"],
        ["--cost", "a=1", "--score-range", "nan", "1"],
        ["--cost", "a=1", "--score-range", "1", "0"],
        ["--cost", "a=1", "--score-scale", "0"],
    ],
)
def test_import_cli_flags_obey_the_rules(tmp_path, capsys, flags):
    path = _table(tmp_path)
    out = tmp_path / "m.parquet"
    argv = [str(path), "-o", str(out), "--id-column", "id", "--prompt-column", "q"]
    assert import_main([*argv, "--score", "a=m1", *flags]) == 1
    assert capsys.readouterr().err.startswith("codyn import: ")
    assert not out.exists()


def test_import_of_a_latin1_table_is_a_clear_error(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes("id,q,m1\na,caf\xe9,1\n".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8") as err:
        import_matrix(_spec(path, score_columns=["m1"]), dataset="pub", costs={"m1": 1})
    assert str(path) in str(err.value)


# ---------------------------------------------------------------- codyn score


@pytest.mark.parametrize(
    "flag", ["--timeout-s=0", "--timeout-s=-1", "--timeout-s=nan", "--timeout-s=inf", "--workers=0", "--workers=100000"]
)  # fmt: skip
def test_score_flags_obey_the_config_rules(tmp_path, capsys, flag):
    from codyn.scoring.cli import main as score_main

    tasks, responses = _codebleu_task_files(tmp_path)
    out = tmp_path / "s.csv"
    argv = ["--tasks", str(tasks), "--responses", str(responses), "--out", str(out), flag]
    assert score_main(argv) == 2
    assert f"option {flag.split('=')[0]}" in capsys.readouterr().err
    assert not out.exists()


def test_score_timeout_zero_from_the_command_line(tmp_path):
    tasks, responses = _codebleu_task_files(tmp_path)
    out = tmp_path / "s.csv"
    done = codyn(
        "score", "--tasks", str(tasks), "--responses", str(responses), "--out", str(out),
        "--timeout-s", "0",
    )  # fmt: skip
    assert done.returncode == 2 and b"option --timeout-s: 0 must be > 0" in done.stderr
    assert not out.exists()


def test_score_rejects_an_empty_responses_file(tmp_path):
    tasks, _ = _codebleu_task_files(tmp_path)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    out = tmp_path / "s.csv"
    done = codyn(
        "score", "--tasks", str(tasks), "--responses", str(empty), "--out", str(out)
    )  # fmt: skip
    assert done.returncode == 1
    assert b"no responses" in done.stderr and str(empty).encode() in done.stderr
    assert not out.exists()


# ---------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("override", "key", "words"),
    [
        (
            {"models": {m: {"cost": 0} for m in load_config(REPO / "config.yaml")["portfolio"]}},
            "models.*.cost",
            "every cost is 0",
        ),
        ({"models": {"gpt35-analogical": {"cost": float("nan")}}}, "models.gpt35-analogical.cost", "finite"),
        ({"models": {"gpt35-analogical": {"cost": float("inf")}}}, "models.gpt35-analogical.cost", "finite"),
        ({"generation": {"timeout_s": 0}}, "generation.timeout_s", "exclusiveMinimum"),
        ({"splits": {"lambda1": float("nan")}}, "splits.lambda1", "finite"),
        ({"routers": {"knn": {"type": "knn", "k": 0}}}, "routers.knn.k", "minimum"),
        ({"routers": {"knn": {"type": "knn", "k": 2.5}}}, "routers.knn.k", "integer"),
        ({"routers": {"linear": {"type": "linear", "C": -1}}}, "routers.linear.C", "0"),
        ({"routers": {"mlp": {"type": "mlp", "hiden": 64}}}, "routers.mlp.hiden", "unknown parameter"),
        ({"routers": {"cls-minilm": {"type": "cls", "pooling": "max"}}}, "routers.cls-minilm.pooling", "one of model, mean, auto"),
        ({"routers": {"ar-grpo-tiny": {"type": "ar-grpo", "reward": "vibes"}}}, "routers.ar-grpo-tiny.reward", "algorithm1"),
        ({"routers": {"rorf-cheap-top": {"type": "rorf", "threshold": 2}}}, "routers.rorf-cheap-top.threshold", "maximum"),
        ({"run_routers": ["sbs", "sbs"]}, "run_routers", "non-unique"),
        ({"seed": -1}, "seed", "minimum"),
        ({"scoring": {"workers": 100000}}, "scoring.workers", "maximum"),
        ({"routers": {"knn": {"type": "knn", "candidates": ["gpt35-analogical", "gpt35-analogical"]}}}, "routers.knn.candidates", "not allowed"),
    ],
)  # fmt: skip
def test_config_errors_name_the_key_before_any_work(override, key, words):
    with pytest.raises(ConfigError) as err:
        load_config(REPO / "config.yaml", overrides=override)
    assert err.value.key == key
    assert words in str(err.value)


def test_config_key_given_twice_is_an_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("label: a\nseed: 1\nlabel: b\n")
    with pytest.raises(ConfigError, match="found key 'label' twice"):
        load_config(REPO / "config.yaml", path)
    path.write_bytes(b"label: caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(REPO / "config.yaml", path)


def test_every_router_parameter_has_a_schema():
    """A default a router class reads but the schema lacks would make its own default
    an error; a schema a class does not know would accept a typo."""
    assert set(PARAMS) == set(ROUTER_TYPES)
    for router_type in ROUTER_TYPES:
        cls = router_class(router_type)
        assert set(cls.defaults) <= set(PARAMS[router_type]), router_type


# ---------------------------------------------------------------- checkpoints


@pytest.fixture(scope="module")
def knn_router(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    mp = pytest.MonkeyPatch()
    mp.setenv("CODYN_CACHE", str(root / "cache"))
    targets = rf.write_targets(root / "targets.parquet")
    folder = rf.train_router("knn", targets, root / "knn", {"k": 3})
    yield folder
    mp.undo()


def _copy(folder: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "router"
    shutil.copytree(folder, dest)
    return dest


def _edit_router_json(folder: Path, edit) -> None:
    meta = json.loads((folder / ROUTER_JSON).read_text())
    edit(meta)
    (folder / ROUTER_JSON).write_text(json.dumps(meta))


def test_router_json_with_reordered_models_is_refused(knn_router, tmp_path):
    assert load_router(knn_router).models == rf.MODELS
    folder = _copy(knn_router, tmp_path)
    _edit_router_json(folder, lambda m: m["models"].reverse())
    with pytest.raises(InputError, match="no longer match the weights") as err:
        load_router(folder)
    assert err.value.field == "integrity"
    folder = _copy(knn_router, tmp_path / "c")
    _edit_router_json(folder, lambda m: m["costs"].__setitem__(0, 50.0))
    with pytest.raises(InputError, match="edited after the router was saved"):
        load_router(folder)


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda f: (f / "model.joblib").write_bytes((f / "model.joblib").read_bytes()[:200]), "changed since"),
        (lambda f: (f / ROUTER_JSON).write_text("{not json"), "malformed JSON"),
        (lambda f: (f / ROUTER_JSON).write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00"), "malformed JSON"),
        (lambda f: (f / "model.joblib").unlink(), "missing"),
        (lambda f: _edit_router_json(f, lambda m: m.update(models=["a", "a", "b"])), "distinct model"),
        (lambda f: _edit_router_json(f, lambda m: m.update(costs=[1, "x", 2])), "finite costs"),
    ],
)  # fmt: skip
def test_damaged_checkpoint_is_an_input_error(knn_router, tmp_path, damage, words):
    folder = _copy(knn_router, tmp_path)
    damage(folder)
    with pytest.raises(InputError, match=words):
        load_router(folder)


def test_route_on_a_damaged_checkpoint_is_an_error_not_a_traceback(knn_router, tmp_path):
    folder = _copy(knn_router, tmp_path)
    (folder / "model.joblib").write_bytes(b"")
    done = codyn("route", "--router", str(folder), "a prompt")
    assert done.returncode == 1 and b"Traceback" not in done.stderr
    assert done.stderr.startswith(b"codyn route: ") and b"model.joblib" in done.stderr


def test_damaged_weights_without_a_digest_still_give_a_clear_error(knn_router, tmp_path):
    folder = _copy(knn_router, tmp_path)
    _edit_router_json(folder, lambda m: m.pop("integrity"))
    assert load_router(folder).models == rf.MODELS  # an older checkpoint still loads
    (folder / "model.joblib").write_bytes(b"garbage")
    with pytest.raises(InputError, match="damaged knn checkpoint"):
        load_router(folder)


# ---------------------------------------------------------------- undecodable input


def test_route_reads_utf8_or_says_why_not(knn_router, tmp_path):
    latin = tmp_path / "prompts.txt"
    latin.write_bytes("Écris une fonction qui trie une liste\n".encode("latin-1"))
    done = codyn("route", "--router", str(knn_router), "--file", str(latin))
    assert done.returncode == 1, done.stderr
    assert b"not UTF-8" in done.stderr and str(latin).encode() in done.stderr
    assert b"Traceback" not in done.stderr
    done = codyn("route", "--router", str(knn_router), stdin=b"\x00\xff\xfe binary \x80")
    assert done.returncode == 1 and b"<stdin>" in done.stderr and b"not UTF-8" in done.stderr
    surrogate = tmp_path / "p.jsonl"
    surrogate.write_text('{"id": "x", "prompt": "sort \\ud800 this"}\n')
    done = codyn("route", "--router", str(knn_router), "--file", str(surrogate))
    assert done.returncode == 1 and b"line 1" in done.stderr and b"surrogate" in done.stderr
    # UTF-8 with a byte-order mark is UTF-8
    bom = tmp_path / "bom.txt"
    bom.write_bytes("\ufeffSort a list\nRéduire\n".encode())
    assert read_prompts(str(bom)) == [("1", "Sort a list"), ("2", "Réduire")]


def test_every_cli_turns_undecodable_input_into_an_error(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"id": "caf\xe9"}\n')
    for args in (
        ["score", "--tasks", str(bad), "--responses", str(bad), "--out", str(tmp_path / "o.csv")],
        ["import", str(tmp_path / "bad.csv"), "-o", str(tmp_path / "m.parquet"), "--id-column",
         "id", "--prompt-column", "q", "--score", "a=m", "--cost", "a=1"],
        ["serve", "--router", str(tmp_path), "--config", str(bad)],
    ):  # fmt: skip
        (tmp_path / "bad.csv").write_bytes(b"id,q,m\na,caf\xe9,1\n")
        done = codyn(*args)
        assert done.returncode in (1, 2), (args, done.stderr)
        assert b"Traceback" not in done.stderr, done.stderr.decode(errors="replace")
        assert done.stderr.startswith(b"codyn "), done.stderr


# ---------------------------------------------------------------- umask


@pytest.mark.parametrize(
    ("umask", "file_mode", "dir_mode"), [(0o002, 0o664, 0o775), (0o022, 0o644, 0o755)]
)
def test_outputs_honour_the_umask(tmp_path, umask, file_mode, dir_mode):
    from codyn.routers.pipeline import train_router

    old = os.umask(umask)
    try:
        assert current_umask() == umask
        write_json(tmp_path / "a.json", {"x": 1})
        with atomic_open(tmp_path / "b.txt") as fh:
            fh.write("x")
        targets = rf.write_targets(tmp_path / "targets.parquet")
        out = tmp_path / "routers" / "sbs"
        train_router([targets], "setting1", {"type": "sbs"}, out)
    finally:
        os.umask(old)
    mode = lambda p: p.stat().st_mode & 0o777  # noqa: E731
    assert mode(tmp_path / "a.json") == file_mode
    assert mode(tmp_path / "b.txt") == file_mode
    assert mode(targets) == file_mode
    assert mode(out) == dir_mode
    assert mode(out / ROUTER_JSON) == file_mode


# ---------------------------------------------------------------- the rules themselves


def test_validation_rules_name_their_place():
    with pytest.raises(ConfigError, match="config key 'a.b'"):
        validate.timeout(0, validate.Where(key="a.b"))
    with pytest.raises(UsageError, match="option --timeout-s"):
        validate.timeout(-1.0, validate.Where(option="--timeout-s"))
    with pytest.raises(InputError) as err:
        validate.cost(float("nan"), validate.Where(path="t.csv", record="row 3", field="usd"))
    assert (err.value.path, err.value.record, err.value.field) == ("t.csv", "row 3", "usd")
    assert validate.costs({"a": 0, "b": 2}, validate.Where(key="c")) == {"a": 0.0, "b": 2.0}
    for bad in (True, "1", None, math.inf):
        with pytest.raises(ConfigError):
            validate.cost(bad, validate.Where(key="c"))
    assert validate.text_id("007") == "007" and validate.text_id(np.nan) is None


# ---------------------------------------------------------------- found by probing


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("[" * 50000 + "]" * 50000, "nested too deeply"),
        ('{"task_id": ' + "9" * 5000 + "}", "digits"),
        ('{"task_id": "a", "text": "x \\ud800 y"}', "lone surrogate"),
        ('{"task_id": "a", "text": "x \\uDFFF"}', "lone surrogate"),
    ],
)
def test_jsonl_that_json_cannot_hold_names_the_line(tmp_path, line, words):
    from codyn.io import read_jsonl

    path = tmp_path / "r.jsonl"
    path.write_text('{"ok": "\\u00e9\\ud83d\\ude00"}\n' + line + "\n")  # a valid pair is fine
    with pytest.raises(InputError, match=words) as err:
        list(read_jsonl(path))
    assert err.value.record == "line 2" and err.value.path == str(path)


def test_cli_reports_files_it_cannot_write(tmp_path):
    tasks, responses = _codebleu_task_files(tmp_path)
    out = tmp_path / "a-file" / "scores.csv"
    (tmp_path / "a-file").write_text("not a folder")
    done = codyn(
        "score", "--tasks", str(tasks), "--responses", str(responses), "--out", str(out)
    )  # fmt: skip
    assert done.returncode == 1 and b"Traceback" not in done.stderr
    assert done.stderr.startswith(b"codyn score: cannot read or write")


def test_provenance_of_nothing_or_the_root_is_refused(tmp_path):
    from codyn.provenance import main as provenance_main

    assert provenance_main(["", "--root", str(tmp_path)]) == 2
    assert provenance_main([str(tmp_path), "--root", str(tmp_path)]) == 2
    assert provenance_main(["x", "--root", str(tmp_path / "missing")]) == 2


def test_serve_refuses_a_port_out_of_range_before_any_work(tmp_path, capsys):
    from codyn.serve import main as serve_main

    args = ["--router", str(tmp_path), "--config", str(tmp_path / "none.yaml")]
    assert serve_main([*args, "--port", "99999"]) == 2
    assert "--port" in capsys.readouterr().err


def test_interrupted_write_leaves_nothing_behind(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old\n")
    with pytest.raises(KeyboardInterrupt), atomic_open(target) as fh:
        fh.write("half a tab")
        raise KeyboardInterrupt
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]  # no temporary file left


def test_user_turn_without_content_is_refused():
    from codyn.serve import ApiError, parse_chat_request

    with pytest.raises(ApiError) as err:
        parse_chat_request({"model": "m", "messages": [{"role": "user", "content": None}]})
    assert err.value.status == 400
    req = parse_chat_request(
        {
            "model": "m",
            "messages": [
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": None},
                {"role": "user", "content": "b"},
            ],
        }
    )
    assert req.prompt == "b"


def test_figures_are_the_same_bytes_on_every_run(tmp_path):
    import time

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from codyn.evaluation.figures import save

    digests = []
    for run in range(2):
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        save(fig, tmp_path / f"f{run}.png", tmp_path / f"f{run}.pdf")
        digests.append(
            ((tmp_path / f"f{run}.png").read_bytes(), (tmp_path / f"f{run}.pdf").read_bytes())
        )
        time.sleep(1.1)  # a PDF CreationDate has one-second resolution
    assert digests[0] == digests[1]


def test_score_files_keep_ids_that_look_like_numbers_or_missing_values(tmp_path):
    from codyn.matrix import read_scores

    path = tmp_path / "m.csv"
    path.write_text(
        "task_id,model,score,status,detail\nNA,m,0.5,pass,\n007,m,,not_scorable,no tests\n"
        "null,m,1,pass,\n"
    )
    frame = read_scores(path, "m")
    assert frame.index.tolist() == ["NA", "007", "null"]
    assert frame["score"].iloc[0] == 0.5 and math.isnan(frame["score"].iloc[1])


def test_jsonl_with_a_byte_order_mark_is_utf8(tmp_path):
    from codyn.io import read_jsonl

    path = tmp_path / "t.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"id": "a"}\n{"id": "b"}\n')
    assert [r["id"] for r in read_jsonl(path)] == ["a", "b"]


def test_route_refuses_an_empty_prompt_argument(knn_router):
    done = codyn("route", "--router", str(knn_router), "fine", "  ")
    assert done.returncode == 1 and b"argument 2" in done.stderr and b"empty prompt" in done.stderr


def test_provenance_sidecar_that_is_not_utf8_is_no_record(tmp_path):
    from codyn.provenance import PROVENANCE_DIR, _find_sidecar

    (tmp_path / PROVENANCE_DIR / "results").mkdir(parents=True)
    (tmp_path / PROVENANCE_DIR / "results" / "t.csv.json").write_bytes(b'{"rule": "caf\xe9"}')
    assert _find_sidecar("results/t.csv", tmp_path) is None


def test_snakemake_refuses_a_config_key_given_twice(tmp_path):
    copy_pipeline(tmp_path)
    (tmp_path / "dup.yaml").write_text("label: a\nseed: 3\nlabel: b\n")
    done = subprocess.run(
        [SNAKEMAKE, "-n", "--cores", "1", "--configfile", "dup.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=300,
    )
    assert done.returncode != 0
    assert "found key 'label' twice" in done.stderr + done.stdout


def test_stream_options_must_say_true_or_false():
    from codyn.serve import ApiError, parse_chat_request

    body = {"model": "m", "messages": [{"role": "user", "content": "a"}], "stream": True}
    assert parse_chat_request({**body, "stream_options": {"include_usage": True}}).include_usage
    with pytest.raises(ApiError) as err:
        parse_chat_request({**body, "stream_options": {"include_usage": "yes"}})
    assert err.value.status == 400 and err.value.param == "stream_options"
