# codyn: dynamic LLM routing for coding tasks.
# Loads and validates the config, includes one rules file per stage, names the targets.


configfile: "config.yaml"


include: "rules/common.smk"


rule all:
    default_target: True
    input:
        all_targets(),
