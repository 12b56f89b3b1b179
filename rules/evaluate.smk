# Stage: evaluate (see DESIGN.md section 3). Targets this stage adds to `rule all`.


def evaluate_targets():
    return []
