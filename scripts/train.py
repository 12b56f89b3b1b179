"""Snakemake entry point of rules train_router and train_gpu: codyn.routers.pipeline.train_router."""

from codyn.job import job
from codyn.routers.pipeline import train_router

with job(snakemake) as log:  # noqa: F821
    smk = snakemake  # noqa: F821
    train_router(
        list(smk.input.targets),
        smk.wildcards.setting,
        dict(smk.params.router),
        out_dir=smk.output.router.rsplit("/", 1)[0],
        seed=int(smk.params.seed),
        portfolio=list(smk.params.portfolio),
        lambda2=float(smk.params.lambda2),
        threads=smk.threads,
        evaluation=dict(smk.params.evaluation),
    )
