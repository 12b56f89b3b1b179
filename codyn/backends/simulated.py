"""An explicitly SYNTHETIC portfolio, for the offline demo and tests.

No model is asked. For each (model, task) a deterministic draw decides success with
probability ``sigmoid(k * (skill[kind] - difficulty))``:

- ``skill`` is the model's config entry per task kind (the default config keeps the
  paper's cost order without making any model best everywhere, so routing has room);
- ``difficulty`` mixes what a router can observe in the prompt (length, number of
  tests, structure of the expected code) with a hidden per-task component that it
  cannot, so even a perfect router of the observable part stays below the oracle.

Success returns the reference shaped like a chat reply (prose + fenced code);
failure returns a plausible wrong answer: the reference with an injected bug or cut
short, the wrong label, or a translation/refinement with edits that grow with the
skill gap. Token counts and latency follow text length and model size. Every reply
ends with "(simulated answer by <model>)" and its record has ``simulated: true``.

All draws come from sha256 of (seed, model, task id, purpose), never Python's hash().
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re

from codyn.backends.base import Backend, BackendError, Completion, check_messages

# Bump when the simulation changes, so cached simulated answers are recomputed.
SIM_VERSION = 1
CHARS_PER_TOKEN = 3.5
FENCE = {"python": "python", "java": "java", "csharp": "csharp"}
HIDDEN_WEIGHT = 0.45  # share of difficulty a router cannot see in the prompt
CONTROL_WORDS = re.compile(
    r"\b(if|elif|else|for|while|try|except|catch|switch|case|return|def|class|lambda|foreach|yield)\b"
)
# (pattern, replacement) bugs a model plausibly makes; one is applied at one place.
BUGS = (
    (re.compile(r"<="), "<"),
    (re.compile(r">="), ">"),
    (re.compile(r"(?<![<>=!])<(?![<=])"), "<="),
    (re.compile(r"(?<![<>=!-])>(?![>=])"), ">="),
    (re.compile(r"=="), "!="),
    (re.compile(r"!="), "=="),
    (re.compile(r"(?<![\w.])(\d+)(?![\w.])"), None),  # off by one
    (re.compile(r" \+ "), " - "),
    (re.compile(r" - "), " + "),
    (re.compile(r"\bTrue\b"), "False"),
    (re.compile(r"\bFalse\b"), "True"),
    (re.compile(r"\btrue\b"), "false"),
    (re.compile(r"\bfalse\b"), "true"),
    (re.compile(r" and "), " or "),
    (re.compile(r" or "), " and "),
    (re.compile(r"&&"), "||"),
    (re.compile(r"\|\|"), "&&"),
)
TOKEN = re.compile(r"[A-Za-z_]\w*|\d+|[^\sA-Za-z_\d]")
INTROS = {
    "generate": (
        "Here is a solution:",
        "The following program solves the task:",
        "Sure, here is the code:",
    ),
    "repair": ("Here is the fixed function:", "The bug is fixed in this version:", "Fixed code:"),
    "translate": ("Here is the C# translation:", "Translated code:", "The equivalent code is:"),
    "refine": ("Here is the refined code:", "Bug-free version:", "Refined version:"),
}
OUTROS = (
    "It handles the edge cases described in the task.",
    "Let me know if you need an explanation of any part.",
    "The approach runs in linear time.",
)


def unit(*parts) -> float:
    """A uniform number in [0, 1) from sha256 of the parts (stable across runs and machines)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def rng_for(*parts) -> random.Random:
    return random.Random(int(unit(*parts) * 2**53))


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _clip(x: float, lo: float = 0.0, hi: float = 1.0) -> float:
    return max(lo, min(hi, x))


def count_tests(tests: dict | None) -> int:
    if not tests:
        return 0
    if isinstance(tests.get("cases"), list):
        return len(tests["cases"])
    text = str(tests.get("test", ""))
    return text.count("assert")


