# codyn: dynamic LLM routing for coding tasks.
# Loads and validates the config, includes one rules file per stage, names the targets.


configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/generate.smk"
include: "rules/score.smk"
include: "rules/agreement.smk"
include: "rules/matrix.smk"
include: "rules/study.smk"
include: "rules/splits.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"
include: "rules/benchmark.smk"


rule all:
    default_target: True
    input:
        get_final_output(),
