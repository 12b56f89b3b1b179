# Stage: evaluate (see DESIGN.md section 3; paper section 6, A.2-A.4). One record per
# (dataset, router, cost setting), then Table 2, the curve metrics, Figures 2-4, the
# deferral curves and, when config `generalisation` names datasets, the A.4 table and
# Figure 5. Every table and figure is marked for `snakemake --report` (captions in
# report/); whether answers were simulated is read from the matrices and printed in
# the tables and figure titles themselves.
import re

from codyn import config as codyn_config

EVAL_TABLES = P.TABLES
EVAL_FIGURES = P.FIGURES
GEN_DATASETS = list(config["generalisation"])
EVAL_COSTS = codyn_config.relative_costs(config)
EVAL_ROUTER_TYPES = {name: config["routers"][name]["type"] for name in RUN_ROUTERS}
TRAIN_EVALS = expand(
    P.EVAL, dataset=TRAIN_DATASETS, router=RUN_ROUTERS, setting=SETTINGS
)
GEN_EVALS = expand(P.EVAL, dataset=GEN_DATASETS, router=RUN_ROUTERS, setting=SETTINGS)
GEN_OUTPUTS = (
    [
        f"{EVAL_TABLES}/generalisation.csv",
        f"{EVAL_TABLES}/generalisation.md",
        f"{EVAL_FIGURES}/fig5_generalisation.png",
        f"{EVAL_FIGURES}/fig5_generalisation.pdf",
    ]
    if GEN_DATASETS
    else []
)
# What `rule all` asks of this stage, beside GEN_OUTPUTS (rules/common.smk, get_final_output).
EVAL_TABLE_FILES = ["table2.csv", "table2.md", "table2.tex", "curves.csv", "curves.md"]
EVAL_FIGURE_FILES = [
    f"{figure}.{ext}"
    for figure in ("fig2_cost_performance", "fig4_diversity", "deferral_curves")
    for ext in ("png", "pdf")
]


# One job per (router, setting) over every dataset: starting Python and loading the
# libraries is most of a job's cost, and the predictions come per (router, setting) too.
EVAL_DATASETS = list(dict.fromkeys(TRAIN_DATASETS + GEN_DATASETS))


rule evaluate:
    input:
        matrices=expand(P.MATRIX, dataset=EVAL_DATASETS),
        splits=expand(P.SPLIT, dataset=EVAL_DATASETS),
        predictions=expand(
            P.PREDICTIONS,
            dataset=EVAL_DATASETS,
            allow_missing=True,
        ),
    output:
        expand(P.EVAL, dataset=EVAL_DATASETS, allow_missing=True),
    log:
        P.log("evaluate/{router}/{setting}.log"),
    wildcard_constraints:
        router="|".join(map(re.escape, RUN_ROUTERS)) or "(?!)",
        setting="|".join(map(re.escape, SETTINGS)) or "(?!)",
    conda:
        "../envs/evaluate.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        datasets=EVAL_DATASETS,
        router_type=lambda wildcards: EVAL_ROUTER_TYPES[wildcards.router],
        costs=EVAL_COSTS,
        evaluation=config["evaluation"],
        seed=config["seed"],
    message:
        "evaluate router {wildcards.router} ({wildcards.setting}) on {params.datasets}"
    script:
        "../scripts/evaluate.py"


rule table2:
    input:
        evals=TRAIN_EVALS,
        cascade=CASCADE_TABLE,
    output:
        csv=report(
            f"{EVAL_TABLES}/table2.csv",
            caption="../report/table2.rst",
            category="1. Tables",
            labels={"table": "Table 2 (csv)"},
        ),
        md=report(
            f"{EVAL_TABLES}/table2.md",
            caption="../report/table2.rst",
            category="1. Tables",
            labels={"table": "Table 2 (markdown)"},
        ),
        tex=report(
            f"{EVAL_TABLES}/table2.tex",
            caption="../report/table2.rst",
            category="1. Tables",
            labels={"table": "Table 2 (LaTeX)"},
        ),
    log:
        P.log("table2/table2.log"),
    conda:
        "../envs/evaluate.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        settings=config["cost_settings"],
        routers=RUN_ROUTERS,
    message:
        "Table 2 over {params.routers} on the test splits"
    script:
        "../scripts/table2.py"


rule curves:
    input:
        TRAIN_EVALS,
    output:
        csv=report(
            f"{EVAL_TABLES}/curves.csv",
            caption="../report/curves.rst",
            category="1. Tables",
            labels={"table": "Curve metrics (csv)"},
        ),
        md=report(
            f"{EVAL_TABLES}/curves.md",
            caption="../report/curves.rst",
            category="1. Tables",
            labels={"table": "Curve metrics (markdown)"},
        ),
    log:
        P.log("curves/curves.log"),
    conda:
        "../envs/evaluate.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        target_share=config["evaluation"]["target_share"],
    message:
        "APGR, CPT, AIQ and the out-of-fold operating points per router and setting"
    script:
        "../scripts/curves.py"


rule figures:
    input:
        evals=TRAIN_EVALS,
        cascade=CASCADE_TABLE,
    output:
        fig2_png=report(
            f"{EVAL_FIGURES}/fig2_cost_performance.png",
            caption="../report/fig2.rst",
            category="2. Figures",
            labels={"figure": "Figures 2-3: cost-performance"},
        ),
        fig2_pdf=f"{EVAL_FIGURES}/fig2_cost_performance.pdf",
        fig4_png=report(
            f"{EVAL_FIGURES}/fig4_diversity.png",
            caption="../report/fig4.rst",
            category="2. Figures",
            labels={"figure": "Figure 4: diversity"},
        ),
        fig4_pdf=f"{EVAL_FIGURES}/fig4_diversity.pdf",
        deferral_png=report(
            f"{EVAL_FIGURES}/deferral_curves.png",
            caption="../report/deferral.rst",
            category="2. Figures",
            labels={"figure": "Deferral curves and Pareto frontier"},
        ),
        deferral_pdf=f"{EVAL_FIGURES}/deferral_curves.pdf",
    log:
        P.log("figures/figures.log"),
    conda:
        "../envs/evaluate.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        settings=config["cost_settings"],
        routers=RUN_ROUTERS,
    message:
        "Figures 2-4 and deferral curves"
    script:
        "../scripts/figures.py"


rule generalisation:
    input:
        GEN_EVALS,
    output:
        csv=report(
            f"{EVAL_TABLES}/generalisation.csv",
            caption="../report/generalisation.rst",
            category="1. Tables",
            labels={"table": "Generalisation (A.4)"},
        ),
        md=f"{EVAL_TABLES}/generalisation.md",
        png=report(
            f"{EVAL_FIGURES}/fig5_generalisation.png",
            caption="../report/fig5.rst",
            category="2. Figures",
            labels={"figure": "Figure 5: generalisation"},
        ),
        pdf=f"{EVAL_FIGURES}/fig5_generalisation.pdf",
    log:
        P.log("generalisation/generalisation.log"),
    conda:
        "../envs/evaluate.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        settings=config["cost_settings"],
        routers=RUN_ROUTERS,
    message:
        "generalisation of the trained routers to {GEN_DATASETS}"
    script:
        "../scripts/generalisation.py"
