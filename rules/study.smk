# Stage: study (see DESIGN.md section 3). Table 1 of the paper: SBS, Oracle, OG, WCR.

ORACLE_GAP_MD = P.ORACLE_GAP.removesuffix(".csv") + ".md"


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


# The verified cascade (beyond the paper): on datasets whose answers were scored with
# visible-example verdicts (scoring.visible), chosen on train and evaluated on test per
# seed, beside the SBS and the oracle (codyn/evaluation/cascade_report.py).
CASCADE_MD = P.CASCADE.removesuffix(".csv") + ".md"
CASCADE_PNG = f"{P.FIGURES}/cascade.png"

# Table 2 and the figures show the cascade beside the routers when there is one.
CASCADE_TABLE = [P.CASCADE] if config["scoring"].get("visible") else []


rule cascade:
    input:
        expand(P.MATRIX, dataset=TRAIN_DATASETS),
    output:
        csv=report(
            P.CASCADE,
            caption="../report/cascade.rst",
            category="1. Tables",
            labels={"table": "Verified cascade"},
        ),
        md=CASCADE_MD,
        png=report(
            CASCADE_PNG,
            caption="../report/cascade.rst",
            category="2. Figures",
            labels={"figure": "Verified cascade"},
        ),
    log:
        P.log("cascade/cascade.log"),
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        datasets=TRAIN_DATASETS,
        seed=config["seed"],
        test_size=config["splits"]["test_size"],
        label=config["label"],
    message:
        "verified cascade (chosen on train) on {params.datasets}"
    script:
        "../scripts/cascade.py"
