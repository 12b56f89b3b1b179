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
        data_targets(),
        plan_targets(),
        generate_targets(),
        score_targets(),
        agreement_targets(),
        matrix_targets(),
        study_targets(),
        cascade_targets(),
        splits_targets(),
        train_targets(),
        evaluate_targets(),
        report_targets(),
