"""Snakemake entry point of rule fetch: codyn.datasets.fetch_dataset."""

from pathlib import Path

from codyn.datasets import fetch_dataset
from codyn.job import job

with job(snakemake) as log:  # noqa: F821
    smk = snakemake  # noqa: F821
    manifest = fetch_dataset(
        smk.wildcards.dataset,
        dict(smk.params.dataset),
        Path(smk.output.manifest).parent,
        smk.params.mirror_dir,
    )
    log.info(
        "%s: fetched %d files (%s)",
        smk.wildcards.dataset,
        len(manifest["files"]),
        manifest["source"],
    )
