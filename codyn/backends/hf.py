"""Local generation with transformers (GPU when there is one, else CPU).

``model_id`` is a folder saved with ``save_pretrained``, a hub id (resolved by
transformers: the local cache, or a download where the machine has network), or
a tiny-model name from :mod:`codyn.tiny_models` (built locally). One model per
process; requests are serialised because a single forward pass already uses the
device fully.
"""

from __future__ import annotations

import threading
import time

from codyn.backends.base import Backend, BackendError, Completion, check_messages
from codyn.errors import ConfigError


class HFBackend(Backend):
    kind = "hf"
    max_concurrency = 1

    def __init__(
        self, model_name: str, model_cfg: dict, generation_cfg: dict, *, device=None, seed=0
    ):
        super().__init__(model_name, model_cfg, generation_cfg)
        if not self.model_id:
            raise ConfigError(
                f"models.{model_name}.model_id", "hf backend needs a local model folder"
            )
        self._device = device
        self._seed = seed
        self._model = None
        self._tokenizer = None
        self._lock = threading.Lock()

    def _load(self):
        if self._model is None:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            from codyn.tiny_models import resolve_model_path

            path = resolve_model_path(self.model_id, seed=self._seed)
            device = self._device or ("cuda" if torch.cuda.is_available() else "cpu")
            try:
                self._tokenizer = AutoTokenizer.from_pretrained(path)
                model = AutoModelForCausalLM.from_pretrained(path)
            except OSError as exc:
                raise ConfigError(
                    f"models.{self.model_name}.model_id",
                    f"cannot load a local model from {path!r} ({exc})",
                ) from None
            self._model = model.to(device).eval()
            self._device = device
        return self._model, self._tokenizer

    def _prompt(self, tokenizer, messages: list[dict]) -> str:
        if tokenizer.chat_template:
            return tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=False
            )
        return "\n\n".join(m["content"] for m in messages) + "\n\n"

    def complete(self, messages: list[dict], params: dict, task: dict | None = None) -> Completion:
        import torch

        check_messages(messages)
        with self._lock:
            model, tokenizer = self._load()
            started = time.perf_counter()
            enc = tokenizer(self._prompt(tokenizer, messages), return_tensors="pt").to(self._device)
            n_in = int(enc["input_ids"].shape[1])
            limit = getattr(model.config, "max_position_embeddings", None)
            max_new = int(params.get("max_tokens", 256))
            if limit is not None and n_in >= limit:
                raise BackendError(f"prompt has {n_in} tokens, model takes {limit}", kind="refused")
            if limit is not None:
                max_new = min(max_new, limit - n_in)
            temperature = float(params.get("temperature", 0.0))
            gen_kwargs = {"max_new_tokens": max_new, "pad_token_id": tokenizer.pad_token_id}
            if temperature > 0:
                torch.manual_seed(self._seed)
                gen_kwargs.update(
                    do_sample=True, temperature=temperature, top_p=float(params.get("top_p", 1.0))
                )
            else:
                gen_kwargs.update(do_sample=False)
            try:
                with torch.no_grad():
                    out = model.generate(**enc, **gen_kwargs)
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                raise BackendError("CUDA out of memory", kind="oom", retryable=True) from None
            new_ids = out[0][n_in:]
            text = tokenizer.decode(new_ids, skip_special_tokens=True)
            n_out = int(new_ids.shape[0])
            finish = "length" if n_out >= max_new else "stop"
            return Completion(
                text=text,
                input_tokens=n_in,
                output_tokens=n_out,
                latency_s=time.perf_counter() - started,
                cost_usd=self.cost(n_in, n_out),
                model_id=self.model_id,
                finish_reason=finish,
            )

    def close(self) -> None:
        self._model = None
        self._tokenizer = None
