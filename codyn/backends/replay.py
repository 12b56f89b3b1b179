"""Published answers read back from a file: a first-class answer source.

The paper replays BigCodeBench's published samples (A.4); the embedded default replays
MapCoder's published GPT-3.5-turbo / GPT-4-Turbo runs. ``replay_file`` is JSONL or
JSONL.gz, one answer per line; it is a path (``{dataset}`` in it is filled from the task)
or a mapping ``{dataset: path}`` when each dataset's answers sit in a differently named
file. A task is matched by its id, else by ``meta.upstream_id``; a task with no answer in
the file is an error record.

Record layouts understood (:func:`read_replay`), first match wins per field:

- id: ``params.replay_id_field`` if set, else ``task_id``, else ``name`` (MapCoder's
  MBPP rows use MultiPL-E names such as ``mbpp_3_is_not_prime``; the MBPP adapter keeps
  that name as ``meta.upstream_id``). Numbers are read as their decimal text.
- answer text: ``params.replay_text_field`` if set, else the raw chat answer
  ``responses`` (MapCoder: a list, or a Python-literal string of one, of the answers of
  the final attempt; the last is the one whose code was kept), else ``text``, else
  ``solution`` (Reflexion-style files hold only the program).
- tokens: ``input_tokens`` / ``output_tokens`` (integers), else ``prompt_tokens`` /
  ``completion_tokens`` (lists, or literal strings of lists, one entry per API call or
  attempt: summed, since every call was paid for).
- without token counts, they are ESTIMATED (``cost_estimated: true`` on the response):
  input = characters of the record's ``prompt`` (else the task's) / ``CHARS_PER_TOKEN``,
  output = characters of the answer / ``CHARS_PER_TOKEN``, one call. OpenAI's rule of
  thumb is ~4 characters per token for English; code runs denser, and a multi-call
  method (Reflexion) made more calls than one, so these estimates are lower bounds.
- the publisher's own verdict ``is_solved`` (bool or "True"/"False"), when present, is
  kept for the agreement check (:func:`published_verdicts`), never used as a score.

A file with the same id twice (MapCoder's APPS-150 repeats 22 rows) keeps the first
answer, as the APPS adapter keeps the first row; the count is logged.
"""

from __future__ import annotations

import ast
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from codyn.backends.base import Backend, BackendError, Completion
from codyn.errors import ConfigError, InputError
from codyn.io import read_jsonl, sha256_file

log = logging.getLogger(__name__)

REPLAY_PARAM_KEYS = ("replay_id_field", "replay_text_field")
ID_FIELDS = ("task_id", "name")
TEXT_FIELDS = ("responses", "text", "solution")
CHARS_PER_TOKEN = 4.0


@dataclass(frozen=True)
class ReplayAnswer:
    """One published answer, normalised."""

    id: str
    text: str
    input_tokens: int | None
    output_tokens: int | None
    calls: int | None  # API calls or attempts the token lists cover
    published_solved: bool | None
    prompt: str | None  # the prompt the publisher sent, when the file keeps it
    program: str | None  # the publisher's own extracted program (MapCoder's source_codes[-1])
    published_test: str | None = None  # the hidden test the publisher ran, when kept
    # The publisher's test list (APPS rows) gives some expected output as a JSON number,
    # boolean or list rather than text: a stdin/stdout grader compares text.
    published_nontext_outputs: bool = False


def _literal_list(value, *, path, where, field):
    """A list field, also when stored as its Python-literal text ("[292, 310]")."""
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
            raise InputError(
                f"not a list or the Python-literal text of one ({type(exc).__name__})",
                path=path,
                record=where,
                field=field,
            ) from None
    if not isinstance(value, list):
        raise InputError(
            f"expected a list, got {type(value).__name__}", path=path, record=where, field=field
        )
    return value


def _token_sum(value, *, path, where, field) -> tuple[int, int]:
    """(sum, number of calls) of a per-call token list."""
    items = _literal_list(value, path=path, where=where, field=field)
    if not items:
        raise InputError("empty token list", path=path, record=where, field=field)
    for i, n in enumerate(items):
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise InputError(
                f"entry {i} is {n!r}, not a token count (an integer >= 0)",
                path=path,
                record=where,
                field=field,
            )
    return sum(items), len(items)


