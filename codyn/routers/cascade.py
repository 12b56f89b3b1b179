"""The verified cascade: ask a cheap system, keep its code when it passes the prompt's own
examples, escalate to the next system when it does not.

Why here and not a :class:`codyn.routers.base.Router`: a Router reads only the prompt and
picks one model before any call; a cascade decides *after* each call, on the verdict of
the answer's code on the visible examples (codyn.examples, codyn.scoring.visible). It has
no weights to fit, only a policy to choose (stages, accept rule, no-example rule), and that
policy is what ``codyn serve`` will run later; so the policy and its choice live among the
routers, and its evaluation over a score matrix is here too (it needs the matrix's
``visible::m`` columns, which predictive routers never see).

Policy (:class:`Cascade`)
    ``stages``: portfolio models in the order they are asked; ``"router"`` is a stage whose
    model is a predictive router's per-prompt pick (route-then-verify). ``accept_share``:
    accept an answer when the share of visible examples it passes is >= this (1.0: all
    pass). ``no_examples``: what to do when the prompt shows no example, ``accept`` the
    answer or ``escalate`` (default: the config schema's ``serve.cascade.no_examples``,
    ``accept``, chosen by measurement; README "Verified cascade"). The last stage's answer
    is returned whatever its verdict. A model asked twice (the router's pick equals an earlier stage) is not paid twice: its
    answer is the one already in hand.

Accounting (:func:`run_cascade`)
    Every stage called is paid: a prompt's relative cost is the sum of ``costs[m]`` over
    the models called, divided by the most expensive model's cost (so a one-stage cascade
    has exactly the paper's Eq. 2 cost and the SBS alone costs ``c_SBS / c_max``); its
    dollars are the sum of the calls' ``usd::m`` (NaN when any is unknown). Reported:
    effectiveness (mean hidden score of the returned answer), cost, dollars, calls per
    prompt, the share of prompts stopping at each stage, and each stage's accept precision
    (mean hidden score of the answers that stage accepted by the rule). When the matrix has
    ``unseen::m`` (hidden tests minus the visible ones, codyn.scoring.unseen), also the
    returned answers' mean on those (``unseen_effectiveness``, over the prompts not
    excluded as all-visible; ``n_unseen`` of them), for the cascade, the SBS and the oracle.

Choosing on train only (:func:`choose_cascade`)
    Candidates: every ordered chain of 1..``max_len`` distinct systems from the train
    Pareto front of (cost, mean score), asked in increasing cost (optionally with the router
    stage first), times the no-example rules and accept shares. Rule (``target="sbs"``):
    the cheapest candidate whose out-of-fold effectiveness reaches the out-of-fold SBS's
    minus ``tolerance``, where in each of ``k_folds`` folds inside train the SBS is picked
    on the other folds (as a deployer would) and scored on the held-out fold; the
    comparator thus carries no selection optimism. If none qualifies: the best
    out-of-fold effectiveness, cheapest among ties. Remaining ties go to the shorter chain,
    then the name. ``target="budget"``: the best
    effectiveness at a relative cost <= ``budget``. Test rows are never read.
    (A candidate has nothing fitted, so its out-of-fold effectiveness equals its train
    effectiveness; what cross-fitting removes is the optimism of the SBS it is held to, and
    router stages should be given out-of-fold picks on train rows.)

Five seeds (:func:`evaluate_seeds`)
    The project's seeded splits (codyn.splits.make_split) per seed: choose on train,
    evaluate on test, with the SBS (chosen on train) and the oracle on the same test rows
    and a paired bootstrap interval of the effectiveness difference cascade - SBS.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from codyn import policy
from codyn.errors import InputError
from codyn.evaluation import metrics
from codyn.matrix import Matrix
from codyn.splits import make_split

ROUTER_STAGE = "router"
NO_EXAMPLE_RULES = ("accept", "escalate")
TARGETS = ("sbs", "budget")


def _schema_default_no_examples() -> str:
    """``serve.cascade.no_examples``'s schema default: offline and served cascades share it
    (chosen by measurement, benchmarks/cascade_no_examples.py)."""
    from codyn.config import load_schema  # not at module level: codyn.config imports routers

    spec = load_schema()["properties"]["serve"]["properties"]["cascade"]["properties"]
    return spec["no_examples"]["default"]


DEFAULT_NO_EXAMPLES = _schema_default_no_examples()


@dataclass(frozen=True)
class Cascade:
    stages: tuple[str, ...]
    accept_share: float = 1.0
    no_examples: str = DEFAULT_NO_EXAMPLES

    def __post_init__(self):
        if not self.stages:
            raise InputError("a cascade needs at least one stage", field="stages")
        if self.no_examples not in NO_EXAMPLE_RULES:
            raise InputError(
                f"unknown no_examples rule {self.no_examples!r} (allowed: {NO_EXAMPLE_RULES})",
                field="no_examples",
            )
        if not 0.0 < float(self.accept_share) <= 1.0:
            raise InputError(
                f"accept_share must be in (0, 1], got {self.accept_share}", field="accept_share"
            )

    @property
    def name(self) -> str:
        rule = "" if self.accept_share == 1.0 else f", accept>={self.accept_share:g}"
        return f"{' > '.join(self.stages)} [no examples: {self.no_examples}{rule}]"

    def to_dict(self) -> dict:
        return {**asdict(self), "stages": list(self.stages), "name": self.name}


@dataclass
class Arrays:
    """The matrix slices a cascade reads, rows aligned with ``task_ids``."""

    task_ids: list[str]
    models: list[str]
    scores: np.ndarray  # n x M hidden scores
    visible: np.ndarray  # n x M visible shares (NaN: no examples)
    costs: np.ndarray  # M relative per-call costs
    usd: np.ndarray  # n x M dollars (NaN unknown)
    router: np.ndarray | None = None  # n model indices: a router's pick per row
    unseen: np.ndarray | None = None  # n x M hidden-minus-visible scores (NaN: excluded)

    @classmethod
    def from_matrix(cls, matrix: Matrix, router_picks=None) -> Arrays:
        visible = matrix.visible()
        if visible is None:
            raise InputError(
                "the matrix has no visible::<model> columns (score with scoring.visible: true)",
                field="visible::",
            )
        arrays = cls(
            [str(t) for t in matrix.task_ids],
            list(matrix.models),
            matrix.scores().to_numpy(dtype=float),
            visible.to_numpy(dtype=float),
            matrix.cost_vector(),
            matrix.usd().to_numpy(dtype=float),
        )
        unseen = matrix.unseen()
        if unseen is not None:
            arrays.unseen = unseen.to_numpy(dtype=float)
        if router_picks is not None:
            arrays.router = arrays.picks_index(router_picks)
        return arrays

    def picks_index(self, picks) -> np.ndarray:
        """A router's picks (dict task_id -> model, or model names in row order) as indices."""
        if isinstance(picks, dict):
            missing = [t for t in self.task_ids if t not in picks]
            if missing:
                raise InputError(f"router picks missing for {missing[:5]}", field="router_picks")
            picks = [picks[t] for t in self.task_ids]
        picks = list(picks)
        if len(picks) != len(self.task_ids):
            raise InputError(f"{len(picks)} router picks for {len(self.task_ids)} rows")
        unknown = sorted({p for p in picks if p not in self.models})
        if unknown:
            raise InputError(f"router picks name unknown models {unknown}", field="router_picks")
        return np.array([self.models.index(p) for p in picks], dtype=int)

    def rows(self, idx) -> Arrays:
        idx = np.asarray(idx, dtype=int)
        return Arrays(
            [self.task_ids[i] for i in idx],
            self.models,
            self.scores[idx],
            self.visible[idx],
            self.costs,
            self.usd[idx],
            None if self.router is None else self.router[idx],
            None if self.unseen is None else self.unseen[idx],
        )

    def unseen_mean(self, picks: np.ndarray) -> tuple[float, int]:
        """(mean hidden-minus-visible score of the picked models, rows not excluded)."""
        if self.unseen is None:
            return math.nan, 0
        values = self.unseen[np.arange(len(picks)), picks]
        kept = np.isfinite(values)
        return (float(values[kept].mean()) if kept.any() else math.nan), int(kept.sum())


