"""Where each stage writes (DESIGN.md section 3). Rules and library share these."""

from __future__ import annotations

RAW = "data/raw/{dataset}"
TASKS = "data/tasks/{dataset}.jsonl"
RESPONSES = "results/responses/{dataset}/{model}.jsonl"
SCORES = "results/scores/{dataset}/{model}.csv"
MATRIX = "results/matrix/{dataset}.parquet"
ORACLE_GAP = "results/tables/oracle_gap.csv"
SPLIT = "results/splits/{dataset}/split.json"
TARGETS = "results/splits/{dataset}/targets.parquet"
ROUTER = "results/routers/{router}/{setting}"
ROUTER_JSON = "results/routers/{router}/{setting}/router.json"
PREDICTIONS = "results/predictions/{router}/{setting}/{dataset}.parquet"
EVAL = "results/eval/{dataset}/{router}/{setting}.json"
TABLE2 = "results/tables/table2.csv"
LOG = "logs/{rule}/{name}.log"
