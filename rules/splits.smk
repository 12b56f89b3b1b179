# Stage: splits (see DESIGN.md section 3). A written-down seeded train/test split per
# dataset, then normalised scores and ranking-score targets for every cost setting.
from codyn import paths as codyn_paths

# A lambda, not a def: `snakemake --lint` flags rules files that also define functions.
splits_targets = lambda: expand(
    [codyn_paths.SPLIT, codyn_paths.TARGETS], dataset=RUN_DATASETS
)


rule split:
    input:
        codyn_paths.MATRIX,
    output:
        codyn_paths.SPLIT,
    log:
        "logs/split/{dataset}.log",
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        seed=config["seed"],
        test_size=config["splits"]["test_size"],
        held_out=lambda wildcards: wildcards.dataset in config["generalisation"],
    message:
        "seeded train/test split of {wildcards.dataset}"
    script:
        "../scripts/splits.py"


rule targets:
    input:
        matrix=codyn_paths.MATRIX,
        split=codyn_paths.SPLIT,
    output:
        codyn_paths.TARGETS,
    log:
        "logs/targets/{dataset}.log",
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    params:
        lambda1=config["splits"]["lambda1"],
        normalisation=config["splits"]["normalisation"],
        sven_penalty=config["splits"]["sven_penalty"],
        cost_settings=config["cost_settings"],
    message:
        "normalised scores and ranking scores of {wildcards.dataset}"
    script:
        "../scripts/splits.py"
