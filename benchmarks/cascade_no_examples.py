"""The verified cascade's no-example rule (accept / escalate), measured to choose the default.

Per matrix (built by the pipeline with ``scoring.visible: true``) and seed (the config seed
and the next four): the cascade chosen on train with only one rule allowed, cross-fitted as
the cascade's own choice is (codyn.routers.cascade.compare_no_example_rules), its train
effectiveness and cost, and its test numbers; and, over every multi-stage chain of the
train Pareto front, escalate - accept on train. Writes ``<out>.md`` and ``<out>.json``.

    PYTHONPATH=. python benchmarks/cascade_no_examples.py \
        results/default/matrix/humaneval.parquet results/default/matrix/mbpp.parquet \
        results/replay-mirror/matrix/apps.parquet
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from codyn.io import write_json, write_text
from codyn.matrix import Matrix
from codyn.routers.cascade import NO_EXAMPLE_RULES, compare_no_example_rules

SEED = 20241201  # config.yaml's seed


def summarise(name: str, rows: list[dict]) -> str:
    acc = np.array([r["accept"]["train_cost"] for r in rows])
    esc = np.array([r["escalate"]["train_cost"] for r in rows])
    mean = {
        rule: {k: np.mean([r[rule][k] for r in rows]) for k in ("test_effectiveness", "test_cost")}
        for rule in NO_EXAMPLE_RULES
    }
    d_e = np.mean([r["escalate_minus_accept_train"]["effectiveness"] for r in rows])
    d_c = np.mean([r["escalate_minus_accept_train"]["cost"] for r in rows])
    return (
        f"| {name} | {len(rows)} | {int((acc < esc - 1e-9).sum())} / {int((abs(acc - esc) <= 1e-9).sum())}"
        f" / {int((acc > esc + 1e-9).sum())} | {acc.mean():.3f} | {esc.mean():.3f} | "
        f"{mean['accept']['test_effectiveness']:.3f} / {mean['accept']['test_cost']:.3f} | "
        f"{mean['escalate']['test_effectiveness']:.3f} / {mean['escalate']['test_cost']:.3f} | "
        f"{100 * d_e:+.1f} pt / {100 * d_c:+.1f} pt |"
    )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("matrices", nargs="+", help="matrix .parquet files with visible::<model>")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--out", default="results/benchmarks/cascade_no_examples")
    args = ap.parse_args(argv)
    lines = [
        "# Verified cascade: the no-example rule (chosen on train, cross-fitted)",
        "",
        "Parity choice with one rule allowed; train cost at which it reaches the out-of-fold "
        "SBS (accept cheaper / same / dearer); test E / cost of that choice (mean of seeds); "
        "escalate - accept on train over every multi-stage Pareto chain (E / relative cost).",
        "",
        "| matrix | seeds | accept cheaper / same / dearer | accept train cost | escalate "
        "train cost | accept test E / cost | escalate test E / cost | escalate - accept, chains |",
        "|---|---|---|---|---|---|---|---|",
    ]
    out = {}
    for path in args.matrices:
        name = f"{Path(path).parent.parent.name}/{Path(path).stem}"
        rows = compare_no_example_rules(
            Matrix.load(path), seeds=[SEED + i for i in range(args.seeds)]
        )
        out[name] = rows
        lines.append(summarise(name, rows))
    write_text(f"{args.out}.md", "\n".join(lines) + "\n")
    write_json(f"{args.out}.json", out)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
