"""Snakemake entry point of rule oracle_gap: codyn.study.write_oracle_gap."""

from codyn.job import job
from codyn.study import write_oracle_gap

with job(snakemake) as log:  # noqa: F821
    smk = snakemake  # noqa: F821
    paths = dict(zip(smk.params.datasets, smk.input, strict=True))
    table = write_oracle_gap(paths, smk.output.csv, smk.output.md, label=smk.params.label)
    log.info("Table 1:\n%s", table.to_string())
