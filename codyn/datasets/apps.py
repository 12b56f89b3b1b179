"""APPS -> generate tasks (Python), from any of three layouts, deduplicated by problem id.

Layouts read:

1. upstream APPS folders (hendrycks/apps tarball): ``<split>/<NNNN>/question.txt``,
   ``input_output.json``, ``solutions.json``, ``metadata.json``, ``starter_code.py``;
2. the Hugging Face JSONL layout: ``problem_id, question, input_output`` (a JSON
   string), ``solutions`` (a JSON string), ``starter_code, difficulty``;
3. MapCoder's ``selected150.jsonl`` (the mirror's copy): ``id, name, difficulty,
   description, sample_io, test_list, starter_code``. MapCoder turned every problem,
   call-based ones included, into stdin/stdout tests (one argument per input line,
   expected output a one-element list); non-string outputs become ``str(value)``, what a
   program that prints the value writes. Its 150 rows hold 128 distinct problems.

Prompt: the A.8.3 APPS template over the question. MapCoder rows keep their sample
I/O apart from the description, so it is appended after the question ("Sample
Input/Output", the examples the template speaks of). Upstream call-based problems
(``fn_name``) get call tests and their starter code appended after the question; the
template text is kept word for word although it speaks of standard input.

Reference: the first upstream solution when there is one (MapCoder rows have none).
Problems without tests are dropped; of the rest, duplicates (same problem id) keep the first
occurrence (jsonl files in manifest order, then folders); all drops are listed with a reason.
"""

from __future__ import annotations

import json
from pathlib import Path

from codyn.errors import ConfigError, InputError
from codyn.io import open_text, read_jsonl
from codyn.prompts import TEMPLATE_NAMES, apps_prompt

from .base import PrepareContext, Prepared, RemoteFile, require, task

SOURCES = ("url", "mirror", "file")
MIRROR_FOLDER = {"apps": "apps_mapcoder150"}
COMMIT = "0027da71030b441cca2bc6f95def86b9aa5c7dea"
SHA256 = "0f27851c4f48842413a4afdd9aa94c295d5d639af95165e2810869903f219e80"
FOLDER_FILES = ("question.txt", "input_output.json", "solutions.json", "metadata.json")


# The paper's APPS (3.1: "5k examples"): the 5000-problem test split with its tests, in
# the Hugging Face JSONL layout (codeparrot/apps, test.jsonl, ~1.3 GB with the tests).
# The dataset repo's commit could not be read here (no network), so the URL names `main`;
# fetch records the file's sha256 on first download in MANIFEST.json and refuses a later
# download that differs (codyn.datasets.fetch), which pins the content from then on.
HF_TEST_URL = "https://huggingface.co/datasets/codeparrot/apps/resolve/main/test.jsonl"
VARIANTS = ("mapcoder150", "hf-test")


def variant(cfg: dict) -> str:
    value = cfg.get("variant") or "mapcoder150"
    if value not in VARIANTS:
        raise ConfigError("variant", f"{value!r} is not an APPS variant", allowed=VARIANTS)
    return value


def remote_files(adapter: str, cfg: dict) -> list[RemoteFile]:
    if variant(cfg) == "hf-test":
        return [RemoteFile("test.jsonl", HF_TEST_URL, None, "hf/test.jsonl")]
    # MapCoder's 150-row subset (pinned commit): the APPS file with tests on GitHub.
    url = (
        "https://raw.githubusercontent.com/Md-Ashraful-Pramanik/MapCoder/"
        f"{COMMIT}/data/APPS/selected150.jsonl"
    )
    return [RemoteFile("selected150.jsonl", url, SHA256, "selected150.jsonl")]


def _as_text(value) -> str:
    return value if isinstance(value, str) else str(value)


def _stdio_output(value) -> str:
    if isinstance(value, list):
        return "\n".join(_as_text(v) for v in value)
    return _as_text(value)


def from_mapcoder(rec: dict, path, where) -> dict:
    pid = require(rec, "id", (int, str), path=path, record=where)
    desc = require(rec, "description", str, path=path, record=where)
    test_list = require(rec, "test_list", list, path=path, record=where)
    sample_io = rec.get("sample_io") or []
    cases = []
    for i, case in enumerate(test_list):
        cwhere = f"{where} test_list[{i}]"
        case_in = require(case, "input", str, path=path, record=cwhere)
        outs = require(case, "output", list, path=path, record=cwhere)
        if not outs:
            raise InputError("empty output list", path=path, record=cwhere, field="output")
        cases.append({"input": case_in, "output": _as_text(outs[0])})
    question = desc.rstrip()
    if sample_io:
        parts = []
        for case in sample_io:
            out = case.get("output")
            out = _as_text(out[0]) if isinstance(out, list) and out else _as_text(out)
            parts.append(f"Input:\n{case.get('input', '')}\nOutput:\n{out}")
        question += "\n\nSample Input/Output:\n\n" + "\n\n".join(parts)
    return {
        "problem_id": str(pid),
        "question": question,
        "tests": {"type": "stdio", "cases": cases},
        "reference": None,
        "difficulty": rec.get("difficulty"),
        "starter_code": rec.get("starter_code") or "",
        "layout": "mapcoder-selected150",
    }


