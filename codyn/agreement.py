"""Our verdicts on replayed answers against the publisher's own (``is_solved``).

The replay backend brings published answers through our chain (extraction, sandbox,
hidden tests). Where the publisher also published its pass/fail, the two verdicts should
agree; where they do not, one of the two graders did something else, and this module
says which by re-running evidence, not by opinion. For every disagreement:

1. Our extraction vs theirs. When the program we extracted from the raw answer differs
   from the publisher's own extracted program, the publisher's program is run through
   our sandbox against our hidden tests. If that reproduces the publisher's verdict, the
   two graders agree on the program and the cause is the extraction:
   - ``theirs: extraction kept indentation``: their program does not even compile
     (a code block inside a Markdown list keeps the list's indentation; we dedent it);
   - ``extraction: other code block``: the two programs are different blocks of the
     answer (we keep the last block that defines the entry point, they the last block).
2. The same program, other tests. When the publisher kept the hidden test it ran
   (MapCoder's MBPP rows: the test minus the sample assert shown to the model), our
   program is run against it; if that reproduces their verdict the cause is
   ``test set: publisher's test omits the shown sample`` (we score MBPP's full test,
   as MBPP's protocol does).
3. The same program, the same tests, another verdict:
   - ``time limit``: our run timed out (limits in the score file's meta);
   - ``theirs: shared exec globals``: we fail with a NameError that a clean process
     raises (``import math`` missing) while they pass: the publisher exec'd every
     program in one shared ``globals()``, so an earlier program's imports leaked in;
   - ``theirs: failed a passing program``: we pass in a clean process on tests that
     include theirs, they failed it (their harness: shared globals, a 5 s thread
     timeout that does not stop the thread);
   - ``unexplained``: none of the above; listed for a human to read.

Outputs (:func:`write_agreement`): ``agreement.csv`` (one row per dataset x system: n,
pass rates, end-to-end agreement, agreement on the same program, counts per cause),
``agreement_disagreements.csv`` (every disagreement with its cause and evidence) and
``agreement.md`` (both, with a worked example per cause).
"""

from __future__ import annotations

import ast
import builtins
import csv
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pandas as pd

from codyn.backends.replay import ReplayAnswer, read_replay, replay_path
from codyn.errors import InputError
from codyn.io import atomic_open, read_jsonl, write_text
from codyn.scoring.execution import run_tests
from codyn.scoring.extract import extract_code
from codyn.scoring.sandbox import Limits, Sandbox

log = logging.getLogger(__name__)

CAUSES = (
    "theirs: extraction kept indentation",
    "extraction: other code block",
    "test set: publisher's test omits the shown sample",
    "time limit",
    "theirs: shared exec globals",
    "theirs: failed a passing program",
    "theirs: expected outputs not text",
    "unexplained",
)
CAUSE_NOTES = {
    CAUSES[0]: "the publisher's program does not compile (Markdown-list indentation kept); "
    "ours is the same block, dedented",
    CAUSES[1]: "the programs are different blocks of the same answer; the publisher's own "
    "program, run by our sandbox, gets the publisher's verdict",
    CAUSES[2]: "the publisher graded on the hidden test minus the sample assert shown to "
    "the model; we grade on the full test (MBPP's protocol)",
    CAUSES[3]: "our run hit the time limit",
    CAUSES[4]: "a clean process raises NameError (a missing import); the publisher's "
    "shared exec globals had it from an earlier program",
    CAUSES[5]: "the program passes the publisher's own tests in a clean process; the "
    "publisher's harness failed it. Where the evidence names them, programs run earlier in "
    "the publisher's shared globals rebound built-ins this one uses (e.g. `sum`)",
    CAUSES[6]: "the program passes our stdin/stdout tests; the publisher's test list gives "
    "the expected outputs as JSON numbers, booleans or lists (APPS call-based problems "
    "turned into stdin/stdout), which its text-comparing grader does not match; the evidence "
    "gives how many of the system's answers to such problems each grader passed",
    CAUSES[7]: "no rule above explains it",
}
PUBLISHER_FAULTS = (CAUSES[0], CAUSES[4], CAUSES[5], CAUSES[6])
TABLE_COLUMNS = [
    "dataset",
    "system",
    "n",
    "ours_pass",
    "theirs_pass",
    "agree",
    "agree_same_program_and_tests",
    "agree_excluding_publisher_faults",
    "disagreements",
    *[f"cause: {c}" for c in CAUSES],
]
_MODULE_NAMES = ("math", "re", "collections", "itertools", "heapq", "string", "sys", "bisect")


