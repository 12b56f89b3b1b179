"""A plan before any paid call: tasks, scorability, calls, tokens and dollars per dataset.

``codyn plan --configfile config/paper.yaml`` prints, per dataset of ``run_datasets``:
the task count, whether every task can be scored and how (execution tests, CodeBLEU,
label), the calls each portfolio model gets, the estimated input and output tokens, the
estimated dollars (``price_in`` / ``price_out``, USD per million tokens), what the
response cache (:mod:`codyn.cache`) already holds, and the totals. The pipeline runs the
same check first (rule ``plan``, which every ``generate`` job depends on): a dataset with
a task that cannot be scored, or an estimate above ``budget_usd``, stops the run before
any model is asked.

Where the numbers come from, in order:

1. ``data/tasks/{dataset}.jsonl`` when prepared: exact tasks and prompts;
2. else the fetched raw files (``data/raw/{dataset}/MANIFEST.json``) or, for sources
   that are local (``mirror``, ``package``, ``made``, ``file``), the files themselves,
   prepared in memory: exact tasks;
3. else (``source: url`` not fetched yet, no network needed): the PINNED counts below
   (:data:`UNFETCHED`), the upstream record counts with the mean prompt length we
   measured on byte-identical local copies where we had them. Such rows say
   ``estimated from pinned counts (not fetched)``; their scorability follows from the
   config (e.g. RunBugRun without its tests file is not scorable).

Tokens. Input: the prompt counted with the model's tokenizer when ``models.<m>.tokenizer``
names one that loads offline (a local folder, or a hub id already in the local cache);
else ``len(prompt) / CHARS_PER_TOKEN`` (3.2: the Llama 3 tokenizer on code and English
prose is about 3.5-4 characters per token; the lower figure over-estimates tokens, so
dollars err high), plus :data:`CHAT_OVERHEAD_TOKENS` for the chat template. Output: two
figures, the expected one (:data:`OUTPUT_TOKENS_BY_KIND`, our per-kind estimate of a
Llama answer to the A.8 prompts, not measured here) and the bound ``generation.max_tokens``
(a model cannot write more). ``budget_usd`` is compared with the BOUND, so the run
refuses whenever it could cost more than the budget.

Dollars are counted for backends that are paid per token (bedrock, openai with prices);
simulated, replay, hf and import answers cost nothing here and say so.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from codyn import paths
from codyn.backends import make_backend
from codyn.cache import ResponseCache, cache_key, cache_path
from codyn.config import load_config
from codyn.errors import CodynError, ConfigError, InputError
from codyn.io import read_jsonl, write_json

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 3.2
CHAT_OVERHEAD_TOKENS = 12  # Llama 3 chat headers around one user turn, and the BOS
# Our estimate of a typical answer length (tokens) per task kind: code answers with a
# short explanation; the classification prompt asks for Yes/No but Llama models often
# justify. Not measured here: the bound (max_tokens) is what the budget uses.
OUTPUT_TOKENS_BY_KIND = {
    "generate": 450,
    "repair": 400,
    "classify": 80,
    "translate": 250,
    "refine": 250,
}
PAID_BACKENDS = ("bedrock", "openai")
EXECUTION_KINDS = ("generate", "repair")
CODEBLEU_KINDS = ("translate", "refine")

# (adapter, variant) -> (tasks, kind, mean prompt characters, where the numbers come from).
# Used only when a url dataset is not fetched yet. Prompt lengths were measured on the
# byte-identical copies in ../shared/datasets with the A.8 templates (codyn.prompts);
# APPS's test split was not available locally: its figure is MapCoder's APPS subset's.
UNFETCHED = {
    ("apps", "hf-test"): (
        5000,
        "generate",
        1739,
        "APPS test split: 5000 problems (codeparrot/apps test.jsonl); prompt length of the MapCoder APPS subset",
    ),
    ("apps", "mapcoder150"): (
        128,
        "generate",
        1739,
        "MapCoder selected150.jsonl: 128 distinct problems",
    ),
    ("runbugrun", "release"): (
        2054,
        "repair",
        418,
        "RunBugRun python_valid0: 2054 bugs (fewer after bugs without tests are dropped)",
    ),
    ("runbugrun", "assert-kth"): (
        2054,
        "repair",
        418,
        "RunBugRun python_valid0 (ASSERT-KTH): 2054 bugs",
    ),
    ("sven", "train+val"): (
        760,
        "classify",
        982,
        "SVEN Python pairs, train+val: 380 pairs -> 760 tasks",
    ),
    ("sven", "train"): (684, "classify", 982, "SVEN Python pairs, train: 342 pairs -> 684 tasks"),
    ("sven", "val"): (76, "classify", 982, "SVEN Python pairs, val: 38 pairs -> 76 tasks"),
    ("refinement", "test"): (5835, "refine", 289, "CodeXGLUE refinement small, test: 5835 pairs"),
    ("refinement", "test+valid"): (11670, "refine", 289, "CodeXGLUE refinement small, test+valid"),
    ("translation", "test"): (1000, "translate", 332, "CodeXGLUE Java->C#, test: 1000 pairs"),
    ("translation", "test+valid"): (
        1499,
        "translate",
        332,
        "CodeXGLUE Java->C#, test+valid: 1499 pairs",
    ),
    ("bigcodebench", ""): (1140, "generate", 1222, "BigCodeBench v0.1: 1140 tasks"),
}


@dataclass
class ModelPlan:
    model: str
    backend: str
    calls: int
    cached: int | None  # None: unknown (tasks not prepared yet, so no cache keys)
    input_tokens: float
    output_tokens: float  # expected
    output_tokens_max: float  # bound: max_tokens per call
    usd: float | None  # expected; None: no prices
    usd_max: float | None  # bound
    paid: bool
    token_count: str  # "tokenizer <name>" or "chars/3.2"


@dataclass
class DatasetPlan:
    dataset: str
    adapter: str
    source: str
    tasks: int
    basis: (
        str  # "prepared tasks", "fetched raw files", "local source", "pinned counts (not fetched)"
    )
    scoring: dict[str, int]  # how -> number of tasks
    unscorable: int
    unscorable_reasons: dict[str, int]
    models: list[ModelPlan] = field(default_factory=list)
    note: str = ""
    exact: bool = True

    @property
    def scorable(self) -> bool:
        return self.unscorable == 0 and self.tasks > 0


def scoring_of(task: dict) -> tuple[str | None, str | None]:
    """(how the task is scored, None) or (None, why it cannot be)."""
    kind = task["kind"]
    if kind in EXECUTION_KINDS:
        if task.get("tests"):
            return "execution tests", None
        return None, str((task.get("meta") or {}).get("execution") or "task has no tests")
    if kind in CODEBLEU_KINDS:
        return ("CodeBLEU", None) if task.get("reference") else (None, "task has no reference")
    if kind == "classify":
        if isinstance(task.get("label"), bool):
            return "label (accuracy, A.7 penalty)", None
        return None, "task has no label"
    return None, f"unknown task kind {kind!r}"


def _local_tasks(name: str, cfg: dict, config: dict) -> tuple[list[dict] | None, str]:
    """The dataset's tasks from the cheapest place that has them, and which place."""
    from codyn.datasets import build_tasks, fetch_dataset

    where = paths.layout(config.get("experiment") or paths.DEFAULT_EXPERIMENT)
    tasks_path = Path(where.TASKS.format(dataset=name))
    if tasks_path.is_file():
        return list(read_jsonl(tasks_path)), "prepared tasks"
    raw = Path(where.RAW.format(dataset=name))
    seed = int(config["seed"])
    if (raw / "MANIFEST.json").is_file():
        return build_tasks(name, cfg, raw, seed).tasks, "fetched raw files"
    source = cfg.get("source", "url")
    if source == "url":
        return None, "pinned counts (not fetched)"
    with tempfile.TemporaryDirectory(prefix="codyn-plan-") as tmp:
        fetch_dataset(name, cfg, tmp, config.get("mirror_dir"))
        return build_tasks(name, cfg, tmp, seed).tasks, f"local source ({source})"


