"""Snakemake script for rule score: one call to codyn.scoring.score.score_responses."""

from codyn.job import job
from codyn.scoring.score import score_responses

with job(snakemake) as log:  # noqa: F821 - snakemake injects the object
    score_responses(
        snakemake.input.tasks,  # noqa: F821
        snakemake.input.responses,  # noqa: F821
        snakemake.output.scores,  # noqa: F821
        dict(snakemake.params.scoring),  # noqa: F821
        meta_path=snakemake.output.meta,  # noqa: F821
        threads=snakemake.threads,  # noqa: F821
    )
