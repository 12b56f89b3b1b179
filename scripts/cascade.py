"""Snakemake entry point of rule cascade: codyn.evaluation.cascade_report."""

from codyn.evaluation.cascade_report import write_cascade_report
from codyn.job import job

with job(snakemake) as log:  # noqa: F821
    smk = snakemake  # noqa: F821
    table = write_cascade_report(
        dict(zip(smk.params.datasets, smk.input, strict=True)),
        smk.output.csv,
        smk.output.md,
        smk.output.png,
        seed=int(smk.params.seed),
        test_size=float(smk.params.test_size),
        label=smk.params.label,
    )
    log.info("cascade:\n%s", table.to_string())