def _variant(cfg: dict) -> str:
    adapter = cfg["adapter"]
    if adapter in ("apps", "runbugrun"):
        from codyn.datasets import adapter_module

        return adapter_module(adapter).variant(cfg)
    if adapter in ("sven", "refinement", "translation"):
        split = str(cfg.get("split") or "test")
        return "train+val" if adapter == "sven" and split == "test" else split
    return ""


def _unfetched_scoring(cfg: dict, kind: str) -> tuple[str | None, str | None]:
    if cfg["adapter"] == "runbugrun":
        from codyn.datasets import runbugrun

        if not runbugrun.has_tests(cfg):
            return None, runbugrun.NO_TESTS
    task = {
        "kind": kind,
        "tests": {"type": "pinned"} if kind in EXECUTION_KINDS else None,
        "reference": "pinned",
        "label": True,
    }
    return scoring_of(task)


class _Tokens:
    """Prompt token counter: the model's tokenizer when it loads offline, else chars/ratio."""

    def __init__(self):
        self._cache: dict[str, object] = {}

    def counter(self, model_cfg: dict):
        name = model_cfg.get("tokenizer")
        if name:
            if name not in self._cache:
                try:
                    from transformers import AutoTokenizer

                    self._cache[name] = AutoTokenizer.from_pretrained(name, local_files_only=True)
                except Exception as exc:  # not available offline: say so, use the ratio
                    log.warning("tokenizer %s not available offline (%s): chars/token", name, exc)
                    self._cache[name] = None
            tok = self._cache[name]
            if tok is not None:
                return (
                    lambda text: len(tok(text, add_special_tokens=False)["input_ids"]),
                    f"tokenizer {name}",
                )
        return (lambda text: math.ceil(len(text) / CHARS_PER_TOKEN), f"chars/{CHARS_PER_TOKEN:g}")


