# Stage: train (see DESIGN.md section 3). One job per (router, cost setting): fit on the
# train rows of every training dataset, then one prediction job per (router, setting)
# that writes a file per dataset over all its rows (train + test; generalisation sets
# too): loading a router once, not once per dataset, is most of a prediction's cost.
# Routers with `gpu: true` (cls, ar-*) train in rule train_gpu (resources gpu=1, which
# profiles/slurm maps to one A10G); they fall back to the CPU where no GPU is present.
TRAIN_ROUTERS = {name: config["routers"][name] for name in RUN_ROUTERS}
GPU_ROUTERS = [n for n, spec in TRAIN_ROUTERS.items() if spec.get("gpu")]
CPU_ROUTERS = [n for n in TRAIN_ROUTERS if n not in GPU_ROUTERS]


rule train_router:
    input:
        targets=expand(P.TARGETS, dataset=TRAIN_DATASETS),
    output:
        router=P.ROUTER_JSON,
    log:
        P.log("train_router/{router}/{setting}.log"),
    wildcard_constraints:
        router=name_pattern(CPU_ROUTERS),
        setting=name_pattern(SETTINGS),
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards: TRAIN_ROUTERS[wildcards.router].get("mem_mb", 2000),
        runtime=lambda wildcards: TRAIN_ROUTERS[wildcards.router].get("runtime", 30),
    params:
        router=lambda wildcards: TRAIN_ROUTERS[wildcards.router],
        seed=config["seed"],
        lambda2=lambda wildcards: config["cost_settings"][wildcards.setting],
        portfolio=PORTFOLIO,
        evaluation=config["evaluation"],
    message:
        "train router {wildcards.router} for cost {wildcards.setting}"
    script:
        "../scripts/train.py"


use rule train_router as train_gpu with:
    output:
        router=P.ROUTER_JSON,
    log:
        P.log("train_gpu/{router}/{setting}.log"),
    wildcard_constraints:
        router=name_pattern(GPU_ROUTERS),
        setting=name_pattern(SETTINGS),
    threads: 2
    resources:
        mem_mb=lambda wildcards: TRAIN_ROUTERS[wildcards.router].get("mem_mb", 8000),
        runtime=lambda wildcards: TRAIN_ROUTERS[wildcards.router].get("runtime", 240),
        gpu=1,
    message:
        "train router {wildcards.router} for cost {wildcards.setting} (GPU if present)"


rule predict_router:
    input:
        router=P.ROUTER_JSON,
        targets=expand(P.TARGETS, dataset=RUN_DATASETS),
    output:
        predictions=expand(P.PREDICTIONS, dataset=RUN_DATASETS, allow_missing=True),
    log:
        P.log("predict_router/{router}/{setting}.log"),
    wildcard_constraints:
        router=name_pattern(RUN_ROUTERS),
        setting=name_pattern(SETTINGS),
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards: TRAIN_ROUTERS[wildcards.router].get("mem_mb", 2000),
        runtime=30,
    message:
        "predictions of router {wildcards.router} ({wildcards.setting}) on every dataset"
    script:
        "../scripts/predict.py"