def _stage_index(arrays: Arrays, cascade: Cascade) -> np.ndarray:
    """n x K model index of each stage for each row."""
    n = len(arrays.task_ids)
    cols = []
    for stage in cascade.stages:
        if stage == ROUTER_STAGE:
            if arrays.router is None:
                raise InputError("a 'router' stage needs router picks", field="stages")
            cols.append(arrays.router)
        elif stage in arrays.models:
            cols.append(np.full(n, arrays.models.index(stage), dtype=int))
        else:
            raise InputError(f"stage {stage!r} is not a portfolio model", field="stages")
    return np.stack(cols, axis=1) if n else np.zeros((0, len(cols)), dtype=int)


def run_cascade(arrays: Arrays, cascade: Cascade) -> tuple[pd.DataFrame, dict]:
    """(per-task frame, summary) of ``cascade`` on ``arrays`` (see module docstring)."""
    n, k = len(arrays.task_ids), len(cascade.stages)
    stage_model = _stage_index(arrays, cascade)
    rows = np.arange(n)
    stop = np.full(n, k - 1)
    reason = np.full(n, "last stage", dtype=object)
    decided = np.zeros(n, dtype=bool)
    for j in range(k - 1):
        v = arrays.visible[rows, stage_model[:, j]]
        no_ex = np.isnan(v)
        accept = np.where(no_ex, cascade.no_examples == "accept", v >= cascade.accept_share - 1e-12)
        new = accept & ~decided
        stop[new] = j
        reason[new & no_ex] = "no examples"
        reason[new & ~no_ex] = "examples passed"
        decided |= accept
    final = stage_model[rows, stop]
    called = np.zeros((n, len(arrays.models)), dtype=bool)
    for j in range(k):
        reached = stop >= j
        called[rows[reached], stage_model[reached, j]] = True
    cost_max = float(arrays.costs.max())
    cost_rel = (called * arrays.costs[None, :]).sum(axis=1) / cost_max
    usd_called = np.where(called, arrays.usd, 0.0)
    usd_known = ~(called & ~np.isfinite(arrays.usd)).any(axis=1)
    usd = np.where(usd_known, usd_called.sum(axis=1), np.nan)
    score = arrays.scores[rows, final]
    visible_final = arrays.visible[rows, final]
    per_task = pd.DataFrame(
        {
            "task_id": arrays.task_ids,
            "stop_stage": stop,
            "model": [arrays.models[m] for m in final],
            "reason": reason,
            "score": score,
            "visible": visible_final,
            "n_calls": called.sum(axis=1),
            "called": [";".join(arrays.models[m] for m in np.flatnonzero(c)) for c in called],
            "cost": cost_rel,
            "usd": usd,
        }
    )
    stops, precision, accepted = [], [], []
    for j in range(k):
        at = stop == j
        stops.append(float(at.mean()) if n else float("nan"))
        by_rule = at & (reason != "last stage")
        accepted.append(int(by_rule.sum()))
        precision.append(float(score[by_rule].mean()) if by_rule.any() else float("nan"))
    unseen_e, n_unseen = arrays.unseen_mean(final)
    summary = {
        "cascade": cascade.to_dict(),
        "n": n,
        "effectiveness": float(score.mean()) if n else float("nan"),
        "unseen_effectiveness": unseen_e,
        "n_unseen": n_unseen,
        "cost": float(cost_rel.mean()) if n else float("nan"),
        "usd_per_prompt": float(usd.mean()) if n and usd_known.all() else float("nan"),
        "usd_known": int(usd_known.sum()),
        "calls_per_prompt": float(called.sum(axis=1).mean()) if n else float("nan"),
        "call_share": dict(
            zip(
                arrays.models,
                (called.mean(axis=0) if n else np.zeros(len(arrays.models))).tolist(),
                strict=True,
            )
        ),
        "stop_share": stops,
        "accepted_by_rule": accepted,
        "accept_precision": precision,
        "no_example_share": float(np.isnan(arrays.visible).all(axis=1).mean())
        if n
        else float("nan"),
    }
    return per_task, summary