def _model_config(config: dict, dataset: str, model: str) -> dict:
    from codyn.generate import model_config

    return model_config(config, dataset, model)


def _cached(config: dict, model_cfg: dict, model: str, tasks: list[dict], cache_dir) -> int | None:
    from codyn.generate import task_messages

    if model_cfg["backend"] in ("import",):
        return None
    try:
        backend = make_backend(model, model_cfg, config["generation"], seed=int(config["seed"]))
    except CodynError:
        return None
    try:
        path = cache_path(cache_dir, backend.kind, model)
        if not path.is_file():
            return 0
        answers, _ = ResponseCache(path).load()
        params = backend.params()
        hits = 0
        for task in tasks:
            try:
                extra = backend.key_extra(task)
            except CodynError:  # a replay file not fetched yet
                return None
            key = cache_key(backend.kind, backend.model_id, task_messages(task), params, extra)
            hits += key in answers
        return hits
    finally:
        backend.close()


def _usd(model_cfg: dict, tokens_in: float, tokens_out: float) -> float | None:
    p_in, p_out = model_cfg.get("price_in"), model_cfg.get("price_out")
    if p_in is None and p_out is None:
        return None
    return (tokens_in * float(p_in or 0) + tokens_out * float(p_out or 0)) / 1e6


def plan_dataset(config: dict, name: str, *, cache_dir="cache", tokens: _Tokens | None = None):
    cfg = config["datasets"][name]
    tokens = tokens or _Tokens()
    tasks, basis = _local_tasks(name, cfg, config)
    from codyn.generate import generated_models

    max_tokens = int(config["generation"]["max_tokens"])
    if tasks is not None:
        plan = _fetched_plan(name, cfg, tasks, basis)
    else:
        plan = _unfetched_plan(name, cfg, basis)
    for model in generated_models(config):
        plan.models.append(
            _model_plan(config, name, model, plan, tasks, tokens, cache_dir, max_tokens)
        )
    return plan


def _fetched_plan(name: str, cfg: dict, tasks: list[dict], basis: str) -> DatasetPlan:
    """The plan of a dataset whose tasks are on disk: each task's scoring counted."""
    scoring: dict[str, int] = {}
    reasons: dict[str, int] = {}
    for task in tasks:
        how, why = scoring_of(task)
        if how:
            scoring[how] = scoring.get(how, 0) + 1
        else:
            reasons[why] = reasons.get(why, 0) + 1
    return DatasetPlan(
        name,
        cfg["adapter"],
        cfg.get("source", "url"),
        len(tasks),
        basis,
        scoring,
        sum(reasons.values()),
        reasons,
    )


def _unfetched_plan(name: str, cfg: dict, basis: str) -> DatasetPlan:
    """The plan of a dataset not fetched yet, from the pinned counts of its adapter."""
    key = (cfg["adapter"], _variant(cfg))
    if key not in UNFETCHED:
        raise ConfigError(
            f"datasets.{name}",
            f"not fetched and no pinned counts for adapter {key[0]!r} variant {key[1]!r}: "
            f"run `snakemake data/raw/{name}/MANIFEST.json` first",
        )
    n, kind, chars, where = UNFETCHED[key]
    if cfg.get("limit"):
        n = min(n, int(cfg["limit"]))
    how, why = _unfetched_scoring(cfg, kind)
    return DatasetPlan(
        name,
        cfg["adapter"],
        cfg.get("source", "url"),
        n,
        basis,
        {how: n} if how else {},
        0 if how else n,
        {} if how else {why: n},
        note=where,
        exact=False,
    )