def observable_difficulty(task: dict) -> float:
    """Difficulty in [0, 1] from what the prompt and task show: longer prompts, more
    tests and more branching/nested reference code are harder."""
    prompt = task.get("prompt") or ""
    length = _clip((math.log(len(prompt) + 1) - math.log(150)) / (math.log(6000) - math.log(150)))
    tests = min(count_tests(task.get("tests")), 20) / 20
    ref = task.get("reference") or ""
    control = len(CONTROL_WORDS.findall(ref))
    lines = [ln for ln in ref.splitlines() if ln.strip()]
    depth = max((len(ln) - len(ln.lstrip())) // 4 for ln in lines) if lines else 0
    structure = _clip(0.6 * min(control, 12) / 12 + 0.4 * min(depth, 5) / 5)
    return _clip(0.45 * length + 0.20 * tests + 0.35 * structure)


def difficulty(task: dict, seed: int) -> float:
    hidden = unit(seed, "difficulty", task.get("dataset", ""), task["id"])
    return (1 - HIDDEN_WEIGHT) * observable_difficulty(task) + HIDDEN_WEIGHT * hidden


def inject_bug(code: str, rng: random.Random) -> str:
    """The code with one plausible bug; cut short when no bug pattern applies."""
    sites = []
    for pattern, repl in BUGS:
        for m in pattern.finditer(code):
            sites.append((m, repl))
    if sites and rng.random() < 0.8:
        m, repl = sites[rng.randrange(len(sites))]
        new = str(int(m.group(1)) + 1) if repl is None else repl
        return code[: m.start()] + new + code[m.end() :]
    return truncate(code, rng)


def truncate(code: str, rng: random.Random) -> str:
    lines = code.splitlines()
    if len(lines) <= 1:
        return code[: max(1, int(len(code) * rng.uniform(0.3, 0.7)))]
    keep = max(1, int(len(lines) * rng.uniform(0.4, 0.75)))
    return "\n".join(lines[:keep])


def edit_tokens(code: str, fraction: float, rng: random.Random) -> str:
    """Rename, drop or repeat about ``fraction`` of the code's tokens."""
    matches = list(TOKEN.finditer(code))
    n = min(len(matches), math.ceil(fraction * len(matches))) if fraction > 0 else 0
    if n == 0:
        return code
    chosen = sorted(rng.sample(range(len(matches)), n), reverse=True)
    out = code
    for i in chosen:
        m = matches[i]
        tok = m.group(0)
        op = rng.random()
        if op < 0.4 and tok[0].isalpha():
            new = tok + rng.choice(("1", "_tmp", "Val", "2"))
        elif op < 0.75:
            new = ""
        else:
            new = tok + " " + tok
        out = out[: m.start()] + new + out[m.end() :]
    return out


def default_skill(size_b: float | None) -> float:
    """Skill for a kind the config leaves out: grows with the log of the size."""
    size = size_b or 10.0
    return _clip(0.30 + 0.065 * math.log2(max(size, 1.0) / 8.0), 0.05, 0.95)


class SimulatedBackend(Backend):
    kind = "simulated"
    simulated = True

    def __init__(self, model_name: str, model_cfg: dict, generation_cfg: dict, *, seed: int = 0):
        super().__init__(model_name, model_cfg, generation_cfg)
        self.seed = int(seed)
        self.k = float(generation_cfg.get("simulation_k", 6.0))
        self.size_b = float(model_cfg.get("size_b") or 10.0)
        self.skills = dict(model_cfg.get("skill") or {})

    @property
    def model_id(self) -> str:
        return self.model_cfg.get("model_id") or f"simulated:{self.model_name}"

    def skill(self, kind: str) -> float:
        return float(self.skills.get(kind, default_skill(self.model_cfg.get("size_b"))))

    def key_extra(self, task: dict | None) -> dict:
        extra = {"sim_version": SIM_VERSION, "seed": self.seed, "k": self.k, "size_b": self.size_b}
        extra["skill"] = dict(sorted(self.skills.items()))
        if task is not None:
            task_json = json.dumps(task, sort_keys=True, ensure_ascii=False)
            extra["task_sha256"] = hashlib.sha256(task_json.encode("utf-8")).hexdigest()
        return extra

    def success_probability(self, task: dict) -> float:
        return sigmoid(self.k * (self.skill(task["kind"]) - difficulty(task, self.seed)))

    def answer(self, task: dict) -> tuple[str, bool]:
        """The reply text for ``task`` and whether it is a success."""
        p = self.success_probability(task)
        draw = unit(self.seed, "success", self.model_name, task.get("dataset", ""), task["id"])
        ok = draw < p
        rng = rng_for(self.seed, "answer", self.model_name, task.get("dataset", ""), task["id"])
        kind = task["kind"]
        if kind == "classify":
            label = bool(task["label"]) if ok else not bool(task["label"])
            reason = (
                "the input reaches a sensitive call unchecked" if label else "inputs are validated"
            )
            return f"{'Yes' if label else 'No'}. {reason.capitalize()}.", ok
        ref = task.get("reference")
        if not ref:
            return "I am not able to solve this task.", False
        gap = self.skill(kind) - difficulty(task, self.seed)
        if kind in ("translate", "refine"):
            # Continuous metrics: even a success is rarely verbatim; misses drift further.
            fraction = 0.03 * (1 - p) if ok else _clip(0.08 + 0.5 * max(-gap, 0.0), 0.08, 0.6)
            code = edit_tokens(ref, fraction, rng)
        else:
            code = ref if ok else inject_bug(ref, rng)
        intro = rng.choice(INTROS.get(kind, INTROS["generate"]))
        outro = rng.choice(OUTROS)
        lang = FENCE.get(task.get("language", "python"), "")
        return f"{intro}\n\n```{lang}\n{code.rstrip()}\n```\n\n{outro}", ok

    def _free_reply(self, messages: list[dict]) -> str:
        digest = hashlib.sha256(
            json.dumps([self.seed, self.model_name, messages], sort_keys=True).encode("utf-8")
        ).hexdigest()
        return (
            f"[simulated answer by {self.model_name}] This reply is synthetic: no language model "
            f"was asked. Request digest {digest[:12]}."
        )

    def _latency(self, n_in: int, n_out: int, *parts) -> float:
        first_token = 0.15 + 0.001 * self.size_b + n_in * 2e-6 * self.size_b
        per_token = 0.004 + 0.00008 * self.size_b
        jitter = 0.85 + 0.3 * unit(self.seed, "latency", self.model_name, *parts)
        return round((first_token + n_out * per_token) * jitter, 4)

    def complete(self, messages: list[dict], params: dict, task: dict | None = None) -> Completion:
        check_messages(messages)
        if task is None:
            text = self._free_reply(messages)
            tid = "free"
        else:
            for field in ("id", "kind"):
                if field not in task:
                    raise BackendError(f"task has no {field!r}", kind="validation")
            text, _ = self.answer(task)
            text = f"{text}\n\n(simulated answer by {self.model_name})"
            tid = task["id"]
        finish = "stop"
        limit = int(params.get("max_tokens", 1 << 30) * CHARS_PER_TOKEN)
        if len(text) > limit:
            text, finish = text[:limit], "length"
        prompt_chars = sum(len(m["content"]) for m in messages)
        n_in = max(1, round(prompt_chars / CHARS_PER_TOKEN))
        n_out = max(1, round(len(text) / CHARS_PER_TOKEN))
        return Completion(
            text=text,
            input_tokens=n_in,
            output_tokens=n_out,
            latency_s=self._latency(n_in, n_out, tid),
            cost_usd=self.cost(n_in, n_out),
            model_id=self.model_id,
            finish_reason=finish,
        )
