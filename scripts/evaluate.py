"""Snakemake entry point of rule evaluate: codyn.evaluation.evaluate.run per dataset."""

from codyn.evaluation.evaluate import run
from codyn.job import job

with job(snakemake) as log:  # noqa: F821
    smk = snakemake  # noqa: F821
    ev = smk.params.evaluation
    for i, dataset in enumerate(smk.params.datasets):
        run(
            smk.output[i],
            matrix_path=smk.input.matrices[i],
            predictions_path=smk.input.predictions[i],
            split_path=smk.input.splits[i],
            dataset=dataset,
            router=smk.wildcards.router,
            router_type=smk.params.router_type,
            setting=smk.wildcards.setting,
            costs=dict(smk.params.costs),
            sweep_points=int(ev["sweep_points"]),
            cpt_levels=tuple(ev["cpt_levels"]),
            bootstrap_resamples=int(ev["bootstrap_resamples"]),
            bootstrap_seed=int(smk.params.seed),
        )
        log.info("evaluated %s", dataset)
