"""Published generations read back from a file (the paper's BigCodeBench route, A.4).

``replay_file`` is JSONL or JSONL.gz, one generation per line; ``{dataset}`` in
the path is filled from the task, so one model entry serves several datasets.
Field names default to ``task_id`` and ``text`` and can be changed per model with
``params: {replay_id_field: ..., replay_text_field: ...}`` (BigCodeBench's
published samples use ``task_id`` / ``solution``). A task is matched by its id,
else by ``meta.upstream_id``; a task with no generation is an error record.
"""

from __future__ import annotations

import threading
from pathlib import Path

from codyn.backends.base import Backend, BackendError, Completion
from codyn.errors import ConfigError, InputError
from codyn.io import read_jsonl, sha256_file

REPLAY_PARAM_KEYS = ("replay_id_field", "replay_text_field")


class ReplayBackend(Backend):
    kind = "replay"

    def __init__(self, model_name: str, model_cfg: dict, generation_cfg: dict):
        super().__init__(model_name, model_cfg, generation_cfg)
        if not model_cfg.get("replay_file"):
            raise ConfigError(
                f"models.{model_name}.replay_file", "replay backend needs a replay_file"
            )
        params = model_cfg.get("params") or {}
        self.id_field = params.get("replay_id_field", "task_id")
        self.text_field = params.get("replay_text_field", "text")
        self._tables: dict[str, tuple[dict, str]] = {}
        self._lock = threading.Lock()

    def params(self) -> dict:
        # Replay answers do not depend on sampling parameters.
        return {
            k: v for k, v in (self.model_cfg.get("params") or {}).items() if k in REPLAY_PARAM_KEYS
        }

    def _path(self, task: dict | None) -> Path:
        template = str(self.model_cfg["replay_file"])
        dataset = (task or {}).get("dataset", "")
        return Path(template.format(dataset=dataset)) if "{dataset}" in template else Path(template)

    def _table(self, path: Path) -> tuple[dict, str]:
        with self._lock:
            key = str(path)
            if key not in self._tables:
                table = {}
                for lineno, rec in enumerate(read_jsonl(path), start=1):
                    for field in (self.id_field, self.text_field):
                        if field not in rec:
                            raise InputError(
                                "missing field", path=path, record=f"line {lineno}", field=field
                            )
                    if not isinstance(rec[self.text_field], str):
                        raise InputError(
                            "not a string",
                            path=path,
                            record=f"line {lineno}",
                            field=self.text_field,
                        )
                    table[str(rec[self.id_field])] = rec
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
                rec = table[str(tid)]
                break
        else:
            raise BackendError(
                f"no generation for task {task['id']!r} in {path.name}", kind="missing"
            )
        in_tok, out_tok = rec.get("input_tokens"), rec.get("output_tokens")
        return Completion(
            text=rec[self.text_field],
            input_tokens=in_tok if isinstance(in_tok, int) else None,
            output_tokens=out_tok if isinstance(out_tok, int) else None,
            latency_s=None,
            cost_usd=self.cost(in_tok, out_tok)
            if isinstance(in_tok, int) and isinstance(out_tok, int)
            else None,
            model_id=self.model_id or path.name,
            finish_reason="replay",
        )
