"""Snakemake entry point of rule evaluate: codyn.evaluation.evaluate.run."""

from codyn.evaluation.evaluate import run
from codyn.job import job

with job(snakemake) as log:  # noqa: F821
    smk = snakemake  # noqa: F821
    ev = smk.params.evaluation
    run(
        smk.output[0],
        matrix_path=smk.input.matrix,
        predictions_path=smk.input.predictions,
        split_path=smk.input.split,
        dataset=smk.wildcards.dataset,
        router=smk.wildcards.router,
        router_type=smk.params.router_type,
        setting=smk.wildcards.setting,
        costs=dict(smk.params.costs),
        sweep_points=int(ev["sweep_points"]),
        target_share=float(ev["target_share"]),
        cpt_levels=tuple(ev["cpt_levels"]),
    )