@dataclass
class Disagreement:
    dataset: str
    system: str
    task_id: str
    ours: bool
    theirs: bool
    our_status: str
    our_detail: str
    cause: str
    evidence: str
    our_program: str | None
    their_program: str | None


def _norm(code: str | None) -> str:
    return (code or "").strip()


def read_scores(path) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype={"task_id": str, "status": str, "detail": str})
    for column in ("task_id", "score", "status"):
        if column not in frame.columns:
            raise InputError("missing column", path=path, field=column)
    return frame.set_index("task_id")


def _answer_for(task: dict, table: dict[str, ReplayAnswer]) -> ReplayAnswer | None:
    for key in (task["id"], (task.get("meta") or {}).get("upstream_id")):
        if key is not None and str(key) in table:
            return table[str(key)]
    return None


def _top_level_names(code: str | None) -> set[str]:
    """Names a program binds at module level (functions, classes, assignments, imports)."""
    try:
        tree = ast.parse(code or "")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return set()
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def _used_names(code: str | None) -> set[str]:
    try:
        tree = ast.parse(code or "")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return set()
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def shadowed_builtins(program: str | None, earlier: list[tuple[str, str | None]]) -> list[str]:
    """Built-in names ``program`` relies on that a program run before it in the same
    process rebinds: under shared exec globals the later program sees the rebinding."""
    own = _top_level_names(program)
    wanted = {n for n in _used_names(program) if hasattr(builtins, n)} - own
    hits = []
    for other_id, other in earlier:
        for name in sorted(wanted & _top_level_names(other)):
            hits.append(f"{name} (rebound by {other_id})")
    return hits


def _classify(
    task, answer, ours, status, detail, sandbox, earlier=(), nontext=""
) -> tuple[str, str, str | None]:
    """(cause, evidence, our program) for one disagreement; runs programs in ``sandbox``."""
    tests = task["tests"]
    entry = tests.get("entry_point") or tests.get("fn_name")
    our_program = extract_code(answer.text, task["language"], entry)
    theirs = bool(answer.published_solved)
    if answer.program is not None and _norm(our_program) != _norm(answer.program):
        verdict = run_tests(answer.program, tests, sandbox)
        if (verdict.score == 1.0) == theirs:
            if verdict.status == "syntax_error" and "indent" in verdict.detail.lower():
                return CAUSES[0], f"their program: {verdict.detail}", our_program
            return CAUSES[1], f"their program in our sandbox: {verdict.status}", our_program
    if (
        answer.published_test
        and our_program is not None
        and answer.published_test != tests.get("test")
    ):
        their_tests = {**tests, "test": answer.published_test}
        verdict = run_tests(our_program, their_tests, sandbox)
        if (verdict.score == 1.0) == theirs:
            return CAUSES[2], f"on the publisher's test: {verdict.status}", our_program
    if status == "timeout":
        return CAUSES[3], detail, our_program
    if not ours and theirs and "NameError" in detail:
        name = next((m for m in _MODULE_NAMES if f"'{m}'" in detail), None)
        if name:
            return CAUSES[4], detail, our_program
    if ours and not theirs and answer.published_nontext_outputs:
        return CAUSES[6], f"passes our tests; {nontext}", our_program
    if ours and not theirs:
        evidence = "passes in a clean process (our sandbox)"
        program = answer.program or our_program
        helpers = (_used_names(program) & _top_level_names(tests.get("prefix"))) - _top_level_names(
            program
        )
        if helpers:
            evidence += (
                f"; it uses {', '.join(sorted(helpers))} from the prompt's code, which "
                "HumanEval's own harness runs first and the publisher did not"
            )
        shadows = shadowed_builtins(program, list(earlier))
        if shadows:
            evidence += "; under shared globals it would see " + ", ".join(shadows[:3])
        return CAUSES[5], evidence, our_program
    return CAUSES[7], detail, our_program


