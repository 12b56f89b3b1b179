"""Autoregressive routers, AR-SFT and AR-GRPO (paper 5.2, A.6, A.8.5).

A causal LM with LoRA (peft) reads the A.8.5 system prompt and the task prompt and
writes the model ranking "i,j,k,l,m" (model numbers = positions in the portfolio,
best first). The target ranking sorts models by their ranking score RS for the cost
setting, ties to the cheaper model.

- ``ar-sft``: trl's SFTTrainer, cross-entropy on the completion only.
- ``ar-grpo``: trl's GRPOTrainer with ``reward``:
  * ``algorithm1`` (default, the paper's Algorithm 1): a malformed output gets -5;
    otherwise 1 / 0.5 / 0.25 / 0 by the position of the first predicted model in the
    target ranking (first / second / third / later).
  * ``shaped``: Algorithm 1 for well-formed outputs, and for malformed ones a graded
    credit in [-1, 0): -1 + 0.5 * (longest well-formed prefix / length of a ranking)
    + 0.5 * (share of the output's characters that are model numbers or commas).
    An explicit option, not the paper's reward: a randomly initialised
    tiny model never writes a valid ranking, so under Algorithm 1 every sample of a
    group earns -5, the group advantage is 0 and GRPO learns nothing. The offline
    default config uses it for its tiny demo model.

Output format: "valid" means exactly m distinct numbers 0..m-1 separated by commas
(whitespace around them ignored). ``decoding: free`` (default; the paper's routers were
not constrained) only validates what the model writes; ``decoding: constrained`` allows
at each step only the tokens that keep the output valid (an unused number, a comma, or
the end), so every output is valid when each number and the comma are single tokens.

A malformed output (``on_malformed``): ``zero`` (default, the paper's rule) -- the row
scores 0 in evaluation whatever model the fallback would pick; ``fallback`` -- the
training set's mean-target order (``fallback_ranking`` in router.json) is used as if the
router had written it. Either way the prediction row carries the fallback ranking (so
every row names a model, whose cost is counted: a deployment calls some model) and is
flagged in ``malformed_rows``; codyn.routers.pipeline writes the flags into the
predictions file and codyn.evaluation applies the rule. Counted in ``malformed_total``
and ``last_malformed``; ``predict_scores`` turns a ranking into scores m - rank (best = m).

Prompts use the tokenizer's chat template when it has one (system + user messages,
assistant completion), else plain text "<system>\n\n<prompt>\n\nRanking: ". The
task prompt is cut to fit ``max_length`` tokens with the system prompt and ranking.
The saved checkpoint holds the LoRA adapter (``adapter/``) and, for a base model
built locally (tiny-qwen2), a copy of it (``base/``); hub models are referenced.

Params (config ``routers.<name>``): base_model, epochs, max_steps (caps training; the
CPU demo's budget), lr, batch_size, grad_accum, warmup_steps, max_length, lora_r,
lora_alpha, lora_dropout, lora_target_modules, decoding, on_malformed, predict_batch_size, bf16,
gradient_checkpointing, device (auto|cpu|cuda), threads, chat_template (auto|true|
false); ar-grpo also num_generations, reward, temperature, beta (KL weight).
The paper (6.1.5): 3 epochs (SFT) / 2 epochs and 4 generations (GRPO), batch 4,
AdamW lr 2e-5, 2048 input tokens; its outputs were not constrained (``decoding: free``).
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from codyn.errors import InputError
from codyn.ranking import cheap_first_order
from codyn.routers.base import Router, resolve_device
from codyn.routers.lm import (
    quantize_int8,
    resolve_base_model,
    seed_everything,
    trainer_progress_callback,
)
from codyn.routing_data import RoutingData
from codyn.tiny_models import TINY_NAMES

log = logging.getLogger(__name__)
ADAPTER_DIR = "adapter"
BASE_DIR = "base"
RANK_REWARDS = (1.0, 0.5, 0.25)
MALFORMED_REWARD = -5.0
ON_MALFORMED = ("zero", "fallback")


def system_prompt(m: int) -> str:
    """The A.8.5 routing system prompt (its wording for m = 5)."""
    names = {5: "five"}.get(m, str(m))
    quoted = [f'"{e}"' for e in _examples(m)]
    examples = ", ".join(quoted[:-1]) + ", or " + quoted[-1]
    return (
        "Given a task and code snippet, return the model ranking based on the expected "
        "effectiveness to execute the prompt.\n\n"
        f"There are {names} models and each model represented by a number from 0 to {m - 1}. "
        "The numbers must be distinct and sorted in any order. "
        f"Example valid outputs include: {examples}. "
        "Do not include any extra text, explanation, or punctuation beyond the numbers and commas. "
        f"The output must always contain exactly {names} numbers."
    )


def _examples(m: int) -> list[str]:
    if m == 5:
        return ["0,1,2,3,4", "4,0,1,3,2", "2,3,1,0,4"]
    base = list(range(m))
    return [format_ranking(base), format_ranking(base[::-1])]


def format_ranking(order) -> str:
    return ",".join(str(int(i)) for i in order)


def target_order(targets_row, costs) -> list[int]:
    """Model indices best first by ranking score; ties go to the cheaper model."""
    cheap = cheap_first_order(costs)
    row = np.asarray(targets_row, dtype=float)[cheap]
    return [int(cheap[i]) for i in np.argsort(-row, kind="stable")]


def parse_ranking(text: str, m: int) -> list[int] | None:
    """The ranking in ``text``, or None when it is not exactly m distinct numbers 0..m-1."""
    parts = text.strip().split(",")
    if len(parts) != m:
        return None
    out = []
    for part in parts:
        part = part.strip()
        if not part.isdigit() or not part.isascii():
            return None
        out.append(int(part))
    if sorted(out) != list(range(m)):
        return None
    return out


def valid_prefix_length(text: str, m: int) -> int:
    """Characters of ``text`` (stripped) that form the start of a valid ranking."""
    text = text.strip()
    used: set[int] = set()
    pos = 0
    for k in range(m):
        match = re.match(r"\d+", text[pos:])
        if not match or int(match.group()) >= m or int(match.group()) in used:
            return pos
        used.add(int(match.group()))
        pos += match.end()
        if k < m - 1:
            if text[pos : pos + 1] != ",":
                return pos
            pos += 1
    return pos


def algorithm1_reward(text: str, target: str, m: int) -> float:
    """Paper Algorithm 1: -5 malformed; else by the first pick's position in the target."""
    pred = parse_ranking(text, m)
    if pred is None:
        return MALFORMED_REWARD
    target_list = [int(x) for x in target.split(",")]
    rank = target_list.index(pred[0])
    return RANK_REWARDS[rank] if rank < len(RANK_REWARDS) else 0.0