def _count(rec: dict, field: str, *, path, where) -> int | None:
    value = rec.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(
            f"{value!r} is not a token count (an integer >= 0)",
            path=path,
            record=where,
            field=field,
        )
    return value


def _solved(rec: dict, *, path, where) -> bool | None:
    value = rec.get("is_solved")
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip() in ("True", "False"):
        return value.strip() == "True"
    raise InputError(
        f"{value!r} is not a verdict (true/false)", path=path, record=where, field="is_solved"
    )


def _text(rec: dict, text_field: str | None, *, path, where) -> str:
    fields = (text_field,) if text_field else TEXT_FIELDS
    for field in fields:
        if field not in rec:
            continue
        value = rec[field]
        if field == "responses":
            answers = _literal_list(value, path=path, where=where, field=field)
            if not answers:
                raise InputError("no answer in the list", path=path, record=where, field=field)
            value = answers[-1]
        if not isinstance(value, str):
            raise InputError(
                f"not a string ({type(value).__name__})", path=path, record=where, field=field
            )
        return value
    raise InputError(
        f"no answer field (looked for {', '.join(fields)})",
        path=path,
        record=where,
        field=fields[0],
    )


def _nontext_outputs(test_list) -> bool:
    if not isinstance(test_list, list):
        return False
    for case in test_list:
        outputs = case.get("output") if isinstance(case, dict) else None
        for out in outputs if isinstance(outputs, list) else [outputs]:
            if out is not None and not isinstance(out, str):
                return True
    return False


def parse_answer(
    rec: dict, *, path, lineno: int, id_field: str | None = None, text_field: str | None = None
) -> ReplayAnswer:
    where = f"line {lineno}"
    fields = (id_field,) if id_field else ID_FIELDS
    raw_id = next((rec[f] for f in fields if f in rec), None)
    if raw_id is None or isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
        raise InputError(
            "missing id, or not a string or integer"
            if raw_id is None
            else f"id {raw_id!r} is not a string or integer",
            path=path,
            record=where,
            field=fields[0] if raw_id is None else next(f for f in fields if f in rec),
        )
    where = f"line {lineno} ({raw_id})"
    text = _text(rec, text_field, path=path, where=where)
    in_tok = _count(rec, "input_tokens", path=path, where=where)
    out_tok = _count(rec, "output_tokens", path=path, where=where)
    calls = 1 if in_tok is not None and out_tok is not None else None
    if (in_tok is None or out_tok is None) and (
        "prompt_tokens" in rec or "completion_tokens" in rec
    ):
        for field in ("prompt_tokens", "completion_tokens"):
            if field not in rec:
                raise InputError(
                    "token counts need both prompt_tokens and completion_tokens",
                    path=path,
                    record=where,
                    field=field,
                )
        in_tok, calls = _token_sum(
            rec["prompt_tokens"], path=path, where=where, field="prompt_tokens"
        )
        out_tok, out_calls = _token_sum(
            rec["completion_tokens"], path=path, where=where, field="completion_tokens"
        )
        if out_calls != calls:
            raise InputError(
                f"{calls} prompt token counts but {out_calls} completion token counts",
                path=path,
                record=where,
                field="completion_tokens",
            )
    program = None
    if "source_codes" in rec:
        codes = _literal_list(rec["source_codes"], path=path, where=where, field="source_codes")
        program = codes[-1] if codes and isinstance(codes[-1], str) else None
    elif isinstance(rec.get("solution"), str):
        program = rec["solution"]
    prompt = rec.get("prompt") if isinstance(rec.get("prompt"), str) else None
    return ReplayAnswer(
        id=str(raw_id),
        text=text,
        input_tokens=in_tok,
        output_tokens=out_tok,
        calls=calls,
        published_solved=_solved(rec, path=path, where=where),
        prompt=prompt,
        program=program,
        published_test=rec.get("test") if isinstance(rec.get("test"), str) else None,
        published_nontext_outputs=_nontext_outputs(rec.get("test_list")),
    )