def compare_system(
    dataset: str,
    system: str,
    tasks: list[dict],
    scores: pd.DataFrame,
    answers: dict[str, ReplayAnswer],
    sandbox: Sandbox,
) -> tuple[dict, list[Disagreement]]:
    """One row of agreement.csv and the disagreements of one (dataset, system)."""
    pairs = []
    for task in tasks:
        answer = _answer_for(task, answers)
        if answer is None or answer.published_solved is None or task["id"] not in scores.index:
            continue
        row = scores.loc[task["id"]]
        pairs.append((task, answer, float(row["score"]) == 1.0, str(row["status"]), row))
    if not pairs:
        raise InputError(
            f"no task of {dataset!r} has both our score and a published verdict", field=system
        )
    disagreements = []
    todo = [p for p in pairs if p[2] != bool(p[1].published_solved)]
    # The publisher ran the answers in file order in one process: what ran before each.
    order = list(answers.values())
    position = {id(a): i for i, a in enumerate(order)}
    odd = [p for p in pairs if p[1].published_nontext_outputs]
    nontext = (
        f"on the {len(odd)} tasks whose expected outputs are not text, the publisher passed "
        f"{sum(bool(p[1].published_solved) for p in odd)}, we passed {sum(p[2] for p in odd)}"
    )

    def one(item):
        task, answer, ours, status, row = item
        detail = "" if pd.isna(row.get("detail")) else str(row.get("detail"))
        earlier = [(a.id, a.program) for a in order[: position[id(answer)]]]
        cause, evidence, program = _classify(
            task, answer, ours, status, detail, sandbox, earlier, nontext
        )
        return Disagreement(
            dataset,
            system,
            task["id"],
            ours,
            bool(answer.published_solved),
            status,
            detail,
            cause,
            evidence,
            program,
            answer.program,
        )

    with ThreadPoolExecutor(max_workers=sandbox.n_workers) as pool:
        disagreements = list(pool.map(one, todo))
    n = len(pairs)
    counts = Counter(d.cause for d in disagreements)
    # Not grader disagreements: another program extracted from the same answer, or the
    # publisher's narrower test (MBPP minus the shown sample).
    not_graders = counts[CAUSES[0]] + counts[CAUSES[1]] + counts[CAUSES[2]]
    row = {
        "dataset": dataset,
        "system": system,
        "n": n,
        "ours_pass": sum(p[2] for p in pairs) / n,
        "theirs_pass": sum(bool(p[1].published_solved) for p in pairs) / n,
        "agree": (n - len(disagreements)) / n,
        "agree_same_program_and_tests": (n - len(disagreements) + not_graders) / n,
        "agree_excluding_publisher_faults": (
            n - len(disagreements) + sum(counts[c] for c in PUBLISHER_FAULTS)
        )
        / n,
        "disagreements": len(disagreements),
        **{f"cause: {c}": counts[c] for c in CAUSES},
    }
    return row, disagreements


def replay_systems(config: dict) -> list[str]:
    """Portfolio models whose answers are replayed (and may carry a published verdict)."""
    return [m for m in config["portfolio"] if config["models"][m].get("backend") == "replay"]


def build_agreement(
    datasets: dict[str, dict],
    models: dict[str, dict],
    scoring_cfg: dict | None = None,
    *,
    workers: int | None = None,
) -> tuple[pd.DataFrame, list[Disagreement]]:
    """``datasets``: name -> {"tasks": path, "scores": {system: csv path}}; ``models``: the
    config's model entries of those systems (their ``replay_file``)."""
    cfg = dict(scoring_cfg or {})
    sandbox = Sandbox(
        Limits.from_config(cfg),
        workers=cfg.get("workers") or workers or 2,
        isolation=cfg.get("isolation", "auto"),
    )
    rows, every = [], []
    try:
        sandbox.start()
        for dataset, spec in datasets.items():
            tasks = list(read_jsonl(spec["tasks"]))
            for system, score_path in spec["scores"].items():
                answers = read_replay(replay_path(system, models[system], dataset))
                if not any(a.published_solved is not None for a in answers.values()):
                    log.info("%s / %s: no published verdicts, skipped", dataset, system)
                    continue
                row, found = compare_system(
                    dataset, system, tasks, read_scores(score_path), answers, sandbox
                )
                rows.append(row)
                every.extend(found)
                log.info(
                    "%s / %s: agreement %.3f (%d disagreements)",
                    dataset,
                    system,
                    row["agree"],
                    row["disagreements"],
                )
    finally:
        sandbox.close()
    if not rows:
        log.warning("no replayed system carries published verdicts: nothing to compare")
        return pd.DataFrame(columns=TABLE_COLUMNS), every
    table = pd.DataFrame(rows)
    totals = []
    for dataset, part in table.groupby("dataset", sort=False):
        n = part["n"].sum()
        total = {"dataset": dataset, "system": "(all systems)", "n": int(n)}
        for col in part.columns:
            if col in ("dataset", "system", "n"):
                continue
            if col.startswith("cause: ") or col == "disagreements":
                total[col] = int(part[col].sum())
            else:
                total[col] = float((part[col] * part["n"]).sum() / n)
        totals.append(total)
    return pd.concat([table, pd.DataFrame(totals)], ignore_index=True), every


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _code(text: str | None, limit: int = 900) -> str:
    text = (text or "(none)").strip("\n")
    if len(text) > limit:
        text = text[:limit] + "\n# ... (cut)"
    return "```python\n" + text.replace("```", "`` `") + "\n```"


