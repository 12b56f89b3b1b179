"""Config validation: defaults filled, bad configs stop with the key and allowed values."""

from __future__ import annotations

import subprocess
import sys

import pytest

from codyn.config import load_config, train_datasets
from codyn.errors import ConfigError


def test_default_config_valid(repo_root):
    cfg = load_config(repo_root / "config.yaml")
    assert cfg["scoring"]["sven_penalty"] == "subtract"
    assert cfg["datasets"]["apps"]["limit"] is None
    assert train_datasets(cfg) == cfg["run_datasets"]


@pytest.mark.parametrize(
    ("override", "key", "allowed"),
    [
        ({"bogus": 1}, "bogus", "run_datasets"),
        ({"scoring": {"timeout_s": "ten"}}, "scoring.timeout_s", None),
        ({"run_datasets": ["nope"]}, "run_datasets[0]", "humaneval"),
        ({"portfolio": ["gpt35-analogical", "gpt-9"]}, "portfolio[1]", "gpt4-mapcoder"),
        ({"models": {"gpt35-analogical": {"cost": -1}}}, "models.gpt35-analogical.cost", None),
        ({"datasets": {"apps": {"adapter": "zzz"}}}, "datasets.apps.adapter", "bigcodebench"),
        ({"run_routers": ["nope"]}, "run_routers[0]", "knn"),
        ({"routers": {"knn": {"type": "knn", "pair": ["a", "b"]}}}, "routers.knn.pair", "k"),
        (
            {"routers": {"rorf-cheap-top": {"type": "rorf", "pair": ["a", "b"]}}},
            "routers.rorf-cheap-top.pair[0]",
            None,
        ),
        (
            {"routers": {"knn": {"type": "knn", "candidates": ["gpt35-analogical", "gpt-9"]}}},
            "routers.knn.candidates[1]",
            "gpt4-mapcoder",
        ),
        (
            {"routers": {"knn": {"type": "knn", "candidates": "cheap"}}},
            "routers.knn.candidates",
            None,
        ),
    ],
)
def test_bad_config_names_key_and_allowed(repo_root, override, key, allowed):
    with pytest.raises(ConfigError) as err:
        load_config(repo_root / "config.yaml", overrides=override)
    assert err.value.key == key
    if allowed:
        assert allowed in str(err.value)


def test_snakemake_stops_before_any_job(repo_root, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--config", "seed=notanint"],
        cwd=repo_root,
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert "seed" in proc.stderr + proc.stdout
    assert "Job stats" not in proc.stdout


def test_schema_is_parsed_once_and_handed_out_as_copies(repo_root):
    from codyn import config as codyn_config

    codyn_config._schema.cache_clear()
    codyn_config._validator.cache_clear()
    codyn_config._section_defaults.cache_clear()
    mine = codyn_config.load_schema()
    mine["properties"]["serve"]["properties"].clear()
    mine["properties"].pop("scoring")
    config = load_config(repo_root / "config.yaml")
    # A caller's edit of its copy reaches neither the next caller nor validation.
    assert "scoring" in codyn_config.load_schema()["properties"]
    assert config["serve"]["max_concurrency"] == 64
    load_config(repo_root / "config.yaml")
    assert codyn_config._schema.cache_info().misses == 1


def test_section_defaults_are_what_validation_fills(repo_root):
    from codyn.config import load_schema, read_yaml, section_defaults

    assert "serve" not in read_yaml(repo_root / "config.yaml")  # so validation fills it
    assert section_defaults("serve") == load_config(repo_root / "config.yaml")["serve"]
    assert section_defaults("scoring")["timeout_s"] == 10
    section_defaults("scoring")["timeout_s"] = -1
    assert section_defaults("scoring")["timeout_s"] == 10
    cascade = load_schema()["properties"]["serve"]["properties"]["cascade"]["properties"]
    assert section_defaults("serve.cascade") == {
        key: spec["default"] for key, spec in cascade.items() if "default" in spec
    }
    with pytest.raises(ConfigError, match="no such config section"):
        section_defaults("scorring")
    with pytest.raises(ConfigError, match="no such config section in serve"):
        section_defaults("serve.cascad")