def _model_plan(
    config: dict,
    name: str,
    model: str,
    plan: DatasetPlan,
    tasks: list[dict] | None,
    tokens: _Tokens,
    cache_dir,
    max_tokens: int,
) -> ModelPlan:
    """One model's calls, tokens and dollars on one dataset (cached answers not paid)."""
    cfg = config["datasets"][name]
    model_cfg = _model_config(config, name, model)
    count, how_counted = tokens.counter(model_cfg)
    if tasks is not None:
        tin = sum(count(t["prompt"]) + CHAT_OVERHEAD_TOKENS for t in tasks)
        tout = sum(min(OUTPUT_TOKENS_BY_KIND.get(t["kind"], max_tokens), max_tokens) for t in tasks)
        cached = _cached(config, model_cfg, model, tasks, cache_dir)
    else:
        n, kind, chars, _ = UNFETCHED[(cfg["adapter"], _variant(cfg))]
        n = plan.tasks
        tin = n * (math.ceil(chars / CHARS_PER_TOKEN) + CHAT_OVERHEAD_TOKENS)
        how_counted = f"chars/{CHARS_PER_TOKEN:g} (pinned mean prompt length)"
        tout = n * min(OUTPUT_TOKENS_BY_KIND.get(kind, max_tokens), max_tokens)
        cached = None
    calls = plan.tasks
    tout_max = calls * max_tokens
    paid = model_cfg["backend"] in PAID_BACKENDS
    usd = _usd(model_cfg, tin, tout) if paid else None
    usd_max = _usd(model_cfg, tin, tout_max) if paid else None
    if paid and cached:
        share = 1 - cached / max(calls, 1)  # cached answers are not paid again
        usd = None if usd is None else usd * share
        usd_max = None if usd_max is None else usd_max * share
    return ModelPlan(
        model,
        model_cfg["backend"],
        calls,
        cached,
        tin,
        tout,
        tout_max,
        usd,
        usd_max,
        paid,
        how_counted,
    )


@dataclass
class Plan:
    datasets: list[DatasetPlan]
    budget_usd: float | None

    @property
    def usd(self) -> float:
        return sum(m.usd or 0.0 for d in self.datasets for m in d.models)

    @property
    def usd_max(self) -> float:
        return sum(m.usd_max or 0.0 for d in self.datasets for m in d.models)

    def problems(self) -> list[str]:
        """Why the run must not start (empty: it may)."""
        out = []
        for d in self.datasets:
            if d.tasks == 0:
                out.append(f"dataset {d.dataset!r} has no tasks")
            elif d.unscorable:
                reasons = "; ".join(f"{n} x {r}" for r, n in d.unscorable_reasons.items())
                out.append(
                    f"dataset {d.dataset!r}: {d.unscorable} of {d.tasks} tasks cannot be "
                    f"scored ({reasons}); answers to them would be paid for and thrown away"
                )
        if self.budget_usd is not None and self.usd_max > self.budget_usd:
            out.append(
                f"estimated cost up to ${self.usd_max:,.2f} (max_tokens bound; expected "
                f"${self.usd:,.2f}) exceeds budget_usd ${self.budget_usd:,.2f}"
            )
        return out

    def as_dict(self) -> dict:
        return {
            "datasets": [{**asdict(d), "scorable": d.scorable} for d in self.datasets],
            "usd": self.usd,
            "usd_max": self.usd_max,
            "budget_usd": self.budget_usd,
            "problems": self.problems(),
            "chars_per_token": CHARS_PER_TOKEN,
            "output_tokens_by_kind": OUTPUT_TOKENS_BY_KIND,
        }


def make_plan(config: dict, *, datasets: list[str] | None = None, cache_dir="cache") -> Plan:
    from codyn.generate import generated_datasets

    names = generated_datasets(config, datasets or config["run_datasets"])
    tokens = _Tokens()
    return Plan(
        [plan_dataset(config, n, cache_dir=cache_dir, tokens=tokens) for n in names],
        config.get("budget_usd"),
    )


def _num(x: float | None, money=False) -> str:
    if x is None:
        return "-"
    if money:
        return f"${x:,.2f}"
    return f"{x / 1e6:,.2f}M" if x >= 1e5 else f"{x:,.0f}"


