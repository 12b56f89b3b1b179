# Stage: generate (see DESIGN.md section 3). Targets this stage adds to `rule all`.


def generate_targets():
    return []
