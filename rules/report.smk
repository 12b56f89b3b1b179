# Stage: report (see DESIGN.md section 3). `snakemake --report results/report.html`
# collects every output marked with report() (tables and figures of rules/evaluate.smk,
# captions in report/) under the overview below. The report is made by that command,
# not by a rule, so this stage adds no targets to `rule all`.


report: "../report/workflow.rst"
