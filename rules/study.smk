# Stage: study (see DESIGN.md section 3). Targets this stage adds to `rule all`.


def study_targets():
    return []
