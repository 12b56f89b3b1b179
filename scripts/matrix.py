"""Snakemake entry point of rule matrix: codyn.matrix.build_matrix."""

from codyn.job import job
from codyn.matrix import build_matrix

with job(snakemake) as log:  # noqa: F821
    smk = snakemake  # noqa: F821
    models = list(smk.params.models)
    matrix = build_matrix(
        smk.input.tasks,
        dict(zip(models, smk.input.scores, strict=True)),
        dict(zip(models, smk.input.responses, strict=True)),
        models,
        dict(smk.params.costs),
        bool(smk.params.simulated),
        smk.wildcards.dataset,
        answers=smk.params.answers,
    )
    matrix.save(smk.output[0])
    log.info("%s: %d tasks x %d models", smk.wildcards.dataset, len(matrix.frame), len(models))
