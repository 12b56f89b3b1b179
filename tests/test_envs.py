"""envs/*.yaml (per-stage conda environments for `--sdm conda`) agree with pyproject.

pyproject.toml pins the working set that was resolved together (DESIGN.md
section 6); a stage environment that pins another version runs code nobody
tested. Checked for every env file, and every env a rule names must exist.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
ENVS = sorted((REPO / "envs").glob("*.yaml"))
# Conda packages that are tools, not Python dependencies of codyn.
CONDA_TOOLS = {"python", "pip", "util-linux", "bubblewrap", "git"}
# Where Snakemake writes an env file before `conda env create` (it copies it to
# <workdir>/.snakemake/conda/<hash>.yaml, and conda runs pip from there).
CONDA_BUILD_DIR = REPO / ".snakemake" / "conda"
# An extra made of other extras: codyn[serve,train,...].
SELF_EXTRA = re.compile(r"codyn\[([a-z,]+)\]")


def norm(name: str) -> str:
    """PEP 503 name: case and the - _ . separators do not matter."""
    return re.sub(r"[-_.]+", "-", name).lower()


def project_pins() -> dict[str, str]:
    """name -> version over the core dependencies and every extra (one version each)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        specs += [s for s in extra if not SELF_EXTRA.fullmatch(s)]
    pins = {}
    for spec in specs:
        match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s;]+)\s*", spec)
        assert match, f"pyproject dependency {spec!r} is not pinned with =="
        name, version = norm(match.group(1)), match.group(2)
        assert pins.setdefault(name, version) == version, (
            f"pyproject pins {name} twice: =={pins[name]} and =={version}"
        )
    return pins


def test_extra_all_is_every_extra_but_dev():
    """`make install` installs codyn[all,dev]: an extra left out of `all` is never tested."""
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert {"serve", "train", "aws", "slurm", "all", "dev"} <= set(extras)
    (spec,) = extras["all"]
    match = SELF_EXTRA.fullmatch(spec)
    assert match, f"extra all is {spec!r}, not codyn[...]"
    assert set(match.group(1).split(",")) == set(extras) - {"all", "dev"}
    assert "'.[all,dev]'" in (REPO / "Makefile").read_text()


def env_entries(path: Path) -> tuple[list[str], list[str]]:
    """(conda dependencies, pip dependencies) of one env file."""
    spec = yaml.safe_load(path.read_text())
    assert isinstance(spec, dict) and "dependencies" in spec, f"{path.name}: no dependencies"
    conda, pip = [], []
    for dep in spec["dependencies"]:
        if isinstance(dep, dict):
            pip += [str(p) for p in dep.get("pip", [])]
        else:
            conda.append(str(dep))
    return conda, pip


def test_there_are_stage_envs():
    names = {p.stem for p in ENVS}
    assert names, "envs/ holds no environment file"


@pytest.mark.parametrize("env", ENVS, ids=lambda p: p.name)
def test_env_pins_agree_with_pyproject(env):
    pins = project_pins()
    conda, pip = env_entries(env)
    for dep in pip:
        if dep.startswith("-e") or dep.startswith("."):
            continue  # codyn itself, checked below
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", dep.strip())
        assert match, f"{env.name}: pip entry {dep!r} is not pinned with =="
        name, version = norm(match.group(1)), match.group(2)
        assert name in pins, f"{env.name}: {name} is not a pinned dependency in pyproject.toml"
        assert version == pins[name], f"{env.name}: {name}=={version}, pyproject pins {pins[name]}"
    for dep in conda:
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(?:==?\s*([^\s=]+))?", dep.strip())
        assert match, f"{env.name}: conda entry {dep!r} not understood"
        name, version = norm(match.group(1)), match.group(2)
        if name == "python":
            requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
                "requires-python"
            ]
            low = re.search(r">=\s*(\d+\.\d+)", requires).group(1)
            assert version and tuple(map(int, version.split(".")[:2])) >= tuple(
                map(int, low.split("."))
            ), f"{env.name}: python {version} does not satisfy {requires}"
        elif name in pins:
            assert version == pins[name], (
                f"{env.name}: conda {name}={version}, pyproject pins {pins[name]}"
            )
        else:
            assert name in CONDA_TOOLS, (
                f"{env.name}: conda package {name} is neither a tool nor pinned in pyproject"
            )


