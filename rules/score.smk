# Stage: score (see DESIGN.md section 3). Every response -> a number (paper 3.3):
# execution in the sandbox, CodeBLEU, or classification with the A.7 penalty.

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

score_threads = lambda wildcards: (
    8 if config["datasets"][wildcards.dataset]["adapter"] in EXECUTION_ADAPTERS else 1
)

# Lambdas, not defs: `snakemake --lint` flags rules files that also define functions.
score_targets = lambda: [
    P.SCORES.format(dataset=dataset, model=model)
    for dataset in RUN_DATASETS
    if config["datasets"][dataset]["adapter"] != "import"
    for model in PORTFOLIO
]


rule score:
    input:
        tasks=P.TASKS,
        responses=P.RESPONSES,
    output:
        scores=P.SCORES,
        meta=P.SCORES.removesuffix(".csv") + ".meta.json",
    log:
        P.log("score/{dataset}/{model}.log"),
    conda:
        "../envs/score.yaml"
    threads: score_threads
    resources:
        mem_mb=4096,
        runtime=60,
    params:
        scoring=config["scoring"],
    message:
        "Scoring {wildcards.model} on {wildcards.dataset}"
    script:
        "../scripts/score.py"
