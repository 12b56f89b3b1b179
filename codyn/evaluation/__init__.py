"""Evaluation stage: metrics, cost-weight sweeps, per-router records, tables, figures.

- :mod:`codyn.evaluation.metrics`   effectiveness, Eq. 2 cost, diversity, PGR/APGR/CPT, AIQ
- :mod:`codyn.evaluation.sweep`     cost-weight sweep (its decisions: codyn.policy)
- :mod:`codyn.evaluation.calibration` cost weights chosen on out-of-fold predictions of train
- :mod:`codyn.evaluation.evaluate`  one (dataset, router, setting) -> evaluation JSON
- :mod:`codyn.evaluation.tables`    Table 2, generalisation and curve-metric tables
- :mod:`codyn.evaluation.figures`   Figures 2-5 and the deferral curves
"""