@pytest.mark.parametrize("env", ENVS, ids=lambda p: p.name)
def test_env_installs_this_codyn(env):
    """The env installs codyn from this checkout, by a path that works where conda runs pip."""
    _, pip = env_entries(env)
    local = [dep for dep in pip if dep.startswith("-e") or dep.startswith(".")]
    assert local, f"{env.name} does not install codyn (scripts import it)"
    for dep in local:
        path = dep.removeprefix("-e").strip()
        resolved = (CONDA_BUILD_DIR / path).resolve()
        assert (resolved / "pyproject.toml").is_file(), (
            f"{env.name}: {dep!r} resolves to {resolved} from .snakemake/conda/, where "
            "Snakemake copies the env file and conda runs pip; the checkout is "
            f"{REPO} (use '-e ../..')"
        )


def test_every_rule_env_exists():
    referenced = set()
    for smk in (REPO / "rules").glob("*.smk"):
        referenced |= set(re.findall(r'conda:\s*\n\s*"([^"]+)"', smk.read_text()))
    assert referenced, "no rule names a conda env"
    for ref in sorted(referenced):
        assert (REPO / "rules" / ref).resolve().is_file(), (
            f"a rule names {ref}, which does not exist"
        )


def test_missing_module_messages_name_the_extra_that_installs_it():
    """codyn.extras tells a user which extra to install; each module it names must come
    with that extra's pins (checked on this venv, where every extra is installed)."""
    from importlib.metadata import packages_distributions, requires

    from codyn.extras import EXTRA_OF_MODULE, missing_extra_message

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    pinned = {
        extra: {norm(re.split(r"==", s)[0]) for s in specs if "==" in s}
        for extra, specs in extras.items()
    }
    provider = packages_distributions()
    for module, extra in EXTRA_OF_MODULE.items():
        dists = {norm(d) for d in provider.get(module, [])}
        assert dists, f"no installed distribution provides {module}"
        # pinned in the extra, or a requirement of a pin (botocore of boto3)
        brought = set(pinned[extra]) | {
            norm(re.split(r"[ ;<>=!~\[(]", req)[0])
            for dist in pinned[extra]
            for req in (requires(dist) or [])
            if "extra ==" not in req
        }
        assert dists & brought, f"{module} comes from {dists}, which [{extra}] does not install"
    message = missing_extra_message(ModuleNotFoundError(name="sentence_transformers.models"))
    assert "pip install 'codyn[serve]'" in message
    assert missing_extra_message(ModuleNotFoundError(name="nosuchmodule")) is None


def rule_scripts() -> dict[str, list[str]]:
    """env file -> the scripts of the rules that run in it (rules/*.smk)."""
    out: dict[str, list[str]] = {}
    for smk in sorted((REPO / "rules").glob("*.smk")):
        for block in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            env = re.search(r'conda:\s*\n\s*"([^"]+)"', block)
            script = re.search(r'script:\s*\n\s*"([^"]+)"', block)
            if env and script:
                env_path = (REPO / "rules" / env.group(1)).resolve()
                script_path = (REPO / "rules" / script.group(1)).resolve()
                out.setdefault(env_path.name, []).append(str(script_path))
    return out


@pytest.mark.parametrize("env", ENVS, ids=lambda p: p.name)
def test_env_imports_what_its_rules_scripts_import(env):
    """A stage env installs codyn's core plus its own pins, not every extra: each script its
    rules run must import with just those (tests/dependency_fence.py)."""
    scripts = rule_scripts().get(env.name)
    if not scripts:
        pytest.skip(f"no rule runs a script in {env.name}")
    core = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    _, pip = env_entries(env)
    dists = [s.split("==")[0] for s in core] + [d.split("==")[0] for d in pip if "==" in d]
    proc = subprocess.run(
        [sys.executable, str(REPO / "tests" / "dependency_fence.py"), *dists, "--", "scripts"]
        + scripts,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"{env.name}: {proc.stderr[-2000:]}"
