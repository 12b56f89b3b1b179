# Stage: splits (see DESIGN.md section 3). Targets this stage adds to `rule all`.


def splits_targets():
    return []