def read_replay(
    path, *, id_field: str | None = None, text_field: str | None = None
) -> dict[str, ReplayAnswer]:
    """{id: answer} of a replay file, first answer per id; errors name file, line and field."""
    table: dict[str, ReplayAnswer] = {}
    repeated = 0
    for lineno, rec in enumerate(read_jsonl(path), start=1):
        answer = parse_answer(
            rec, path=path, lineno=lineno, id_field=id_field, text_field=text_field
        )
        if answer.id in table:
            repeated += 1
            continue
        table[answer.id] = answer
    if not table:
        raise InputError("no answers in the file", path=path)
    if repeated:
        log.info("%s: %d repeated ids, first answer kept", path, repeated)
    return table


def published_verdicts(path) -> dict[str, bool]:
    """{id: the publisher's is_solved} for the answers that carry one."""
    return {
        k: a.published_solved
        for k, a in read_replay(path).items()
        if a.published_solved is not None
    }


def replay_path(model_name: str, model_cfg: dict, dataset: str) -> Path:
    """The replay file of one model for one dataset (``replay_file``: path or mapping)."""
    spec = model_cfg.get("replay_file")
    if isinstance(spec, dict):
        if dataset not in spec:
            raise ConfigError(
                f"models.{model_name}.replay_file",
                f"no replay file for dataset {dataset!r}",
                allowed=sorted(spec),
            )
        return Path(spec[dataset])
    template = str(spec)
    return Path(template.format(dataset=dataset)) if "{dataset}" in template else Path(template)


def estimated_tokens(chars: int) -> int:
    return max(1, round(chars / CHARS_PER_TOKEN))


class ReplayBackend(Backend):
    kind = "replay"

    def __init__(self, model_name: str, model_cfg: dict, generation_cfg: dict):
        super().__init__(model_name, model_cfg, generation_cfg)
        spec = model_cfg.get("replay_file")
        if not spec or (isinstance(spec, dict) and not all(spec.values())):
            raise ConfigError(
                f"models.{model_name}.replay_file",
                "replay backend needs a replay_file (a path, or a mapping dataset: path)",
            )
        params = model_cfg.get("params") or {}
        self.id_field = params.get("replay_id_field")
        self.text_field = params.get("replay_text_field")
        self._tables: dict[str, tuple[dict[str, ReplayAnswer], str]] = {}
        self._lock = threading.Lock()

    def params(self) -> dict:
        # Replay answers do not depend on sampling parameters.
        return {
            k: v for k, v in (self.model_cfg.get("params") or {}).items() if k in REPLAY_PARAM_KEYS
        }

    def _path(self, task: dict | None) -> Path:
        return replay_path(self.model_name, self.model_cfg, (task or {}).get("dataset", ""))

    def _table(self, path: Path) -> tuple[dict[str, ReplayAnswer], str]:
        with self._lock:
            key = str(path)
            if key not in self._tables:
                if not path.is_file():
                    raise InputError(
                        f"replay file of model {self.model_name!r} not found", path=path
                    )
                table = read_replay(path, id_field=self.id_field, text_field=self.text_field)
                self._tables[key] = (table, sha256_file(path))
            return self._tables[key]

    def key_extra(self, task: dict | None) -> dict:
        if task is None:
            return {}
        _, digest = self._table(self._path(task))
        return {"task_id": task["id"], "replay_sha256": digest}

    def complete(self, messages: list[dict], params: dict, task: dict | None = None) -> Completion:
        if task is None:
            raise BackendError("replay answers only known tasks", kind="no_task")
        path = self._path(task)
        table, _ = self._table(path)
        candidates = [task["id"], (task.get("meta") or {}).get("upstream_id")]
        for tid in candidates:
            if tid is not None and str(tid) in table:
                answer = table[str(tid)]
                break
        else:
            raise BackendError(f"no answer for task {task['id']!r} in {path.name}", kind="missing")
        in_tok, out_tok, estimated = answer.input_tokens, answer.output_tokens, False
        if in_tok is None or out_tok is None:
            prompt = answer.prompt or task.get("prompt") or ""
            in_tok, out_tok = estimated_tokens(len(prompt)), estimated_tokens(len(answer.text))
            estimated = True
        return Completion(
            text=answer.text,
            input_tokens=in_tok,
            output_tokens=out_tok,
            latency_s=None,
            cost_usd=self.cost(in_tok, out_tok),
            model_id=self.model_id or path.name,
            finish_reason="replay",
            cost_estimated=estimated,
        )
