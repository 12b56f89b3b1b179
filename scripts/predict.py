"""Snakemake entry point of rule predict_router: codyn.routers.pipeline.predict_datasets."""

from codyn.job import job
from codyn.routers.pipeline import predict_datasets

with job(snakemake) as log:  # noqa: F821
    smk = snakemake  # noqa: F821
    predict_datasets(
        smk.input.router,
        list(smk.input.targets),
        list(smk.output.predictions),
        threads=smk.threads,
    )
