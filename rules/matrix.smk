# Stage: matrix (see DESIGN.md section 3). One instance x model table per dataset:
# from the pipeline's tasks, scores and responses, or imported from a published table.
from codyn import importers
from codyn.config import answers_kind, is_simulated

IMPORT_DATASETS = [
    name for name, entry in config["datasets"].items() if entry["adapter"] == "import"
]
PIPELINE_DATASETS = [name for name in config["datasets"] if name not in IMPORT_DATASETS]
IMPORT_DATASET_RE = name_pattern(IMPORT_DATASETS)
PIPELINE_DATASET_RE = name_pattern(PIPELINE_DATASETS)
PORTFOLIO_COSTS = {model: config["models"][model]["cost"] for model in PORTFOLIO}


rule matrix:
    input:
        tasks=P.TASKS,
        scores=expand(P.SCORES, model=PORTFOLIO, allow_missing=True),
        responses=expand(P.RESPONSES, model=PORTFOLIO, allow_missing=True),
    output:
        P.MATRIX,
    log:
        P.log("matrix/{dataset}.log"),
    wildcard_constraints:
        dataset=PIPELINE_DATASET_RE,
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        models=PORTFOLIO,
        costs=PORTFOLIO_COSTS,
        simulated=is_simulated(config),
        answers=answers_kind(config),
    message:
        "score matrix of {wildcards.dataset} from tasks, scores and responses"
    script:
        "../scripts/matrix.py"


rule import_matrix:
    input:
        unpack(
            lambda wildcards: importers.import_files(
                config["datasets"][wildcards.dataset].get("import") or {},
                config.get("mirror_dir"),
            )
        ),
    output:
        P.MATRIX,
    log:
        P.log("import_matrix/{dataset}.log"),
    wildcard_constraints:
        dataset=IMPORT_DATASET_RE,
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        spec=lambda wildcards: config["datasets"][wildcards.dataset].get("import") or {},
        models=PORTFOLIO,
        costs=PORTFOLIO_COSTS,
        mirror_dir=config.get("mirror_dir"),
    message:
        "score matrix of {wildcards.dataset} imported from published results"
    script:
        "../scripts/import_matrix.py"
