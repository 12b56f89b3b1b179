"""Snakemake entry point of rule figures: codyn.evaluation.figures.write_paper_figures."""

from codyn.evaluation.cascade_report import read_cascade_table
from codyn.evaluation.evaluate import load_evals
from codyn.evaluation.figures import write_paper_figures
from codyn.job import job

with job(snakemake) as log:  # noqa: F821
    smk = snakemake  # noqa: F821
    cascade = read_cascade_table(smk.input.cascade[0]) if smk.input.cascade else None
    write_paper_figures(
        load_evals(smk.input.evals),
        dict(smk.params.settings),
        dict(smk.output.items()),
        routers=list(smk.params.routers),
        cascade=cascade,
    )
