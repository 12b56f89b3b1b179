"""HumanEval (164 problems) -> generate tasks tested by HumanEval's ``check``.

The paper gives no HumanEval prompt; the prompt uses our code-generation template
(codyn.prompts.CODEGEN_TEMPLATE). ``tests.prefix`` is the HumanEval prompt, so an answer
that gives only the function body-with-signature may omit the imports.
"""

from __future__ import annotations

from codyn.io import read_jsonl
from codyn.prompts import TEMPLATE_NAMES, codegen_prompt

from .base import PrepareContext, Prepared, RemoteFile, require, task

SOURCES = ("url", "mirror", "package", "file")
MIRROR_FOLDER = {"humaneval": "humaneval"}
COMMIT = "6d43fb980f9fee3c892a914eda09951f772ad10d"
SHA256 = "b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef"
FIELDS = ("task_id", "prompt", "canonical_solution", "test", "entry_point")


def remote_files(adapter: str, cfg: dict) -> list[RemoteFile]:
    url = f"https://raw.githubusercontent.com/openai/human-eval/{COMMIT}/data/HumanEval.jsonl.gz"
    return [RemoteFile("HumanEval.jsonl.gz", url, SHA256, "HumanEval.jsonl.gz")]


def read_problems(path) -> list[dict]:
    """HumanEval records, every field checked; errors name file, line and field."""
    out = []
    for lineno, rec in enumerate(read_jsonl(path), start=1):
        where = f"line {lineno}"
        if isinstance(rec.get("task_id"), str):
            where = f"line {lineno} ({rec['task_id']})"
        for field in FIELDS:
            require(rec, field, str, path=path, record=where)
        out.append(rec)
    return out


def humaneval_task(problem: dict, dataset: str) -> dict:
    return task(
        id=problem["task_id"],
        dataset=dataset,
        kind="generate",
        language="python",
        prompt=codegen_prompt(problem["prompt"].rstrip("\n")),
        reference=problem["prompt"] + problem["canonical_solution"],
        tests={
            "type": "check",
            "test": problem["test"],
            "entry_point": problem["entry_point"],
            "prefix": problem["prompt"],
        },
        meta={"upstream_id": problem["task_id"], "template": TEMPLATE_NAMES["codegen"]},
    )


def prepare(ctx: PrepareContext) -> Prepared:
    (path,) = [p for p in ctx.files() if p.name.endswith((".jsonl", ".jsonl.gz"))]
    problems = read_problems(path)
    return Prepared([humaneval_task(p, ctx.name) for p in problems], len(problems))
