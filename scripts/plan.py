"""Snakemake entry point of rule plan: codyn.plan.check_plan (stops the run when it must)."""

from codyn.job import job
from codyn.plan import check_plan

with job(snakemake) as log:  # noqa: F821
    smk = snakemake  # noqa: F821
    plan = check_plan(dict(smk.config), smk.output.plan, smk.output.text, smk.params.cache_dir)
    log.info("plan: $%.2f expected, $%.2f at most", plan.usd, plan.usd_max)
