# Stage: matrix (see DESIGN.md section 3). Targets this stage adds to `rule all`.


def matrix_targets():
    return []