def render(plan: Plan) -> str:
    lines = []
    for d in plan.datasets:
        how = ", ".join(f"{h} ({n})" for h, n in d.scoring.items()) or "-"
        status = "every task scorable" if d.scorable else "NOT SCORABLE"
        lines.append(
            f"{d.dataset} [{d.adapter}, source {d.source}]: {d.tasks} tasks "
            f"({d.basis}{'' if d.exact else ', ESTIMATE'}); {status}: {how}"
        )
        for reason, n in d.unscorable_reasons.items():
            lines.append(f"    not scorable: {n} tasks: {reason}")
        if d.note:
            lines.append(f"    pinned: {d.note}")
        lines.append(
            f"    {'model':<18} {'backend':<9} {'calls':>6} {'cached':>7} {'in tok':>8} "
            f"{'out tok':>8} {'out max':>8} {'est $':>10} {'max $':>10}  tokens by"
        )
        for m in d.models:
            cached = "?" if m.cached is None else str(m.cached)
            lines.append(
                f"    {m.model:<18} {m.backend:<9} {m.calls:>6} {cached:>7} "
                f"{_num(m.input_tokens):>8} {_num(m.output_tokens):>8} "
                f"{_num(m.output_tokens_max):>8} "
                f"{_num(m.usd, True) if m.paid else 'free':>10} "
                f"{_num(m.usd_max, True) if m.paid else 'free':>10}  {m.token_count}"
            )
        paid = [m for m in d.models if m.paid]
        lines.append(
            f"    dataset total: ${sum(m.usd or 0 for m in paid):,.2f} expected, "
            f"${sum(m.usd_max or 0 for m in paid):,.2f} at most"
        )
    calls = sum(m.calls - (m.cached or 0) for d in plan.datasets for m in d.models if m.paid)
    lines.append(
        f"TOTAL: {calls} paid calls to make; estimated ${plan.usd:,.2f} "
        f"(expected answer lengths), at most ${plan.usd_max:,.2f} (every answer max_tokens)"
    )
    if plan.budget_usd is not None:
        lines.append(f"budget_usd: ${plan.budget_usd:,.2f}")
    problems = plan.problems()
    for p in problems:
        lines.append(f"STOP: {p}")
    if not problems:
        lines.append("OK: the run may start")
    return "\n".join(lines) + "\n"


def check_plan(config: dict, out_json=None, out_txt=None, cache_dir="cache") -> Plan:
    """The pipeline's first check (rule plan): write the plan, raise when the run must stop."""
    plan = make_plan(config, cache_dir=cache_dir)
    if out_json:
        write_json(out_json, plan.as_dict())
    if out_txt:
        from codyn.io import write_text

        write_text(out_txt, render(plan))
    problems = plan.problems()
    if problems:
        raise InputError("run stopped before generation: " + " | ".join(problems), field="plan")
    return plan


def gate(config: dict, cache_dir="cache") -> Plan:
    """The first thing every run does (Snakemake's onstart): stop before any job when a
    dataset cannot be scored or the estimate exceeds ``budget_usd``; prints the reasons."""
    from codyn.generate import generated_datasets

    tokens, plans, unknown = _Tokens(), [], []
    for name in generated_datasets(config, config["run_datasets"]):
        try:
            plans.append(plan_dataset(config, name, cache_dir=cache_dir, tokens=tokens))
        except CodynError as exc:
            # A source that cannot be read yet: its fetch job, if this run needs it, fails
            # with its own error; nothing known here stops the run.
            unknown.append(name)
            log.warning("plan: %s not estimated before the run (%s)", name, exc)
    plan = Plan(plans, config.get("budget_usd"))
    problems = plan.problems()
    if problems:
        message = "run stopped before generation: " + " | ".join(problems)
        print(f"codyn plan: {message}", file=sys.stderr)
        raise InputError(message, field="plan")
    return plan


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="codyn plan", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--configfile",
        nargs="+",
        default=["config.yaml"],
        help="config files merged in order over config.yaml (as snakemake --configfile)",
    )
    p.add_argument("--datasets", nargs="+", help="only these datasets (default run_datasets)")
    p.add_argument("--cache-dir", default="cache")
    p.add_argument("--json", help="also write the plan as JSON here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    files = list(args.configfile)
    if Path("config.yaml").is_file() and "config.yaml" not in files:
        files.insert(0, "config.yaml")
    try:
        config = load_config(*files)
        # The experiment snakemake would write to with the same --configfile list.
        config["experiment"] = paths.experiment_from_configfiles(config, args.configfile)
        plan = make_plan(config, datasets=args.datasets, cache_dir=args.cache_dir)
    except CodynError as exc:
        print(f"codyn plan: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(render(plan))
    if args.json:
        write_json(args.json, plan.as_dict())
    return 1 if plan.problems() else 0
