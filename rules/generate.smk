# Stage: generate (see DESIGN.md section 3). First the plan (codyn/plan.py): every
# dataset's tasks scorable, and the estimated dollars within budget_usd, else the run
# stops before any job starts (onstart, below; rule plan writes the same plan to read).
# Not an input of generate: Snakemake does not re-check the params of jobs downstream of
# a job it reruns when that input is ancient(), so a re-plan would hide a model's changed
# params, and a plain input would make every answer stale after any re-plan. Then one job per (dataset, model): ask the model every task,
# through the response cache under cache/ (never a declared output, so a failed job
# keeps what it paid for; see codyn/cache.py).
from codyn import generate as codyn_generate
from codyn import plan as codyn_plan


rule plan:
    input:
        tasks=expand(
            P.TASKS,
            dataset=codyn_generate.generated_datasets(config, RUN_DATASETS),
        ),
    output:
        plan=P.PLAN,
        text=P.PLAN_TXT,
    log:
        P.log("plan/plan.log"),
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        # what the estimate depends on: a change re-plans
        budget_usd=config.get("budget_usd"),
        generation=config["generation"],
        models={m: config["models"][m] for m in PORTFOLIO},
        cache_dir="cache",
    message:
        "plan: tasks scorable, calls, tokens and dollars before any model is asked"
    script:
        "../scripts/plan.py"


rule generate:
    input:
        tasks=P.TASKS,
        # Published answers (backend: replay) are inputs: a new file regenerates.
        replay=lambda wildcards: codyn_generate.replay_inputs(
            config, wildcards.model, wildcards.dataset
        ),
    output:
        responses=P.RESPONSES,
    log:
        P.log("generate/{dataset}/{model}.log"),
    wildcard_constraints:
        dataset=codyn_generate.name_pattern(
            codyn_generate.generated_datasets(config, list(config["datasets"]))
        ),
        model=codyn_generate.name_pattern(codyn_generate.generated_models(config)),
    conda:
        "../envs/generate.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards: (
            16000 if codyn_generate.uses_gpu(config, wildcards.model) else 2000
        ),
        runtime=lambda wildcards: (
            720 if codyn_generate.uses_gpu(config, wildcards.model) else 240
        ),
        gpu=lambda wildcards: codyn_generate.uses_gpu(config, wildcards.model),
    params:
        model=lambda wildcards: codyn_generate.model_config(
            config, wildcards.dataset, wildcards.model
        ),
        generation=config["generation"],
        seed=config["seed"],
        cache_dir="cache",
    message:
        "answers of {wildcards.model} to the tasks of {wildcards.dataset}"
    script:
        "../scripts/generate.py"


onstart:
    if generated_responses():
        codyn_plan.gate(config)
