# Stage: report (see DESIGN.md section 3). Targets this stage adds to `rule all`.


def report_targets():
    return []
