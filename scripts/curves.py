"""Snakemake entry point of rule curves: codyn.evaluation.tables.write_curves."""

from codyn.evaluation.evaluate import load_evals
from codyn.evaluation.tables import write_curves
from codyn.job import job

with job(snakemake) as log:  # noqa: F821
    smk = snakemake  # noqa: F821
    table = write_curves(load_evals(smk.input), smk.output.csv, smk.output.md)
    log.info("curve metrics (target share %s):\n%s", smk.params.target_share, table.to_string())