def shaped_reward(text: str, target: str, m: int) -> float:
    """Algorithm 1 for valid outputs; graded partial credit in [-1, 0) for malformed ones."""
    if parse_ranking(text, m) is not None:
        return algorithm1_reward(text, target, m)
    full = len(format_ranking(range(m)))
    stripped = text.strip()
    prefix = min(valid_prefix_length(stripped, m), full - 1) / full
    allowed = set(",") | {str(i) for i in range(min(m, 10))}
    share = sum(ch in allowed for ch in stripped) / max(len(stripped), full)
    return -1.0 + 0.5 * prefix + 0.5 * min(share, (full - 1) / full)


REWARDS = {"algorithm1": algorithm1_reward, "shaped": shaped_reward}


def _completion_text(completion) -> str:
    if isinstance(completion, list):  # conversational: a list of messages
        return "".join(msg.get("content", "") for msg in completion if isinstance(msg, dict))
    return str(completion)


def make_reward_function(kind: str, m: int):
    """A trl reward function ``(completions, target, **kwargs) -> list[float]``."""
    if kind not in REWARDS:
        raise InputError(f"unknown reward {kind!r}", field="reward")
    score = REWARDS[kind]

    def reward(completions, target, **kwargs):
        return [score(_completion_text(c), t, m) for c, t in zip(completions, target, strict=True)]

    reward.__name__ = f"{kind}_reward"
    return reward