# ---------------------------------------------------------------- choosing on train


def pareto_systems(arrays: Arrays) -> list[str]:
    """Systems on the (cost, mean score) Pareto front of these rows, cheapest first."""
    eff = arrays.scores.mean(axis=0)
    keep = policy.pareto_frontier(arrays.costs, eff)
    return [arrays.models[i] for i in keep]


def candidate_cascades(
    arrays: Arrays,
    *,
    pool: list[str] | None = None,
    max_len: int = 3,
    no_example_rules=NO_EXAMPLE_RULES,
    accept_shares=(1.0,),
    router_first: bool = False,
) -> list[Cascade]:
    """Ordered chains of 1..max_len distinct systems of ``pool`` (default: the Pareto front
    of ``arrays``), asked in increasing cost; optionally with the router stage first."""
    pool = list(pool) if pool is not None else pareto_systems(arrays)
    order = sorted(pool, key=lambda m: (arrays.costs[arrays.models.index(m)], m))
    chains: list[tuple[str, ...]] = []
    for length in range(1, max_len + 1):
        chains += list(itertools.combinations(order, length))  # combinations keep cost order
    if router_first:
        chains += [(ROUTER_STAGE, *c) for c in chains if len(c) < max_len] + [(ROUTER_STAGE,)]
    out = []
    for chain in chains:
        if len(chain) == 1:  # one stage: rules do not matter, no duplicates
            out.append(Cascade(chain))
            continue
        for rule in no_example_rules:
            for share in accept_shares:
                out.append(Cascade(chain, float(share), rule))
    return out


