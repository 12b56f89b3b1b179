"""Figures: files are written (PNG + PDF), say SIMULATED, and labels do not overlap."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from test_evaluation import SETTINGS, _records  # noqa: E402

from codyn.evaluation import figures  # noqa: E402


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    return _records(tmp_path_factory.mktemp("figs"))


def _is_png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_paper_figures_written(tmp_path, records):
    outputs = {
        k: str(tmp_path / f"{k}.{k.rsplit('_', 1)[1]}")
        for k in ("fig2_png", "fig2_pdf", "fig4_png", "fig4_pdf", "deferral_png", "deferral_pdf")
    }
    figures.write_paper_figures(records, SETTINGS, outputs, routers=["cls-a", "random", "rorf-p"])
    for key, path in outputs.items():
        data = open(path, "rb").read()
        assert len(data) > 5000, key
        assert data[:4] == (b"%PDF" if key.endswith("pdf") else b"\x89PNG")
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_generalisation_outputs(tmp_path, records):
    outputs = {
        "csv": tmp_path / "g.csv",
        "md": tmp_path / "g.md",
        "png": tmp_path / "g.png",
        "pdf": tmp_path / "g.pdf",
    }
    table = figures.write_generalisation(records, SETTINGS, outputs)
    assert _is_png(outputs["png"]) and outputs["pdf"].stat().st_size > 1000
    assert {"single model", "reference", "router"} == set(table["kind"])


def test_titles_say_simulated(records):
    assert figures.title_banner(records) == "SIMULATED answers"
    assert figures.title_banner([{**records[0], "simulated": False}]) == "real answers"


def test_cost_performance_title_and_axes(tmp_path, records, monkeypatch):
    seen = {}
    real_save = figures.save

    def spy(fig, png, pdf=None):
        seen["title"] = fig._suptitle.get_text()
        seen["xlabels"] = [ax.get_xlabel() for ax in fig.axes if ax.get_visible()]
        seen["legend"] = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
        real_save(fig, png, pdf)

    monkeypatch.setattr(figures, "save", spy)
    figures.cost_performance(
        records, SETTINGS, tmp_path / "f.png", routers=["cls-a", "random", "rorf-p"]
    )
    assert "SIMULATED" in seen["title"]
    assert all("Eq. 2" in x for x in seen["xlabels"])
    assert {"cls-a", "random", "rorf-p", "setting2 (λ2=0.25)"} <= set(seen["legend"])
    assert any(t.startswith("single model") for t in seen["legend"])


def test_place_labels_avoids_overlap():
    fig, ax = plt.subplots(figsize=(4, 3))
    # a tight cluster of points that would collide with naive fixed offsets
    xs = [0.50, 0.51, 0.52, 0.50, 0.51, 0.2]
    ys = [0.50, 0.51, 0.50, 0.52, 0.49, 0.8]
    ax.scatter(xs, ys)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    anns = figures.place_labels(ax, xs, ys, [f"label {i}" for i in range(len(xs))])
    fig.canvas.draw()
    boxes = [a.get_window_extent() for a in anns]
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            assert figures._overlap(boxes[i], boxes[j]) == 0, (i, j)
    axes_box = ax.get_window_extent()
    assert all(b.x0 >= axes_box.x0 and b.x1 <= axes_box.x1 for b in boxes)
    plt.close(fig)


def test_pooled_shares_weight_by_rows():
    recs = [
        {
            "router": "r",
            "setting": "s",
            "models": ["a", "b"],
            "n_tasks": 10,
            "decision": {"shares": {"a": 1.0, "b": 0.0}},
        },
        {
            "router": "r",
            "setting": "s",
            "models": ["a", "b"],
            "n_tasks": 30,
            "decision": {"shares": {"a": 0.0, "b": 1.0}},
        },
    ]
    shares = figures.pooled_shares(recs)
    assert shares[("r", "s")] == pytest.approx({"a": 0.25, "b": 0.75})
    assert np.isclose(sum(shares[("r", "s")].values()), 1.0)
