"""Snakemake entry point of rule import_matrix: codyn.importers.import_matrix."""

from codyn.importers import import_matrix
from codyn.job import job

with job(snakemake) as log:  # noqa: F821
    smk = snakemake  # noqa: F821
    matrix = import_matrix(
        dict(smk.params.spec),
        dataset=smk.wildcards.dataset,
        models=list(smk.params.models),
        costs=dict(smk.params.costs),
        mirror_dir=smk.params.mirror_dir,
    )
    matrix.save(smk.output[0])
    log.info(
        "%s: %d tasks x %d models imported",
        smk.wildcards.dataset,
        len(matrix.frame),
        len(matrix.models),
    )
