# Stage: data (see DESIGN.md section 3). Targets this stage adds to `rule all`.


def data_targets():
    return expand("data/tasks/{dataset}.jsonl", dataset=RUN_DATASETS)
