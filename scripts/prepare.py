"""Snakemake entry point of rule prepare: codyn.datasets.prepare_dataset."""

import json
from pathlib import Path

from codyn.datasets import prepare_dataset
from codyn.job import job

with job(snakemake) as log:  # noqa: F821
    smk = snakemake  # noqa: F821
    counts = prepare_dataset(
        smk.wildcards.dataset,
        dict(smk.params.dataset),
        Path(smk.input.manifest).parent,
        smk.output.tasks,
        int(smk.params.seed),
    )
    counts.pop("dropped_ids")
    print(json.dumps(counts, sort_keys=True), flush=True)
