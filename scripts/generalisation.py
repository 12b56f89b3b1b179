"""Snakemake entry point of rule generalisation: codyn.evaluation.figures.write_generalisation."""

from codyn.evaluation.evaluate import load_evals
from codyn.evaluation.figures import write_generalisation
from codyn.job import job

with job(snakemake) as log:  # noqa: F821
    smk = snakemake  # noqa: F821
    table = write_generalisation(
        load_evals(smk.input),
        dict(smk.params.settings),
        dict(smk.output.items()),
        routers=list(smk.params.routers),
    )
    log.info("generalisation:\n%s", table.to_string())
