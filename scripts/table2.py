"""Snakemake entry point of rule table2: codyn.evaluation.tables.write_table2."""

from codyn.evaluation.cascade_report import read_cascade_table
from codyn.evaluation.evaluate import load_evals
from codyn.evaluation.tables import write_table2
from codyn.job import job

with job(snakemake) as log:  # noqa: F821
    smk = snakemake  # noqa: F821
    cascade = read_cascade_table(smk.input.cascade[0]) if smk.input.cascade else None
    table = write_table2(
        load_evals(smk.input.evals),
        dict(smk.params.settings),
        smk.output.csv,
        smk.output.md,
        smk.output.tex,
        routers=list(smk.params.routers),
        cascade=cascade,
    )
    log.info("Table 2:\n%s", table.to_string())
