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
Memory (a full fine-tune of Qwen2.5-1.5B on one 24 GB GPU; arithmetic in
config/paper.yaml): ``gradient_checkpointing`` (recompute each layer's activations in
the backward pass) and ``optimizer: adamw-8bit`` (bitsandbytes' AdamW8bit: Adam's two
moments in 8 bits, 2 bytes per parameter instead of 8; needs bitsandbytes and CUDA).

Three options change the paper's recipe where it fails on a few hundred real prompts
(benchmarks/NOTES.md); their defaults are the paper's:

- ``pooling``: ``model`` = the architecture's own pooling (paper); ``mean`` = masked mean
  of the last hidden states, L2-normalised -- how sentence encoders such as MiniLM were
  trained (their [CLS] pooler was not); ``auto`` = ``mean`` for encoders with a linear
  ``classifier`` head, else ``model``.
- ``objective``: ``mse`` = regress the setting's ranking scores (paper 5.1); ``bce`` =
  one logistic head per model on the RAW scores in [0, 1] (pass@1 as soft labels), and
  predict P(success) + lambda2 * CS^-1, as the ``linear`` router does. Per-model scaled
  targets inflate weak models' rare successes; probabilities do not.
- ``head_init``: ``random`` (paper) or ``probe``: before fine-tuning, fit the head on the
  frozen encoder's pooled features (logistic / ridge regression with ``probe_C`` /
  ``probe_alpha``), then fine-tune everything ("LP-FT"). Fine-tuning then starts from a
  router as good as a linear probe instead of from noise, which a few hundred prompts
  and a few epochs cannot undo.
- ``header`` (false | auto | true; needs ``pooling: mean``): like the ``linear`` router,
  read a ``key: value | ...`` first prompt line as metadata features
  (codyn.routers.header), scaled by ``header_weight``, through a second linear head
  whose logits add to the text head's. Its features and weights are kept in router.json.

``encoder_runtime`` (torch | onnx | onnx-int8): predict with PyTorch, or through an ONNX
export of the encoder and text head (codyn.routers.onnx_encoder) written at save time
as ``model/encoder.onnx`` (``model/encoder-int8.onnx``); the header head stays numpy.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import ClassVar

import numpy as np

from codyn.errors import ConfigError, InputError
from codyn.ranking import ranking_score
from codyn.routers.base import ProgressLog, Router, resolve_device
from codyn.routers.header import HeaderFeatures
from codyn.routers.linear import expected_scores, fit_expected_score
from codyn.routers.lm import quantize_int8, resolve_base_model, seed_everything
from codyn.routers.onnx_encoder import OnnxEncoder, check_runtime, onnx_file_name
from codyn.routing_data import RoutingData

log = logging.getLogger(__name__)
MODEL_DIR = "model"


