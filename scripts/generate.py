"""Snakemake entry point of rule generate: codyn.generate.generate."""

from codyn.generate import generate
from codyn.job import job

with job(snakemake) as log:  # noqa: F821
    smk = snakemake  # noqa: F821
    summary = generate(
        smk.input.tasks,
        smk.output.responses,
        smk.wildcards.model,
        dict(smk.params.model),
        dict(smk.params.generation),
        int(smk.params.seed),
        cache_dir=smk.params.cache_dir,
    )
    log.info("%s on %s: %s", smk.wildcards.model, smk.wildcards.dataset, summary)
