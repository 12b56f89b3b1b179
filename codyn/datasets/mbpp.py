"""MBPP (397 problems, MultiPL-E's ``mbpp-typed`` rewording) -> generate tasks.

The file is ``data/MBPPEval/mbpp-py.jsonl`` of MapCoder's repository: the MBPP problems
MapCoder's published GPT-3.5 / GPT-4 answers were made for. Each row has a MultiPL-E
``name`` (``mbpp_3_is_not_prime``), a ``prompt`` (typed signature + one-sentence
docstring), the hidden ``test`` (``check(candidate)`` with MBPP's asserts), the
``entry_point`` and ``sample_io``: the one assert MapCoder showed the model, as MBPP's
own protocol lists its tests in the prompt.

Task ids are ``MBPP/<number>`` (the original MBPP task number); the MultiPL-E name is
``meta.upstream_id``, so replayed answers keyed either way are found. The task prompt is
our code-generation template around the signature, the docstring and the sample test
("Your code should pass this test:"), as MapCoder prompted. The file carries no
reference solution (``reference: null``).
"""

from __future__ import annotations

import re

from codyn.errors import InputError
from codyn.io import read_jsonl
from codyn.prompts import TEMPLATE_NAMES, codegen_prompt

from .base import PrepareContext, Prepared, RemoteFile, require, task

SOURCES = ("url", "mirror", "shipped", "file")
MIRROR_FOLDER = {"mbpp": "mapcoder_results"}
COMMIT = "0027da71030b441cca2bc6f95def86b9aa5c7dea"  # MapCoder, 2024-07-24
SHA256 = "bbb83793eac1db4b12c47e4981961ecce231e4ffa0872c2d8a19dafd47cd58fa"
FILE = "data/MBPPEval/mbpp-py.jsonl"
FIELDS = ("name", "prompt", "test", "entry_point")
_NAME = re.compile(r"^mbpp_(\d+)_\w+$")


def remote_files(adapter: str, cfg: dict) -> list[RemoteFile]:
    url = f"https://raw.githubusercontent.com/Md-Ashraful-Pramanik/MapCoder/{COMMIT}/{FILE}"
    return [RemoteFile("mbpp-py.jsonl", url, SHA256, FILE)]


def read_problems(path) -> list[dict]:
    """The rows, every field checked; errors name file, line and field."""
    out = []
    for lineno, rec in enumerate(read_jsonl(path), start=1):
        where = f"line {lineno}"
        if isinstance(rec.get("name"), str):
            where = f"line {lineno} ({rec['name']})"
        for field in FIELDS:
            require(rec, field, str, path=path, record=where)
        if not _NAME.match(rec["name"]):
            raise InputError(
                f"{rec['name']!r} is not a MultiPL-E MBPP name (mbpp_<number>_<function>)",
                path=path,
                record=where,
                field="name",
            )
        samples = rec.get("sample_io") or []
        if not isinstance(samples, list) or not all(isinstance(s, str) for s in samples):
            raise InputError(
                "expected a list of assert statements", path=path, record=where, field="sample_io"
            )
        out.append(rec)
    return out


def task_id(name: str) -> str:
    return f"MBPP/{_NAME.match(name).group(1)}"


def problem_text(problem: dict) -> str:
    """Signature + docstring, then the sample test the model was shown."""
    text = problem["prompt"].rstrip("\n")
    samples = problem.get("sample_io") or []
    if samples:
        noun = "this test" if len(samples) == 1 else "these tests"
        text += f"\n\nYour code should pass {noun}:\n" + "\n".join(s.strip() for s in samples)
    return text


def mbpp_task(problem: dict, dataset: str) -> dict:
    return task(
        id=task_id(problem["name"]),
        dataset=dataset,
        kind="generate",
        language="python",
        prompt=codegen_prompt(problem_text(problem)),
        reference=None,
        tests={
            "type": "check",
            "test": problem["test"],
            "entry_point": problem["entry_point"],
            "prefix": problem["prompt"],
        },
        meta={
            "upstream_id": problem["name"],
            "template": TEMPLATE_NAMES["codegen"],
            "sample_io": list(problem.get("sample_io") or []),
            "upstream": "MultiPL-E mbpp-typed (reworded), as in MapCoder's data/MBPPEval",
        },
    )


def prepare(ctx: PrepareContext) -> Prepared:
    files = [p for p in ctx.files() if p.name.endswith((".jsonl", ".jsonl.gz"))]
    if len(files) != 1:
        raise InputError(
            f"expected one mbpp-py.jsonl file, found {len(files)}",
            path=ctx.raw_dir / "MANIFEST.json",
            field="files",
        )
    problems = read_problems(files[0])
    tasks, dropped, seen = [], [], {}
    for p in problems:
        tid = task_id(p["name"])
        if tid in seen:
            dropped.append((p["name"], f"duplicate MBPP number (first: {seen[tid]})"))
            continue
        seen[tid] = p["name"]
        tasks.append(mbpp_task(p, ctx.name))
    return Prepared(tasks, len(problems), dropped)
