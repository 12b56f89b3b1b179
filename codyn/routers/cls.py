"""LLM classifier router, CLS (paper 5.1, 6.1.5).

A pretrained LM with one regression head per portfolio model (transformers'
``AutoModelForSequenceClassification`` with ``num_labels = m``: last-token pooling for
decoders such as Qwen2.5, the [CLS] pooler for BERT-like encoders such as MiniLM),
fully fine-tuned with the sum over heads of the per-head MSE, AdamW and a linear
warmup then linear decay. Paper values: Qwen2.5-0.5B/1.5B, 3 epochs, 500 warmup
steps, lr 2e-5, batch 4 (0.5B) / 1 (1.5B), 16-bit, inputs of 2048 tokens.

Params (config ``routers.<name>``): base_model, epochs, lr, warmup_steps, batch_size,
grad_accum, max_length, weight_decay, max_grad_norm, bf16, device (auto|cpu|cuda),
predict_batch_size, threads. The fine-tuned model is saved under ``model/``.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from codyn.errors import InputError
from codyn.routers.base import ProgressLog, Router, resolve_device
from codyn.routers.lm import resolve_base_model, seed_everything
from codyn.routing_data import RoutingData

log = logging.getLogger(__name__)
MODEL_DIR = "model"


class ClsRouter(Router):
    type = "cls"
    defaults = {
        "base_model": "minilm",
        "epochs": 3,
        "lr": 2e-5,
        "warmup_steps": 500,
        "batch_size": 4,
        "grad_accum": 1,
        "max_length": 2048,
        "weight_decay": 0.0,
        "max_grad_norm": 1.0,
        "bf16": False,
        "device": "auto",
        "predict_batch_size": 32,
        "threads": None,
    }
    model = None
    tokenizer = None

    def _check_data(self, data: RoutingData, where: str) -> None:
        for key in ("epochs", "batch_size", "max_length"):
            if int(self.params[key]) < 1:
                raise InputError(f"{key} must be >= 1", path=where, field=key)

    def _load_model(self, source: str, num_labels: int | None = None):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(source)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        kwargs = {"num_labels": num_labels, "problem_type": "regression"} if num_labels else {}
        model = AutoModelForSequenceClassification.from_pretrained(source, **kwargs)
        # Decoders pool the last non-pad token; they need to know which id pads.
        model.config.pad_token_id = tokenizer.pad_token_id
        return model, tokenizer

    def _encode(self, prompts: list[str], device: str):
        enc = self.tokenizer(
            prompts,
            truncation=True,
            max_length=int(self.params["max_length"]),
            padding=True,
            return_tensors="pt",
        )
        return {k: v.to(device) for k, v in enc.items()}

    def _autocast(self, device: str):
        import contextlib

        import torch

        if self.params["bf16"] and device == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _fit(self, data: RoutingData) -> dict:
        import torch
        from transformers import get_linear_schedule_with_warmup

        seed_everything(self.seed, self.params.get("threads"))
        device = resolve_device(self.params["device"])
        base = resolve_base_model(str(self.params["base_model"]), seed=self.seed)
        self.model, self.tokenizer = self._load_model(base, num_labels=len(data.models))
        self.model.to(device)
        self.model.train()

        n, batch = len(data), int(self.params["batch_size"])
        accum = int(self.params["grad_accum"])
        per_epoch = math.ceil(math.ceil(n / batch) / accum)
        total = per_epoch * int(self.params["epochs"])
        optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=float(self.params["lr"]),
            weight_decay=float(self.params["weight_decay"]),
        )
        schedule = get_linear_schedule_with_warmup(
            optimizer, min(int(self.params["warmup_steps"]), total), total
        )
        targets = torch.tensor(data.targets, dtype=torch.float32)
        order = torch.Generator().manual_seed(self.seed)
        progress = ProgressLog(total, f"cls {self.params['base_model']}", logger=log)
        step, losses = 0, []
        for _epoch in range(int(self.params["epochs"])):
            perm = torch.randperm(n, generator=order).tolist()
            chunks = [perm[i : i + batch] for i in range(0, n, batch)]
            for c, idx in enumerate(chunks):
                enc = self._encode([data.prompts[i] for i in idx], device)
                with self._autocast(device):
                    pred = self.model(**enc).logits.float()
                # Sum over heads of each head's MSE (paper 5.1).
                loss = ((pred - targets[idx].to(device)) ** 2).mean(dim=0).sum()
                (loss / accum).backward()
                losses.append(loss.item())
                if (c + 1) % accum == 0 or c + 1 == len(chunks):
                    torch.nn.utils.clip_grad_norm_(
                        self.model.parameters(), float(self.params["max_grad_norm"])
                    )
                    optimizer.step()
                    schedule.step()
                    optimizer.zero_grad()
                    step += 1
                    progress.step(step, float(np.mean(losses[-accum:])))
        self.model.eval()
        last = losses[-max(1, len(chunks)) :]
        return {
            "train_loss": float(np.mean(last)),
            "steps": step,
            "device": device,
            "base_model_path": base,
        }

    def _predict(self, prompts: list[str]) -> np.ndarray:
        import torch

        device = next(self.model.parameters()).device.type
        size = int(self.params["predict_batch_size"])
        out = []
        with torch.no_grad():
            for i in range(0, len(prompts), size):
                with self._autocast(device):
                    out.append(
                        self.model(**self._encode(prompts[i : i + size], device))
                        .logits.float()
                        .cpu()
                        .numpy()
                    )
        return np.vstack(out).astype(float)

    def _save_weights(self, directory: Path) -> None:
        self.model.save_pretrained(directory / MODEL_DIR)
        self.tokenizer.save_pretrained(directory / MODEL_DIR)

    def _load_weights(self, directory: Path) -> None:
        folder = directory / MODEL_DIR
        if not (folder / "config.json").is_file():
            raise InputError("fine-tuned model missing", path=folder)
        seed_everything(self.seed, self.params.get("threads"))
        self.model, self.tokenizer = self._load_model(str(folder))
        if self.model.config.num_labels != len(self.models):
            raise InputError(
                f"model has {self.model.config.num_labels} heads, router.json lists {len(self.models)} models",
                path=folder / "config.json",
                field="num_labels",
            )
        self.model.to(resolve_device(self.params["device"]))
        self.model.eval()
