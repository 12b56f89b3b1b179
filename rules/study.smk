# Stage: study (see DESIGN.md section 3). Table 1 of the paper: SBS, Oracle, OG, WCR.
from codyn import paths as codyn_paths

ORACLE_GAP_MD = codyn_paths.ORACLE_GAP.removesuffix(".csv") + ".md"


# A lambda, not a def: `snakemake --lint` flags rules files that also define functions.
study_targets = lambda: [codyn_paths.ORACLE_GAP, ORACLE_GAP_MD]


rule oracle_gap:
    input:
        expand(codyn_paths.MATRIX, dataset=RUN_DATASETS),
    output:
        csv=report(
            codyn_paths.ORACLE_GAP,
            caption="../report/table1.rst",
            category="1. Tables",
            labels={"table": "Table 1 (oracle gap)"},
        ),
        md=ORACLE_GAP_MD,
    log:
        "logs/oracle_gap/oracle_gap.log",
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        datasets=RUN_DATASETS,
        label=config["label"],
    message:
        "Table 1 (oracle gap) over {params.datasets}"
    script:
        "../scripts/study.py"
