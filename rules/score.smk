# Stage: score (see DESIGN.md section 3). Every response -> a number (paper 3.3):
# execution in the sandbox, CodeBLEU, or classification with the A.7 penalty.


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
