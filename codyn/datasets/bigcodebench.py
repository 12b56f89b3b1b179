"""BigCodeBench (1140 tasks, HF format) -> generate tasks tested by their unittest class.

The paper uses BigCodeBench only as an unseen task (A.4) and prints no prompt for it;
the prompt is our code-generation template over ``complete_prompt`` (imports, signature
and docstring). ``tests.prefix`` is ``code_prompt`` (imports + signature).
"""

from __future__ import annotations

from codyn.io import read_jsonl
from codyn.prompts import TEMPLATE_NAMES, codegen_prompt

from .base import PrepareContext, Prepared, RemoteFile, require, task

SOURCES = ("url", "mirror", "file")
MIRROR_FOLDER = {"bigcodebench": "bigcodebench"}
COMMIT = "a3b89850db670d7302571142b881e4f85eef18e3"
SHA256 = "58142744edaf6036387f8761701f1b353432b0ed33f2edec1de8a59e7431ef7a"
FIELDS = ("task_id", "complete_prompt", "canonical_solution", "code_prompt", "test", "entry_point")


def remote_files(adapter: str, cfg: dict) -> list[RemoteFile]:
    url = (
        "https://raw.githubusercontent.com/bigcode-project/bigcodebench-annotation/"
        f"{COMMIT}/hf_data/BigCodeBench.jsonl.gz"
    )
    return [RemoteFile("BigCodeBench.jsonl.gz", url, SHA256, "BigCodeBench.jsonl.gz")]


def prepare(ctx: PrepareContext) -> Prepared:
    # replay/ holds published generations (replay_portfolio), not tasks
    (path,) = [
        p
        for p in ctx.files()
        if p.name.endswith((".jsonl", ".jsonl.gz"))
        and "replay" not in p.relative_to(ctx.raw_dir).parts
    ]
    tasks = []
    n = 0
    for lineno, rec in enumerate(read_jsonl(path), start=1):
        n += 1
        where = f"line {lineno}"
        if isinstance(rec.get("task_id"), str):
            where = f"line {lineno} ({rec['task_id']})"
        for field in FIELDS:
            require(rec, field, str, path=path, record=where)
        tasks.append(
            task(
                id=rec["task_id"],
                dataset=ctx.name,
                kind="generate",
                language="python",
                prompt=codegen_prompt(rec["complete_prompt"].rstrip("\n")),
                reference=rec["code_prompt"] + rec["canonical_solution"],
                tests={
                    "type": "unittest",
                    "test": rec["test"],
                    "entry_point": rec["entry_point"],
                    "prefix": rec["code_prompt"],
                },
                meta={
                    "upstream_id": rec["task_id"],
                    "libs": rec.get("libs"),
                    "template": TEMPLATE_NAMES["codegen"],
                },
            )
        )
    return Prepared(tasks, n)
