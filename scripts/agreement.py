"""Snakemake entry point of rule agreement: codyn.agreement.write_agreement."""

from codyn.agreement import write_agreement
from codyn.job import job

with job(snakemake) as log:  # noqa: F821
    smk = snakemake  # noqa: F821
    systems = list(smk.params.systems)
    n = len(systems)
    datasets = {
        dataset: {
            "tasks": smk.input.tasks[i],
            "scores": dict(zip(systems, smk.input.scores[i * n : (i + 1) * n], strict=True)),
        }
        for i, dataset in enumerate(smk.params.datasets)
    }
    table = write_agreement(
        datasets,
        dict(smk.params.models),
        smk.output.csv,
        smk.output.md,
        smk.output.disagreements,
        smk.params.scoring,
        smk.params.label,
    )
    log.info("agreement:\n%s", table.to_string())
