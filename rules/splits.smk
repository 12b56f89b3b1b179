# Stage: splits (see DESIGN.md section 3). A written-down seeded train/test split per
# dataset, then normalised scores and ranking-score targets for every cost setting.


rule split:
    input:
        P.MATRIX,
    output:
        P.SPLIT,
    log:
        P.log("split/{dataset}.log"),
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
        matrix=P.MATRIX,
        split=P.SPLIT,
    output:
        P.TARGETS,
    log:
        P.log("targets/{dataset}.log"),
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
