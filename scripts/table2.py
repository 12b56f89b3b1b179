"""Snakemake entry point of rule table2: codyn.evaluation.tables.write_table2."""

from codyn.evaluation.evaluate import load_evals
from codyn.evaluation.tables import write_table2
from codyn.job import job

with job(snakemake) as log:  # noqa: F821
    smk = snakemake  # noqa: F821
    table = write_table2(
        load_evals(smk.input),
        dict(smk.params.settings),
        smk.output.csv,
        smk.output.md,
        smk.output.tex,
        routers=list(smk.params.routers),
    )
    log.info("Table 2:\n%s", table.to_string())