def kfold_indices(n: int, k: int, seed: int) -> list[np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    return [np.sort(part) for part in np.array_split(order, max(2, min(k, n)))]


def _rank_cheapest(r: dict) -> tuple:
    """Cheapest first; ties to the more effective, then the shorter chain, then the name."""
    return (r["cost"], -r["effectiveness"], len(r["cascade"].stages), r["cascade"].name)


def _rank_best(r: dict) -> tuple:
    """Most effective first; ties to the cheaper, then the shorter chain, then the name."""
    return (-r["effectiveness"], r["cost"], len(r["cascade"].stages), r["cascade"].name)


def choose_cascade(
    arrays: Arrays,
    candidates: list[Cascade],
    *,
    target: str = "sbs",
    tolerance: float = 0.0,
    budget: float | None = None,
    k_folds: int = 5,
    seed: int = 0,
) -> tuple[Cascade, dict]:
    """Choose one of ``candidates`` on ``arrays`` (TRAIN rows only); see module docstring.

    Returns the choice and a record: every candidate's out-of-fold effectiveness and cost,
    the out-of-fold SBS, the rule and why this candidate won.
    """
    if target not in TARGETS:
        raise InputError(f"unknown target {target!r} (allowed: {TARGETS})", field="target")
    if target == "budget" and budget is None:
        raise InputError("target 'budget' needs a budget", field="budget")
    if not candidates:
        raise InputError("no candidate cascades", field="candidates")
    n = len(arrays.task_ids)
    folds = kfold_indices(n, k_folds, seed)
    sbs_oof = np.empty(n)
    for held in folds:
        fit = np.setdiff1d(np.arange(n), held)
        sbs = metrics.single_best(arrays.scores[fit], arrays.costs)
        sbs_oof[held] = arrays.scores[held, sbs]
    e_sbs = float(sbs_oof.mean())
    table = []
    for cand in candidates:
        per_task, summ = run_cascade(arrays, cand)
        table.append(
            {"cascade": cand, "effectiveness": summ["effectiveness"], "cost": summ["cost"]}
        )
    if target == "sbs":
        ok = [r for r in table if r["effectiveness"] >= e_sbs - tolerance - 1e-12]
        why = f"cheapest with out-of-fold effectiveness >= SBS {e_sbs:.4f} - {tolerance}"
        if ok:
            best = min(ok, key=_rank_cheapest)
        else:
            why = "none reaches the SBS: best effectiveness, cheapest among ties"
            best = min(table, key=_rank_best)
    else:
        ok = [r for r in table if r["cost"] <= budget + 1e-12]
        why = f"best effectiveness at cost <= {budget}"
        pool = ok or table
        if not ok:
            why = f"none within cost {budget}: the cheapest"
            best = min(pool, key=_rank_cheapest)
        else:
            best = min(pool, key=_rank_best)
    record = {
        "rule": why,
        "target": target,
        "tolerance": tolerance,
        "budget": budget,
        "k_folds": len(folds),
        "seed": seed,
        "n_train": n,
        "sbs_oof_effectiveness": e_sbs,
        "chosen": best["cascade"].to_dict(),
        "chosen_train_effectiveness": best["effectiveness"],
        "chosen_train_cost": best["cost"],
        "candidates": [
            {"name": r["cascade"].name, "effectiveness": r["effectiveness"], "cost": r["cost"]}
            for r in table
        ],
    }
    return best["cascade"], record


# ---------------------------------------------------------------- seeds


def paired_bootstrap(diff, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95):
    """(mean, lo, hi) of a per-row paired difference, percentile bootstrap."""
    d = np.asarray(diff, dtype=float)
    if d.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(n_boot, d.size))].mean(axis=1)
    alpha = (1 - level) / 2
    return float(d.mean()), float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def evaluate_split(
    arrays: Arrays,
    train_idx,
    test_idx,
    *,
    seed: int = 0,
    candidate_kwargs: dict | None = None,
    choose_kwargs: dict | None = None,
) -> tuple[dict, pd.DataFrame]:
    """Choose on ``train_idx`` rows, evaluate on ``test_idx`` rows."""
    train, test = arrays.rows(train_idx), arrays.rows(test_idx)
    candidates = candidate_cascades(train, **(candidate_kwargs or {}))
    chosen, record = choose_cascade(train, candidates, seed=seed, **(choose_kwargs or {}))
    per_task, summary = run_cascade(test, chosen)
    sbs = metrics.single_best(train.scores, train.costs)
    cost_max = float(arrays.costs.max())
    sbs_scores = test.scores[:, sbs]
    oracle = metrics.oracle_choice(test.scores, test.costs)
    mean_d, lo, hi = paired_bootstrap(per_task["score"].to_numpy() - sbs_scores, seed=seed)
    sbs_usd = test.usd[:, sbs]
    out = {
        "seed": seed,
        "n_train": len(train.task_ids),
        "n_test": len(test.task_ids),
        "choice": record,
        "test": summary,
        "sbs": {
            "model": arrays.models[sbs],
            "effectiveness": float(sbs_scores.mean()),
            "unseen_effectiveness": test.unseen_mean(np.full(len(test.task_ids), sbs))[0],
            "cost": float(arrays.costs[sbs] / cost_max),
            "usd_per_prompt": float(sbs_usd.mean()) if np.isfinite(sbs_usd).all() else math.nan,
        },
        "oracle": {
            "effectiveness": metrics.effectiveness(test.scores, oracle),
            "unseen_effectiveness": _unseen_oracle(test),
            "cost": metrics.choice_cost(oracle, test.costs),
        },
        "cascade_minus_sbs": {"mean": mean_d, "ci95": [lo, hi]},
        "cascade_minus_sbs_unseen": _unseen_difference(test, per_task, sbs, seed),
        "cost_over_sbs": summary["cost"] / float(arrays.costs[sbs] / cost_max),
        "usd_over_sbs": (
            summary["usd_per_prompt"] / float(sbs_usd.mean())
            if np.isfinite(sbs_usd).all() and sbs_usd.mean() > 0
            else math.nan
        ),
    }
    per_task = per_task.assign(seed=seed, sbs_score=sbs_scores)
    return out, per_task


