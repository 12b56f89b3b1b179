"""One folder tree per experiment (codyn/paths.py): naming rules and the layout."""

from __future__ import annotations

import pytest

from codyn import paths


def test_layout_puts_every_output_under_the_experiment():
    p = paths.layout("lcb-ladder5")
    assert p.MATRIX == "results/lcb-ladder5/matrix/{dataset}.parquet"
    assert p.TASKS == "data/lcb-ladder5/tasks/{dataset}.jsonl"
    assert p.log("matrix/{dataset}.log") == "logs/lcb-ladder5/matrix/{dataset}.log"
    for key in paths.TEMPLATES:
        assert "lcb-ladder5" in getattr(p, key), key


def test_experiment_name_from_the_config_files(tmp_path):
    own = tmp_path / "mine.yaml"
    own.write_text("run_datasets: [x]\n")
    named = tmp_path / "overlay.yaml"
    named.write_text("experiment: default\nrouters: {knn: {k: 3}}\n")
    base = tmp_path / "config.yaml"
    base.write_text("experiment: ignored\n")
    assert paths.experiment_from_configfiles({}, []) == "default"
    assert paths.experiment_from_configfiles({"experiment": "x1"}, []) == "x1"
    # An unnamed config file is an experiment of its own; a named one joins that experiment.
    assert paths.experiment_from_configfiles({"experiment": "default"}, [own]) == "mine"
    assert paths.experiment_from_configfiles({}, [own, named]) == "default"
    # config.yaml (the embedded default) given explicitly is not an experiment name.
    assert paths.experiment_from_configfiles({}, [base]) == "default"
    odd = tmp_path / "my data (v2).yml"
    odd.write_text("{}\n")
    assert paths.experiment_from_configfiles({}, [odd]) == "my-data--v2-"


@pytest.mark.parametrize("name", ["", "../up", "a/b", ".hidden", "x y", 3])
def test_bad_experiment_names_are_refused(name):
    with pytest.raises(ValueError, match="experiment name"):
        paths.layout(name)
