# Stage: study (see DESIGN.md section 3). Table 1 of the paper: SBS, Oracle, OG, WCR.

ORACLE_GAP_MD = P.ORACLE_GAP.removesuffix(".csv") + ".md"


# A lambda, not a def: `snakemake --lint` flags rules files that also define functions.
study_targets = lambda: [P.ORACLE_GAP, ORACLE_GAP_MD]


rule oracle_gap:
    input:
        expand(P.MATRIX, dataset=RUN_DATASETS),
    output:
        csv=report(
            P.ORACLE_GAP,
            caption="../report/table1.rst",
            category="1. Tables",
            labels={"table": "Table 1 (oracle gap)"},
        ),
        md=ORACLE_GAP_MD,
    log:
        P.log("oracle_gap/oracle_gap.log"),
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