def _unseen_difference(test: Arrays, per_task: pd.DataFrame, sbs: int, seed: int) -> dict:
    """Paired cascade - SBS on the hidden-minus-visible tests (rows not excluded)."""
    if test.unseen is None:
        return {"mean": math.nan, "ci95": [math.nan, math.nan]}
    final = np.array([test.models.index(m) for m in per_task["model"]], dtype=int)
    rows = np.arange(len(final))
    diff = test.unseen[rows, final] - test.unseen[:, sbs]
    mean_d, lo, hi = paired_bootstrap(diff[np.isfinite(diff)], seed=seed)
    return {"mean": mean_d, "ci95": [lo, hi]}


def _unseen_oracle(test: Arrays) -> float:
    """The oracle on the hidden-minus-visible tests: per prompt, the best system on them."""
    if test.unseen is None:
        return math.nan
    kept = np.isfinite(test.unseen).all(axis=1)
    return float(test.unseen[kept].max(axis=1).mean()) if kept.any() else math.nan


def evaluate_seeds(
    matrix: Matrix,
    *,
    seeds=(0, 1, 2, 3, 4),
    test_size: float = 0.25,
    dataset: str | None = None,
    router_picks=None,
    candidate_kwargs: dict | None = None,
    choose_kwargs: dict | None = None,
) -> tuple[list[dict], pd.DataFrame]:
    """The train-choose / test-evaluate loop over the project's seeded splits.

    ``router_picks``: None, or a function ``seed -> picks`` (dict task_id -> model, the
    router's out-of-fold picks on train rows and its test picks), for a ``router`` stage.
    Returns one record per seed and every test prompt's path (column ``seed``).
    """
    dataset = dataset or str(matrix.meta.get("dataset") or matrix.frame["dataset"].iloc[0])
    base = Arrays.from_matrix(matrix)
    records, frames = [], []
    for seed in seeds:
        split = make_split(base.task_ids, dataset=dataset, seed=int(seed), test_size=test_size)
        arrays = base
        if router_picks is not None:
            arrays = Arrays(**{**base.__dict__})
            arrays.router = base.picks_index(router_picks(seed))
        pos = {t: i for i, t in enumerate(arrays.task_ids)}
        record, per_task = evaluate_split(
            arrays,
            [pos[t] for t in split["train"]],
            [pos[t] for t in split["test"]],
            seed=int(seed),
            candidate_kwargs=candidate_kwargs,
            choose_kwargs=choose_kwargs,
        )
        record["split"] = {
            k: split[k] for k in ("dataset", "seed", "derived_seed", "n_train", "n_test")
        }
        records.append(record)
        frames.append(per_task)
    return records, pd.concat(frames, ignore_index=True)


