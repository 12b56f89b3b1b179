# Stage: train (see DESIGN.md section 3). Targets this stage adds to `rule all`.


def train_targets():
    return []
