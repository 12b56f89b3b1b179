"""Where each stage writes (DESIGN.md section 3). Rules and library share these.

Every experiment (config key ``experiment``) has its own tree, so the configs built in one
checkout keep their tables side by side and ``snakemake -n`` plans nothing for any of them
after its run:

    data/<experiment>/raw/{dataset}/      fetched upstream files + MANIFEST.json
    data/<experiment>/tasks/{dataset}.jsonl
    results/<experiment>/...              responses, scores, matrices, routers, tables, figures
    logs/<experiment>/<rule>/...          one log per job

Task files live per experiment too: two configs may prepare a dataset of the same name
differently (a ``limit``, another source), and a shared file would make each config's run
stale after the other's. The paid-for answers are shared: the response cache (``cache/``)
is keyed by content, not by experiment.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import yaml

DEFAULT_EXPERIMENT = "default"
# Inputs this repository ships (tracked, not generated): gzip copies of pinned upstream
# files with their SOURCE.md and LICENSE, e.g. the embedded default's published answers.
SHIPPED = "data/inputs"
EXPERIMENT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

TEMPLATES = {
    "RAW": "data/{experiment}/raw/{{dataset}}",
    "MANIFEST": "data/{experiment}/raw/{{dataset}}/MANIFEST.json",
    "TASKS": "data/{experiment}/tasks/{{dataset}}.jsonl",
    "RESULTS": "results/{experiment}",
    "RESPONSES": "results/{experiment}/responses/{{dataset}}/{{model}}.jsonl",
    "SCORES": "results/{experiment}/scores/{{dataset}}/{{model}}.csv",
    "MATRIX": "results/{experiment}/matrix/{{dataset}}.parquet",
    "TABLES": "results/{experiment}/tables",
    "FIGURES": "results/{experiment}/figures",
    "PLAN": "results/{experiment}/plan/plan.json",
    "PLAN_TXT": "results/{experiment}/plan/plan.txt",
    "ORACLE_GAP": "results/{experiment}/tables/oracle_gap.csv",
    "AGREEMENT": "results/{experiment}/tables/agreement.csv",
    "CASCADE": "results/{experiment}/tables/cascade.csv",
    "SPLIT": "results/{experiment}/splits/{{dataset}}/split.json",
    "TARGETS": "results/{experiment}/splits/{{dataset}}/targets.parquet",
    "ROUTER": "results/{experiment}/routers/{{router}}/{{setting}}",
    "ROUTER_JSON": "results/{experiment}/routers/{{router}}/{{setting}}/router.json",
    "PREDICTIONS": "results/{experiment}/predictions/{{router}}/{{setting}}/{{dataset}}.parquet",
    "EVAL": "results/{experiment}/eval/{{dataset}}/{{router}}/{{setting}}.json",
    "TABLE2": "results/{experiment}/tables/table2.csv",
    "REPORT": "results/{experiment}/report.html",
    "LOGS": "logs/{experiment}",
}


def check_experiment(name: str) -> str:
    if not isinstance(name, str) or not EXPERIMENT_PATTERN.match(name):
        raise ValueError(
            f"experiment name {name!r} must match {EXPERIMENT_PATTERN.pattern} "
            "(it becomes a folder name)"
        )
    return name


def layout(experiment: str = DEFAULT_EXPERIMENT) -> SimpleNamespace:
    """The path templates of one experiment (Snakemake wildcards such as ``{dataset}`` kept).

    ``layout(name).log("matrix/{dataset}.log")`` is that job's log file."""
    check_experiment(experiment)
    paths = {key: value.format(experiment=experiment) for key, value in TEMPLATES.items()}
    logs = paths["LOGS"]
    return SimpleNamespace(
        experiment=experiment, log=lambda relative: f"{logs}/{relative}", **paths
    )


def experiment_from_configfiles(config: dict, configfiles) -> str:
    """The experiment name. With ``--configfile`` files: the last file's own ``experiment``
    key, else its stem (``config/lcb-ladder5.yaml`` -> ``lcb-ladder5``), so a config written
    for one's own data never writes into another's folders. Without: the config's key, else
    ``default``. A small overlay meant to change an existing experiment names it; a file
    named ``config.yaml`` counts as the embedded default, not as an experiment."""
    # config.yaml is the embedded default everything merges over, not an experiment's file.
    files = [Path(f) for f in (configfiles or []) if Path(f).name != "config.yaml"]
    if files:
        last = files[-1]
        try:
            own = yaml.safe_load(last.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            own = None  # Snakemake itself reports an unreadable config file
        if isinstance(own, dict) and own.get("experiment"):
            return check_experiment(own["experiment"])
        stem = re.sub(r"[^A-Za-z0-9._-]", "-", last.name)
        stem = re.sub(r"\.ya?ml$", "", stem).lstrip("._-")
        if stem:
            return check_experiment(stem)
    return check_experiment(config.get("experiment") or DEFAULT_EXPERIMENT)