def to_markdown(table: pd.DataFrame, disagreements: list[Disagreement], label: str = "") -> str:
    if table.empty:
        return (
            "# Our verdicts vs the publisher's\n\nNo replayed answer in this run carries a "
            "published verdict (`is_solved`): nothing to compare.\n"
        )
    lines = [
        "# Our verdicts vs the publisher's (`is_solved`)",
        "",
        "Answers: real, replayed (published answers, re-scored by codyn's sandbox). "
        + (f"Run: {label}." if label else ""),
        "",
        "| dataset | system | n | ours pass | theirs pass | agree | agree, same program and "
        "tests | agree, publisher faults aside | disagreements |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in table.iterrows():
        lines.append(
            f"| {r['dataset']} | {r['system']} | {r['n']} | {_pct(r['ours_pass'])} | "
            f"{_pct(r['theirs_pass'])} | {_pct(r['agree'])} | {_pct(r['agree_same_program_and_tests'])} | "
            f"{_pct(r['agree_excluding_publisher_faults'])} | {r['disagreements']} |"
        )
    lines += [
        "",
        "*agree*: same pass/fail end to end (our extraction + our sandbox vs theirs). "
        "*same program and tests*: the two graders compared on what they were both given: "
        "disagreements caused by extracting a different program from the same answer, or by "
        "the publisher's narrower test, count as agreement. *publisher faults aside*: "
        f"disagreements of the classes {', '.join(PUBLISHER_FAULTS)} count as agreement.",
        "",
        "## Causes",
        "",
        "| cause | count | what it means |",
        "|---|---|---|",
    ]
    counts = Counter(d.cause for d in disagreements)
    for cause in CAUSES:
        lines.append(f"| {cause} | {counts[cause]} | {CAUSE_NOTES[cause]} |")
    lines += ["", "## A worked example per cause", ""]
    for cause in CAUSES:
        example = next((d for d in disagreements if d.cause == cause), None)
        if example is None:
            continue
        lines += [
            f"### {cause}",
            "",
            f"{example.dataset} / {example.system} / {example.task_id}: ours "
            f"{'pass' if example.ours else 'fail'} ({example.our_status}"
            f"{': ' + example.our_detail if example.our_detail else ''}), theirs "
            f"{'pass' if example.theirs else 'fail'}. Evidence: {example.evidence}.",
            "",
            "Our program:",
            "",
            _code(example.our_program),
            "",
        ]
        if _norm(example.their_program) != _norm(example.our_program):
            lines += ["The publisher's program:", "", _code(example.their_program), ""]
    lines += [
        "## Every disagreement",
        "",
        "| dataset | system | task | ours | theirs | our status | cause | evidence |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for d in disagreements:
        evidence = d.evidence.replace("|", "\\|").replace("\n", " ")[:120]
        lines.append(
            f"| {d.dataset} | {d.system} | {d.task_id} | {'pass' if d.ours else 'fail'} | "
            f"{'pass' if d.theirs else 'fail'} | {d.our_status} | {d.cause} | {evidence} |"
        )
    return "\n".join(lines) + "\n"


def write_agreement(
    datasets: dict[str, dict],
    models: dict[str, dict],
    csv_path,
    md_path,
    disagreements_path,
    scoring_cfg: dict | None = None,
    label: str = "",
) -> pd.DataFrame:
    table, disagreements = build_agreement(datasets, models, scoring_cfg)
    with atomic_open(csv_path, newline="") as fh:
        table.to_csv(fh, index=False, float_format="%.6f")
    columns = [
        "dataset",
        "system",
        "task_id",
        "ours",
        "theirs",
        "our_status",
        "our_detail",
        "cause",
        "evidence",
    ]
    with atomic_open(disagreements_path, newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for d in disagreements:
            writer.writerow([getattr(d, c) for c in columns])
    write_text(md_path, to_markdown(table, disagreements, label))
    return table
