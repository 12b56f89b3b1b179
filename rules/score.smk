# Stage: score (see DESIGN.md section 3). Targets this stage adds to `rule all`.


def score_targets():
    return []