def _tests_from_io(io: dict, path, where) -> dict | None:
    if not isinstance(io, dict):
        raise InputError("expected an object", path=path, record=where, field="input_output")
    inputs, outputs = io.get("inputs"), io.get("outputs")
    if not inputs:
        return None
    if not isinstance(inputs, list) or not isinstance(outputs, list) or len(inputs) != len(outputs):
        raise InputError(
            "inputs and outputs must be lists of equal length",
            path=path,
            record=where,
            field="input_output",
        )
    if io.get("fn_name"):
        cases = [{"input": i, "output": o} for i, o in zip(inputs, outputs, strict=True)]
        return {"type": "call", "fn_name": io["fn_name"], "cases": cases}
    cases = [
        {"input": _stdio_output(i), "output": _stdio_output(o)}
        for i, o in zip(inputs, outputs, strict=True)
    ]
    return {"type": "stdio", "cases": cases}


def _upstream(pid, question, io, solutions, starter, difficulty, layout, path, where) -> dict:
    tests = _tests_from_io(io, path, where)
    if tests is not None and tests["type"] == "call" and starter.strip():
        question = question.rstrip() + "\n\n" + starter.rstrip()
    return {
        "problem_id": str(pid),
        "question": question.rstrip(),
        "tests": tests,
        "reference": solutions[0] if solutions and isinstance(solutions[0], str) else None,
        "difficulty": difficulty,
        "starter_code": starter,
        "layout": layout,
    }


def _json_field(rec: dict, name: str, path, where):
    value = rec.get(name)
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"malformed JSON string ({exc.msg})", path=path, record=where, field=name
        ) from exc


def from_hf(rec: dict, path, where) -> dict:
    pid = require(rec, "problem_id", (int, str), path=path, record=where)
    question = require(rec, "question", str, path=path, record=where)
    io = _json_field(rec, "input_output", path, where) or {}
    solutions = _json_field(rec, "solutions", path, where) or []
    return _upstream(
        pid,
        question,
        io,
        solutions,
        rec.get("starter_code") or "",
        rec.get("difficulty"),
        "apps-hf-jsonl",
        path,
        where,
    )


def from_folder(folder: Path) -> dict:
    def read(name):
        with open_text(folder / name) as fh:
            return fh.read()

    def load(name):
        p = folder / name
        if not p.is_file():
            return None
        try:
            return json.loads(read(name))
        except json.JSONDecodeError as exc:
            raise InputError(f"malformed JSON ({exc.msg})", path=p) from exc

    question = read("question.txt")
    io = load("input_output.json") or {}
    solutions = load("solutions.json") or []
    meta = load("metadata.json") or {}
    starter = read("starter_code.py") if (folder / "starter_code.py").is_file() else ""
    pid = int(folder.name) if folder.name.isdigit() else folder.name
    return _upstream(
        pid,
        question,
        io,
        solutions,
        starter,
        meta.get("difficulty"),
        "apps-upstream-folders",
        folder / "input_output.json",
        folder.name,
    )


def read_problems(files: list[Path]) -> tuple[list[dict], int]:
    """Problems from every layout found among ``files``, in file order; and the row count."""
    problems, n = [], 0
    folders: list[Path] = []
    for path in files:
        if path.name == "question.txt":
            if path.parent not in folders:
                folders.append(path.parent)
            continue
        if not path.name.endswith((".jsonl", ".jsonl.gz")):
            continue
        for lineno, rec in enumerate(read_jsonl(path), start=1):
            n += 1
            where = f"line {lineno}"
            if "test_list" in rec or "description" in rec:
                problems.append(from_mapcoder(rec, path, where))
            elif "question" in rec or "input_output" in rec:
                problems.append(from_hf(rec, path, where))
            else:
                raise InputError(
                    "neither APPS (question, input_output) nor MapCoder (description, "
                    "test_list) fields",
                    path=path,
                    record=where,
                    field="question",
                )
    for folder in folders:
        n += 1
        problems.append(from_folder(folder))
    return problems, n


def prepare(ctx: PrepareContext) -> Prepared:
    problems, n = read_problems(ctx.files())
    if n == 0:
        raise InputError("no APPS records found", path=ctx.raw_dir, field="files")
    tasks, dropped, seen = [], [], {}
    for prob in problems:
        pid = prob["problem_id"]
        if prob["tests"] is None:
            dropped.append((pid, "no tests (empty input_output)"))
            continue
        if pid in seen:
            same = "identical row" if seen[pid] == prob else "different content; first kept"
            dropped.append((pid, f"duplicate problem id ({same})"))
            continue
        seen[pid] = prob
        tasks.append(
            task(
                id=pid,
                dataset=ctx.name,
                kind="generate",
                language="python",
                prompt=apps_prompt(prob["question"]),
                reference=prob["reference"],
                tests=prob["tests"],
                meta={
                    "upstream_id": pid,
                    "difficulty": prob["difficulty"],
                    "layout": prob["layout"],
                    "starter_code": prob["starter_code"],
                    "template": TEMPLATE_NAMES["apps"],
                },
            )
        )
    return Prepared(tasks, n, dropped)