def summarise_seeds(records: list[dict]) -> dict:
    """Mean and std over seeds of the headline numbers."""

    def ms(values):
        v = np.asarray(values, dtype=float)
        v = v[np.isfinite(v)]  # unseen is NaN without unseen::m columns
        if not v.size:
            return {"mean": math.nan, "std": math.nan}
        return {"mean": float(v.mean()), "std": float(v.std())}

    return {
        "seeds": len(records),
        "cascade_effectiveness": ms([r["test"]["effectiveness"] for r in records]),
        "cascade_unseen": ms([r["test"]["unseen_effectiveness"] for r in records]),
        "sbs_unseen": ms([r["sbs"]["unseen_effectiveness"] for r in records]),
        "oracle_unseen": ms([r["oracle"]["unseen_effectiveness"] for r in records]),
        "cascade_cost": ms([r["test"]["cost"] for r in records]),
        "cascade_usd": ms([r["test"]["usd_per_prompt"] for r in records]),
        "sbs_effectiveness": ms([r["sbs"]["effectiveness"] for r in records]),
        "sbs_cost": ms([r["sbs"]["cost"] for r in records]),
        "oracle_effectiveness": ms([r["oracle"]["effectiveness"] for r in records]),
        "cascade_minus_sbs": ms([r["cascade_minus_sbs"]["mean"] for r in records]),
        "cascade_minus_sbs_unseen": ms([r["cascade_minus_sbs_unseen"]["mean"] for r in records]),
        "cost_over_sbs": ms([r["cost_over_sbs"] for r in records]),
        "usd_over_sbs": ms([r["usd_over_sbs"] for r in records]),
        "chosen": [r["choice"]["chosen"]["name"] for r in records],
    }


def compare_no_example_rules(
    matrix: Matrix, *, seeds=(0, 1, 2, 3, 4), test_size: float = 0.25, dataset: str | None = None
) -> list[dict]:
    """Per seed and no-example rule: the cascade chosen on train with only that rule allowed
    (cross-fitted as :func:`choose_cascade` does), its train effectiveness and cost, and what
    it gives on test. Also, over every multi-stage chain of the train Pareto front, the mean
    change escalate - accept on train. Test rows never feed a choice: they are reported."""
    dataset = dataset or str(matrix.meta.get("dataset") or matrix.frame["dataset"].iloc[0])
    base = Arrays.from_matrix(matrix)
    pos = {t: i for i, t in enumerate(base.task_ids)}
    out = []
    for seed in seeds:
        split = make_split(base.task_ids, dataset=dataset, seed=int(seed), test_size=test_size)
        train = base.rows([pos[t] for t in split["train"]])
        test = base.rows([pos[t] for t in split["test"]])
        candidates = candidate_cascades(train)
        row = {"dataset": dataset, "seed": int(seed)}
        for rule in NO_EXAMPLE_RULES:
            allowed = [c for c in candidates if len(c.stages) == 1 or c.no_examples == rule]
            chosen, record = choose_cascade(train, allowed, seed=int(seed))
            _, on_test = run_cascade(test, chosen)
            row[rule] = {
                "chosen": chosen.name,
                "train_effectiveness": record["chosen_train_effectiveness"],
                "train_cost": record["chosen_train_cost"],
                "sbs_oof_effectiveness": record["sbs_oof_effectiveness"],
                "test_effectiveness": on_test["effectiveness"],
                "test_cost": on_test["cost"],
            }
        chains = [c for c in candidates if len(c.stages) > 1 and c.no_examples == "accept"]
        deltas = []
        for c in chains:
            _, acc = run_cascade(train, c)
            _, esc = run_cascade(train, Cascade(c.stages, c.accept_share, "escalate"))
            deltas.append((esc["effectiveness"] - acc["effectiveness"], esc["cost"] - acc["cost"]))
        d = np.asarray(deltas, dtype=float).reshape(-1, 2)
        row["chains"] = len(chains)
        row["escalate_minus_accept_train"] = {
            "effectiveness": float(d[:, 0].mean()) if len(d) else math.nan,
            "cost": float(d[:, 1].mean()) if len(d) else math.nan,
        }
        out.append(row)
    return out
