"""Snakemake entry point of rules split and targets: codyn.splits."""

from codyn.job import job
from codyn.splits import write_split, write_targets

with job(snakemake) as log:  # noqa: F821
    smk = snakemake  # noqa: F821
    dataset = smk.wildcards.dataset
    if smk.rule == "split":
        split = write_split(
            smk.input[0],
            smk.output[0],
            dataset=dataset,
            seed=int(smk.params.seed),
            test_size=float(smk.params.test_size),
            held_out=bool(smk.params.held_out),
        )
        log.info("%s: %d train / %d test", dataset, split["n_train"], split["n_test"])
    else:
        frame, meta = write_targets(
            smk.input.matrix,
            smk.input.split,
            smk.output[0],
            settings=dict(smk.params.cost_settings),
            lambda1=float(smk.params.lambda1),
            normalisation=smk.params.normalisation,
            sven_penalty=smk.params.sven_penalty,
        )
        log.info("%s: targets for %d tasks, settings %s", dataset, len(frame), meta["settings"])
