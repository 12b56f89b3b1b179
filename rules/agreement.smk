# Stage: agreement (beyond the paper). When answers are replayed from a publisher that
# also published its own pass/fail (MapCoder's is_solved), our verdicts (extraction +
# sandbox + hidden tests) are compared with theirs, and every disagreement gets a cause
# found by re-running evidence (codyn/agreement.py).
from codyn import agreement as codyn_agreement

AGREEMENT_SYSTEMS = codyn_agreement.replay_systems(config)
AGREEMENT_DATASETS = [
    d for d in RUN_DATASETS if config["datasets"][d]["adapter"] != "import"
]
AGREEMENT_MD = P.AGREEMENT.removesuffix(".csv") + ".md"
AGREEMENT_LIST = P.AGREEMENT.removesuffix(".csv") + "_disagreements.csv"


rule agreement:
    input:
        tasks=expand(P.TASKS, dataset=AGREEMENT_DATASETS),
        scores=expand(P.SCORES, dataset=AGREEMENT_DATASETS, model=AGREEMENT_SYSTEMS),
        replay=[
            codyn_generate.replay_inputs(config, m, d)
            for d in AGREEMENT_DATASETS
            for m in AGREEMENT_SYSTEMS
        ],
    output:
        csv=report(
            P.AGREEMENT,
            caption="../report/agreement.rst",
            category="1. Tables",
            labels={"table": "Agreement with the publisher"},
        ),
        md=AGREEMENT_MD,
        disagreements=AGREEMENT_LIST,
    log:
        P.log("agreement/agreement.log"),
    conda:
        "../envs/score.yaml"
    threads: 2
    resources:
        mem_mb=4096,
        runtime=30,
    params:
        datasets=AGREEMENT_DATASETS,
        systems=AGREEMENT_SYSTEMS,
        models={m: config["models"][m] for m in AGREEMENT_SYSTEMS},
        scoring=config["scoring"],
        label=config["label"],
    message:
        "our verdicts vs the publisher's on {params.systems}"
    script:
        "../scripts/agreement.py"
