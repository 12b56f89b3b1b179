"""Snakemake entry point of rule predict_router: codyn.routers.pipeline.predict_router."""

from codyn.job import job
from codyn.routers.pipeline import predict_router

with job(snakemake) as log:  # noqa: F821
    smk = snakemake  # noqa: F821
    predict_router(smk.input.router, smk.input.targets, smk.output.predictions, threads=smk.threads)