class RankingPrompt:
    """The text an autoregressive router reads and writes: the A.8.5 system prompt and the
    task prompt (in the tokenizer's chat template when it has one, or as
    ``chat_template`` says), cut to fit ``max_length`` tokens with the ranking."""

    def __init__(self, tokenizer, m: int, params: dict):
        self.tokenizer, self.m, self.params = tokenizer, m, params

    def use_chat(self) -> bool:
        mode = self.params["chat_template"]
        return (
            bool(getattr(self.tokenizer, "chat_template", None)) if mode == "auto" else bool(mode)
        )

    def messages(self, prompt: str) -> list[dict]:
        return [
            {"role": "system", "content": system_prompt(self.m)},
            {"role": "user", "content": prompt},
        ]

    def render(self, prompt: str) -> str:
        """The full text the model reads before it writes the ranking."""
        if self.use_chat():
            return self.tokenizer.apply_chat_template(
                self.messages(prompt), tokenize=False, add_generation_prompt=True
            )
        return f"{system_prompt(self.m)}\n\n{prompt}\n\nRanking: "

    def fit(self, prompt: str) -> str:
        """Cut the task prompt so prompt + system prompt + ranking fit max_length tokens."""
        reserve = 2 * self.m + 8
        overhead = len(self.tokenizer(self.render(""), add_special_tokens=False)["input_ids"])
        room = int(self.params["max_length"]) - overhead - reserve
        if room < 8:
            raise InputError(
                f"max_length {self.params['max_length']} leaves no room for the task prompt "
                f"(system prompt and template take {overhead} tokens)",
                field="max_length",
            )
        ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        return prompt if len(ids) <= room else self.tokenizer.decode(ids[:room])

    def prompt_field(self, prompt: str):
        """A training row's prompt: chat messages or the rendered text."""
        prompt = self.fit(prompt)
        return self.messages(prompt) if self.use_chat() else self.render(prompt)

    def completion_field(self, ranking: str):
        """A training row's completion: the ranking as the assistant's turn or as text."""
        if self.use_chat():
            return [{"role": "assistant", "content": ranking}]
        return ranking + (self.tokenizer.eos_token or "")


def lora_config(params: dict):
    from peft import LoraConfig

    return LoraConfig(
        r=int(params["lora_r"]),
        lora_alpha=int(params["lora_alpha"]),
        lora_dropout=float(params["lora_dropout"]),
        target_modules=params["lora_target_modules"],
        task_type="CAUSAL_LM",
    )


def training_args(params: dict, seed: int, device: str, output_dir: str) -> dict:
    """The trainer arguments SFT and GRPO share."""
    return {
        "output_dir": output_dir,
        "num_train_epochs": float(params["epochs"]),
        # max_steps (when set) caps training below the epochs (the CPU demo's budget).
        "max_steps": int(params["max_steps"] or -1),
        "per_device_train_batch_size": int(params["batch_size"]),
        "gradient_accumulation_steps": int(params["grad_accum"]),
        "learning_rate": float(params["lr"]),
        "lr_scheduler_type": "linear",
        "warmup_steps": int(params["warmup_steps"]),
        "optim": "adamw_torch",
        "use_cpu": device == "cpu",
        "bf16": bool(params["bf16"]) and device == "cuda",
        "gradient_checkpointing": bool(params["gradient_checkpointing"]),
        "seed": seed,
        "data_seed": seed,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": [],
        # trl prints every log dict to stdout beside its bar; ProgressLog-style lines
        # (step, loss, reward, ETA) go to the job log instead.
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
    }


