# Shared by every rules file: config validation (before any job runs), helper functions and
# the final targets (get_final_output, below).
import re
import sys
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")

sys.path.insert(0, str(Path(workflow.basedir)))

from codyn import config as codyn_config  # noqa: E402
from codyn import paths as codyn_paths  # noqa: E402
from codyn.errors import ConfigError  # noqa: E402

try:
    # Snakemake's own YAML reading keeps the last of a key given twice; ours refuses it.
    for configfile_path in workflow.configfiles:
        codyn_config.read_yaml(configfile_path)
    # Before validation: the name becomes folder names, and an overlay config that does
    # not name its experiment must not write into the embedded default's folders.
    config["experiment"] = codyn_paths.experiment_from_configfiles(
        config, workflow.overwrite_configfiles
    )
    codyn_config.validate_config(config)
except (ConfigError, ValueError) as exc:
    raise WorkflowError(f"invalid configuration: {exc}") from None
# validate_config checked the config against codyn/schemas/config.schema.yaml and filled its
# defaults: once, in one place (Snakemake's validate would fill them a second time).

# Every output path of this experiment (codyn/paths.py): results/<experiment>/..., etc.
P = codyn_paths.layout(config["experiment"])
RUN_DATASETS = list(config["run_datasets"])
PORTFOLIO = list(config["portfolio"])
TRAIN_DATASETS = codyn_config.train_datasets(config)
SETTINGS = list(config["cost_settings"])
RUN_ROUTERS = list(config["run_routers"])


# --- helper functions (the snakemake-workflow-template layout: functions live here, the
# stage files hold rules; `snakemake --lint` flags a file that mixes the two) ----------------

# Adapters whose tasks run code; the rest (CodeBLEU, classification) need one core.
# A constant, not workflow.cores: under a cluster executor there is no local core count,
# and Snakemake scales a local job down to --cores anyway.
EXECUTION_ADAPTERS = {
    "apps",
    "runbugrun",
    "bigcodebench",
    "humaneval",
    "mbpp",
    "made-repair",
}


def name_pattern(names):
    """A wildcard constraint matching exactly these names; "(?!)" never matches (none)."""
    return "|".join(re.escape(n) for n in names) or "(?!)"


def score_threads(wildcards):
    adapter = config["datasets"][wildcards.dataset]["adapter"]
    return 8 if adapter in EXECUTION_ADAPTERS else 1


def generated_responses():
    """Answers asked of live models (empty when every answer is replayed or imported)."""
    return expand(
        P.RESPONSES,
        dataset=codyn_generate.generated_datasets(config, RUN_DATASETS),
        model=codyn_generate.generated_models(config),
    )


def get_final_output():
    """What the default target (`all`, in the Snakefile) asks for, stage by stage. Called
    once every rules file is included, so the stage constants read here (AGREEMENT_MD,
    GEN_OUTPUTS, ...) can sit next to their rules. The report adds nothing: the command
    `snakemake --report` makes it, not a job."""
    responses = generated_responses()
    return [
        *expand(P.TASKS, dataset=[d for d in RUN_DATASETS if d in TASK_DATASETS]),
        *([P.PLAN, P.PLAN_TXT] if responses else []),
        *responses,
        *(
            P.SCORES.format(dataset=dataset, model=model)
            for dataset in RUN_DATASETS
            if config["datasets"][dataset]["adapter"] != "import"
            for model in PORTFOLIO
        ),
        *(
            [P.AGREEMENT, AGREEMENT_MD, AGREEMENT_LIST]
            if AGREEMENT_SYSTEMS and AGREEMENT_DATASETS
            else []
        ),
        *expand(P.MATRIX, dataset=RUN_DATASETS),
        P.ORACLE_GAP,
        ORACLE_GAP_MD,
        *(
            [P.CASCADE, CASCADE_MD, CASCADE_PNG]
            if config["scoring"].get("visible")
            else []
        ),
        *expand([P.SPLIT, P.TARGETS], dataset=RUN_DATASETS),
        *expand(P.ROUTER_JSON, router=RUN_ROUTERS, setting=SETTINGS),
        *expand(
            P.PREDICTIONS, router=RUN_ROUTERS, setting=SETTINGS, dataset=RUN_DATASETS
        ),
        *(f"{EVAL_TABLES}/{name}" for name in EVAL_TABLE_FILES),
        *(f"{EVAL_FIGURES}/{name}" for name in EVAL_FIGURE_FILES),
        *GEN_OUTPUTS,
    ]