class ClsRouter(Router):
    # size: one fine-tuned encoder whose text and header heads, LP-FT probe, training loop
    # and prediction all share the model state; a split (heads and probe apart from the
    # training loop) waits for the encoder_runtime work on this class to land (issue 18)
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
        "pooling": "model",
        "objective": "mse",
        "head_init": "random",
        "probe_C": 1.0,
        "probe_alpha": 1.0,
        "header": "false",
        "header_weight": 3.0,
        "gradient_checkpointing": False,
        "optimizer": "adamw",
    }
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {
        "pooling": ("model", "mean", "auto"),
        "objective": ("mse", "bce"),
        "head_init": ("random", "probe"),
        "header": ("false", "auto", "true"),
        "optimizer": ("adamw", "adamw-8bit"),
    }
    header = None  # HeaderFeatures when the router reads a metadata line
    header_head = None  # torch Linear(n header features -> n models), no bias
    model = None
    tokenizer = None
    onnx = None  # OnnxEncoder of the text logits when encoder_runtime is not torch

    def _check_data(self, data: RoutingData, where: str) -> None:
        for key in ("epochs", "batch_size", "max_length"):
            if int(self.params[key]) < 1:
                raise InputError(f"{key} must be >= 1", path=where, field=key)
        self.params["header"] = str(self.params["header"]).lower()
        check_runtime(self.params.get("encoder_runtime", "torch"), where)
        for key, allowed in self.CHOICES.items():
            if self.params[key] not in allowed:
                raise InputError(
                    f"{key} must be one of {', '.join(allowed)}, not {self.params[key]!r}",
                    path=where,
                    field=key,
                )
        if self.params["objective"] == "bce":
            lo, hi = float(np.nanmin(data.scores)), float(np.nanmax(data.scores))
            if lo < 0.0 or hi > 1.0:
                raise InputError(
                    f"objective bce needs raw scores in [0, 1]; these span [{lo:g}, {hi:g}]"
                    " (use objective: mse)",
                    path=where,
                    field="objective",
                )

    # ---- pooling and head ------------------------------------------------------
    def _head(self):
        import torch

        for name in ("classifier", "score"):
            head = getattr(self.model, name, None)
            if isinstance(head, torch.nn.Linear):
                return head
        return None

    def _resolve_pooling(self) -> str:
        pooling = self.params["pooling"]
        if pooling == "auto":
            import torch

            linear_classifier = isinstance(getattr(self.model, "classifier", None), torch.nn.Linear)
            pooling = "mean" if linear_classifier else "model"
        if pooling == "mean" and self._head() is None:
            raise InputError(
                f"pooling: mean needs a linear 'classifier' or 'score' head; "
                f"{type(self.model).__name__} has neither",
                field="pooling",
            )
        return pooling

    def _header_x(self, prompts: list[str], device: str):
        import torch

        x = float(self.params["header_weight"]) * self.header.transform(prompts)
        return torch.tensor(x, dtype=torch.float32, device=device)

    def _pool(self, enc: dict):
        """Masked mean of the last hidden states, L2-normalised (``pooling: mean``)."""
        import torch

        hidden = self.model.base_model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return torch.nn.functional.normalize(pooled.float(), dim=-1)

    def _text_logits(self, enc: dict):
        """The encoder and text head: what encoder_runtime onnx exports."""
        if self.pooling != "mean":
            return self.model(**enc).logits.float()
        head = self._head()
        return head(self._pool(enc).to(head.weight.dtype)).float()

    def _logits(self, enc: dict, prompts: list[str]):
        logits = self._text_logits(enc)
        if self.header_head is not None:
            logits = logits + self.header_head(self._header_x(prompts, logits.device.type))
        return logits

    def _setup_header(self, data: RoutingData, device: str) -> None:
        import torch

        use = self.params["header"]
        self.header, self.header_head = None, None
        if use == "false":
            return
        if self.pooling != "mean":
            raise InputError("header features need pooling: mean (or auto)", field="header")
        header = HeaderFeatures().fit(data.prompts)
        if header.n_features == 0:
            if use == "true":
                raise InputError(
                    "header: true, but the training prompts have no 'key: value | ...' first line",
                    field="header",
                )
            return
        self.header = header
        self.header_head = torch.nn.Linear(header.n_features, len(data.models), bias=False)
        torch.nn.init.zeros_(self.header_head.weight)
        self.header_head.to(device)

    def _pooled_features(self, prompts: list[str], device: str) -> np.ndarray:
        """The frozen encoder's pooled features (the text head's input), batch by batch."""
        import torch

        size = int(self.params["predict_batch_size"])
        self.model.eval()
        with torch.no_grad():
            parts = [
                self._pool(self._encode(prompts[i : i + size], device)).cpu()
                for i in range(0, len(prompts), size)
            ]
        return torch.cat(parts).numpy()

    def _init_head_from_probe(self, data: RoutingData, device: str) -> dict:
        """LP-FT: fit the head on frozen pooled features; returns the probe's train loss."""
        import torch

        if self.pooling != "mean":
            raise InputError("head_init: probe needs pooling: mean (or auto)", field="head_init")
        pooled = self._pooled_features(data.prompts, device)
        x = pooled
        if self.header_head is not None:
            x = np.hstack([pooled, self._header_x(data.prompts, "cpu").numpy()])
        head = self._head()
        bias = head.bias is not None
        y = data.scores if self.params["objective"] == "bce" else data.targets
        weights, biases, fitted = [], [], []
        for j in range(y.shape[1]):
            model = fit_expected_score(
                x, y[:, j], C=float(self.params["probe_C"]),
                alpha=float(self.params["probe_alpha"]), max_iter=2000, fit_intercept=bias,
            )  # fmt: skip
            fitted.append(model)
            if hasattr(model, "coef_"):
                coef = np.ravel(model.coef_)
                intercept = float(np.ravel(model.intercept_)[0]) if bias else 0.0
            else:  # a model whose training scores never vary: a constant head
                coef = np.zeros(x.shape[1])
                intercept = float(model.value)
                if self.params["objective"] == "bce":
                    p = float(np.clip(intercept, 1e-4, 1 - 1e-4))
                    intercept = float(np.log(p / (1 - p)))
            weights.append(coef)
            biases.append(intercept)
        coef = np.vstack(weights)
        width = pooled.shape[1]
        with torch.no_grad():
            head.weight.copy_(torch.tensor(coef[:, :width], dtype=head.weight.dtype))
            if self.header_head is not None:
                self.header_head.weight.copy_(torch.tensor(coef[:, width:], dtype=torch.float32))
            if bias:
                head.bias.copy_(torch.tensor(biases, dtype=head.bias.dtype))
        self.model.train()
        pred = expected_scores(fitted, x)
        return {"probe_train_mse": float(np.mean((pred - y) ** 2))}

    def _optimizer_class(self):
        import torch

        if self.params["optimizer"] == "adamw":
            return torch.optim.AdamW
        try:
            import bitsandbytes as bnb
        except ImportError as exc:
            raise InputError(
                "optimizer adamw-8bit needs the bitsandbytes package (and a CUDA GPU): "
                "pip install bitsandbytes on the training machine, or use optimizer: adamw",
                field="optimizer",
            ) from exc
        return bnb.optim.AdamW8bit

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
        if self.params["gradient_checkpointing"]:
            self.model.gradient_checkpointing_enable()
            self.model.config.use_cache = False
        self.pooling = self._resolve_pooling()
        self.params["pooling"] = self.pooling  # router.json records what was used
        self._setup_header(data, device)
        probe = {}
        if self.params["head_init"] == "probe":
            probe = self._init_head_from_probe(data, device)
        self.model.train()

        n, batch = len(data), int(self.params["batch_size"])
        accum = int(self.params["grad_accum"])
        per_epoch = math.ceil(math.ceil(n / batch) / accum)
        total = per_epoch * int(self.params["epochs"])
        params = list(self.model.parameters())
        if self.header_head is not None:
            params += list(self.header_head.parameters())
        optimizer = self._optimizer_class()(
            params,
            lr=float(self.params["lr"]),
            weight_decay=float(self.params["weight_decay"]),
        )
        schedule = get_linear_schedule_with_warmup(
            optimizer, min(int(self.params["warmup_steps"]), total), total
        )
        bce = self.params["objective"] == "bce"
        targets = torch.tensor(data.scores if bce else data.targets, dtype=torch.float32)
        order = torch.Generator().manual_seed(self.seed)
        progress = ProgressLog(total, f"cls {self.params['base_model']}", logger=log)
        step, losses = 0, []
        for _epoch in range(int(self.params["epochs"])):
            perm = torch.randperm(n, generator=order).tolist()
            chunks = [perm[i : i + batch] for i in range(0, n, batch)]
            for c, idx in enumerate(chunks):
                texts = [data.prompts[i] for i in idx]
                with self._autocast(device):
                    pred = self._logits(self._encode(texts, device), texts)
                truth = targets[idx].to(device)
                if bce:
                    loss = (
                        torch.nn.functional.binary_cross_entropy_with_logits(
                            pred, truth, reduction="none"
                        )
                        .mean(dim=0)
                        .sum()
                    )
                else:
                    # Sum over heads of each head's MSE (paper 5.1).
                    loss = ((pred - truth) ** 2).mean(dim=0).sum()
                (loss / accum).backward()
                losses.append(loss.item())
                if (c + 1) % accum == 0 or c + 1 == len(chunks):
                    torch.nn.utils.clip_grad_norm_(params, float(self.params["max_grad_norm"]))
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
            "pooling": self.pooling,
            "header_features": self.header.describe() if self.header else None,
            **probe,
        }

    def _torch_logits(self, prompts: list[str]) -> np.ndarray:
        import torch

        device = next(self.model.parameters()).device.type
        size = int(self.params["predict_batch_size"])
        out = []
        with torch.no_grad():
            for i in range(0, len(prompts), size):
                part = prompts[i : i + size]
                with self._autocast(device):
                    out.append(self._logits(self._encode(part, device), part).cpu())
        return np.vstack([o.numpy() for o in out]).astype(float)

    def _onnx_logits(self, prompts: list[str]) -> np.ndarray:
        logits = self.onnx(prompts, int(self.params["predict_batch_size"])).astype(float)
        if self.header_head is not None:
            weight = self.header_head.weight.detach().cpu().numpy().astype(float)
            logits = logits + self._header_x(prompts, "cpu").numpy().astype(float) @ weight.T
        return logits

    def _predict(self, prompts: list[str]) -> np.ndarray:
        if self.onnx is not None:
            logits = self._onnx_logits(prompts)
        else:
            logits = self._torch_logits(prompts)
        if self.params["objective"] == "bce":
            expected = 1.0 / (1.0 + np.exp(-logits))
            return ranking_score(expected, self.costs, lambda2=self.lambda2)
        return logits

    def quantize(self) -> list[str]:
        """int8 dynamic quantization of the encoder and the header head, for CPU serving."""
        runtime = self.params.get("encoder_runtime", "torch")
        if runtime != "torch":
            # The torch modules no longer predict; int8 for ONNX is chosen at training.
            raise ConfigError(
                "serve.quantize_router",
                f"this router predicts through ONNX Runtime (encoder_runtime: {runtime}); "
                "train it with encoder_runtime: onnx-int8 to quantise it",
            )
        return quantize_int8(self, ("model", "header_head"))

    def _state(self) -> dict:
        if self.header_head is None:
            return {}
        weight = self.header_head.weight.detach().cpu().numpy().astype(float)
        return {"header": {"features": self.header.to_dict(), "weight": weight.tolist()}}

    def _load_state(self, state: dict) -> None:
        self._saved_header = state.get("header")

    def _save_weights(self, directory: Path) -> None:
        self.model.save_pretrained(directory / MODEL_DIR)
        self.tokenizer.save_pretrained(directory / MODEL_DIR)
        runtime = check_runtime(self.params.get("encoder_runtime", "torch"))
        if runtime != "torch":
            from codyn.routers.onnx_encoder import export

            device = next(self.model.parameters()).device
            self.model.to("cpu").eval()
            path = export(
                self._text_logits,
                self.model,
                self.tokenizer,
                directory / MODEL_DIR / onnx_file_name(runtime),
                runtime,
            )
            self.model.to(device)
            self.onnx = OnnxEncoder(path, self.tokenizer, int(self.params["max_length"]))

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
        device = resolve_device(self.params["device"])
        self.model.to(device)
        self.pooling = self._resolve_pooling()
        self.model.eval()
        runtime = check_runtime(self.params.get("encoder_runtime", "torch"), directory)
        self.onnx = None
        if runtime != "torch":
            path = folder / onnx_file_name(runtime)
            threads = self.params.get("threads")
            self.onnx = OnnxEncoder(path, self.tokenizer, int(self.params["max_length"]), threads)
        saved = getattr(self, "_saved_header", None)
        self.header, self.header_head = None, None
        if saved:
            import torch

            self.header = HeaderFeatures.from_dict(saved["features"])
            weight = torch.tensor(saved["weight"], dtype=torch.float32)
            if tuple(weight.shape) != (len(self.models), self.header.n_features):
                raise InputError(
                    f"header head has shape {tuple(weight.shape)}, expected "
                    f"{(len(self.models), self.header.n_features)}",
                    path=directory / "router.json",
                    field="state.header.weight",
                )
            self.header_head = torch.nn.Linear(self.header.n_features, len(self.models), bias=False)
            with torch.no_grad():
                self.header_head.weight.copy_(weight)
            self.header_head.to(device)