def constrained_decoding(tokenizer, model, m: int):
    """prefix_allowed_tokens_fn for constrained decoding and the prompt length it reads
    (set per batch), or None when impossible."""
    tok = tokenizer
    digit_ids = []
    for i in range(m):
        ids = tok(str(i), add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            log.warning("number %d is not one token: decoding is validated, not constrained", i)
            return None
        digit_ids.append(ids[0])
    comma = tok(",", add_special_tokens=False)["input_ids"]
    if len(comma) != 1:
        log.warning("',' is not one token: decoding is validated, not constrained")
        return None
    comma_id = comma[0]
    eos = model.generation_config.eos_token_id
    eos_ids = (
        list(eos)
        if isinstance(eos, list | tuple)
        else [eos if eos is not None else tok.eos_token_id]
    )
    digit_index = {t: i for i, t in enumerate(digit_ids)}
    prompt_length = {"n": 0}

    def allowed(batch_id, input_ids):
        written = input_ids[prompt_length["n"] :].tolist()
        used = {digit_index[t] for t in written if t in digit_index}
        if len(written) == 2 * m - 1:
            return eos_ids
        if len(written) % 2 == 1:
            return [comma_id]
        return [digit_ids[i] for i in range(m) if i not in used] or eos_ids

    return allowed, prompt_length


class _ArRouter(Router):
    trainer_name = ""
    defaults = {
        "base_model": "tiny-qwen2",
        "epochs": 3,
        "max_steps": None,
        "lr": 2e-5,
        "batch_size": 4,
        "grad_accum": 1,
        "warmup_steps": 0,
        "max_length": 2048,
        "lora_r": 16,
        "lora_alpha": 32,
        "lora_dropout": 0.05,
        "lora_target_modules": "all-linear",
        "decoding": "free",
        "on_malformed": "zero",
        "predict_batch_size": 16,
        "bf16": False,
        # trl turns it on by default; it trades compute for memory, which pays off only
        # for big models on a GPU.
        "gradient_checkpointing": False,
        "device": "auto",
        "threads": None,
        "chat_template": "auto",
    }
    model = None
    tokenizer = None
    fallback_ranking: list[int] | None = None
    base_source: str | None = None

    def __init__(self, params=None, seed=0):
        super().__init__(params, seed)
        self.malformed_total = 0
        self.last_malformed = 0
        self.malformed_rows: np.ndarray | None = None

    def quantize(self) -> list[str]:
        """int8 dynamic quantization of the LM, for CPU serving."""
        return quantize_int8(self, ("model",))

    # ---- checks and data ----------------------------------------------------
    def _check_data(self, data: RoutingData, where: str) -> None:
        if self.params["decoding"] not in ("constrained", "free"):
            raise InputError(
                f"decoding must be constrained or free, got {self.params['decoding']!r}",
                path=where,
                field="decoding",
            )
        if self.params["on_malformed"] not in ON_MALFORMED:
            raise InputError(
                f"on_malformed must be one of {', '.join(ON_MALFORMED)}, "
                f"got {self.params['on_malformed']!r}",
                path=where,
                field="on_malformed",
            )
        for key in ("epochs", "batch_size", "max_length", "lora_r"):
            if int(self.params[key]) < 1:
                raise InputError(f"{key} must be >= 1", path=where, field=key)

    def _prompt(self) -> RankingPrompt:
        return RankingPrompt(self.tokenizer, len(self.models), self.params)

    # ---- training -----------------------------------------------------------
    def _load_base(self, data: RoutingData):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.base_source = resolve_base_model(str(self.params["base_model"]), seed=self.seed)
        self.tokenizer = AutoTokenizer.from_pretrained(self.base_source)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        return AutoModelForCausalLM.from_pretrained(self.base_source)

    def _fit(self, data: RoutingData) -> dict:
        from datasets import Dataset

        seed_everything(self.seed, self.params.get("threads"))
        self.models, self.costs = list(data.models), np.asarray(data.costs, dtype=float)
        device = resolve_device(self.params["device"])
        model = self._load_base(data)
        rankings = [format_ranking(target_order(row, data.costs)) for row in data.targets]
        self.fallback_ranking = target_order(data.targets.mean(axis=0), data.costs)
        dataset = Dataset.from_list(self._rows(data.prompts, rankings))
        with tempfile.TemporaryDirectory(prefix="codyn-ar-") as tmp:
            trainer = self._trainer(model, dataset, device, tmp)
            trainer.add_callback(
                trainer_progress_callback(f"{self.type} {self.params['base_model']}", log)
            )
            result = trainer.train()
        self.model = trainer.model
        self.model.eval()
        history = [h for h in trainer.state.log_history if "loss" in h or "reward" in h]
        metrics = {
            "train_loss": float(result.training_loss),
            "steps": int(trainer.state.global_step),
            "device": device,
            "base_model_path": self.base_source,
        }
        rewards = [h["reward"] for h in history if "reward" in h]
        if rewards:
            metrics.update(
                reward_first=float(rewards[0]),
                reward_last=float(rewards[-1]),
                reward_mean=float(np.mean(rewards)),
            )
        return metrics

    def _rows(self, prompts: list[str], rankings: list[str]) -> list[dict]:
        raise NotImplementedError

    def _trainer(self, model, dataset, device: str, output_dir: str):
        raise NotImplementedError

    # ---- prediction ---------------------------------------------------------
    def generate(self, prompts: list[str]) -> list[str]:
        """The raw text the router writes for each prompt (greedy)."""
        import torch

        m = len(self.models)
        constrained = (
            constrained_decoding(self.tokenizer, self.model, m)
            if self.params["decoding"] == "constrained"
            else None
        )
        device = next(self.model.parameters()).device
        self.tokenizer.padding_side = "left"
        prompt = self._prompt()
        size = int(self.params["predict_batch_size"])
        texts = []
        for start in range(0, len(prompts), size):
            chunk = [prompt.render(prompt.fit(p)) for p in prompts[start : start + size]]
            enc = self.tokenizer(
                chunk, return_tensors="pt", padding=True, add_special_tokens=False
            ).to(device)
            kwargs = {}
            if constrained:
                fn, prompt_length = constrained
                prompt_length["n"] = enc["input_ids"].shape[1]
                kwargs["prefix_allowed_tokens_fn"] = fn
            with torch.no_grad():
                out = self.model.generate(
                    **enc,
                    max_new_tokens=2 * m,
                    do_sample=False,
                    pad_token_id=self.tokenizer.pad_token_id,
                    **kwargs,
                )
            new = out[:, enc["input_ids"].shape[1] :]
            texts += self.tokenizer.batch_decode(new, skip_special_tokens=True)
        return texts

    def rankings(self, prompts: list[str]) -> tuple[list[list[int]], np.ndarray]:
        """Rankings (the fallback for malformed outputs) and which outputs were malformed."""
        m = len(self.models)
        out, flags = [], []
        for text in self.generate(prompts):
            ranking = parse_ranking(text, m)
            flags.append(ranking is None)
            out.append(list(self.fallback_ranking) if ranking is None else ranking)
        return out, np.asarray(flags, dtype=bool)

    def _predict(self, prompts: list[str]) -> np.ndarray:
        m = len(self.models)
        rankings, flags = self.rankings(prompts)
        malformed = int(flags.sum())
        self.malformed_rows = flags
        self.last_malformed = malformed
        self.malformed_total += malformed
        if malformed:
            rule = (
                "they score 0 (on_malformed: zero)"
                if self.params["on_malformed"] == "zero"
                else "used the fallback ranking (on_malformed: fallback)"
            )
            log.warning(
                "%s: %d of %d outputs malformed; %s", self.type, malformed, len(prompts), rule
            )
        scores = np.zeros((len(prompts), m))
        for i, ranking in enumerate(rankings):
            scores[i, ranking] = m - np.arange(m)
        return scores

    # ---- persistence --------------------------------------------------------
    def _state(self) -> dict:
        return {
            "fallback_ranking": self.fallback_ranking,
            "base": BASE_DIR
            if self.params["base_model"] in TINY_NAMES
            else self.params["base_model"],
        }

    def _load_state(self, state: dict) -> None:
        if state.get("fallback_ranking") is None:
            raise InputError("fallback ranking missing", field="state.fallback_ranking")
        self.fallback_ranking = [int(i) for i in state["fallback_ranking"]]
        self.base_source = state.get("base")

    def _save_weights(self, directory: Path) -> None:
        self.model.save_pretrained(directory / ADAPTER_DIR)
        self.tokenizer.save_pretrained(directory / ADAPTER_DIR)
        if self.params["base_model"] in TINY_NAMES:
            # A locally built base travels with the checkpoint (it is tiny).
            shutil.rmtree(directory / BASE_DIR, ignore_errors=True)
            shutil.copytree(
                resolve_base_model(self.params["base_model"], seed=self.seed), directory / BASE_DIR
            )

    def _load_weights(self, directory: Path) -> None:
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        adapter = directory / ADAPTER_DIR
        if not (adapter / "adapter_config.json").is_file():
            raise InputError("LoRA adapter missing", path=adapter)
        base = (
            directory / BASE_DIR
            if (directory / BASE_DIR).is_dir()
            else resolve_base_model(str(self.params["base_model"]))
        )
        seed_everything(self.seed, self.params.get("threads"))
        self.tokenizer = AutoTokenizer.from_pretrained(adapter)
        model = AutoModelForCausalLM.from_pretrained(str(base))
        self.model = PeftModel.from_pretrained(model, str(adapter))
        self.model.to(resolve_device(self.params["device"]))
        self.model.eval()


class ArSftRouter(_ArRouter):
    type = "ar-sft"

    def _rows(self, prompts, rankings):
        return [
            {
                "prompt": self._prompt().prompt_field(p),
                "completion": self._prompt().completion_field(r),
            }
            for p, r in zip(prompts, rankings, strict=True)
        ]

    def _trainer(self, model, dataset, device, output_dir):
        from trl import SFTConfig, SFTTrainer

        args = SFTConfig(
            **training_args(self.params, self.seed, device, output_dir),
            max_length=int(self.params["max_length"]),
            completion_only_loss=True,
        )
        return SFTTrainer(
            model=model,
            args=args,
            train_dataset=dataset,
            processing_class=self.tokenizer,
            peft_config=lora_config(self.params),
        )


class ArGrpoRouter(_ArRouter):
    type = "ar-grpo"
    defaults = {
        **_ArRouter.defaults,
        "epochs": 2,
        "num_generations": 4,
        "reward": "algorithm1",
        "temperature": 1.0,
        "beta": 0.0,
    }

    def _check_data(self, data: RoutingData, where: str) -> None:
        super()._check_data(data, where)
        if self.params["reward"] not in REWARDS:
            raise InputError(
                f"unknown reward {self.params['reward']!r} (allowed: {sorted(REWARDS)})",
                path=where,
                field="reward",
            )
        g, b = int(self.params["num_generations"]), int(self.params["batch_size"])
        if g < 2 or b % g:
            raise InputError(
                f"batch_size {b} must be a multiple of num_generations {g} (>= 2)",
                path=where,
                field="num_generations",
            )

    def _rows(self, prompts, rankings):
        return [
            {"prompt": self._prompt().prompt_field(p), "target": r}
            for p, r in zip(prompts, rankings, strict=True)
        ]

    def _trainer(self, model, dataset, device, output_dir):
        from trl import GRPOConfig, GRPOTrainer

        m = len(self.models)
        args = GRPOConfig(
            **training_args(self.params, self.seed, device, output_dir),
            num_generations=int(self.params["num_generations"]),
            max_completion_length=2 * m + 1,
            temperature=float(self.params["temperature"]),
            beta=float(self.params["beta"]),
        )
        return GRPOTrainer(
            model=model,
            reward_funcs=[make_reward_function(self.params["reward"], m)],
            args=args,
            train_dataset=dataset,
            processing_class=self.tokenizer,
            peft_config=lora_config(self.params),
        )
