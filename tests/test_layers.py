"""Imports in codyn/ flow one way: base -> data -> routers -> evaluation -> serving.

Every ``import`` / ``from ... import`` in every module of codyn/ (module level, inside
functions and under ``if TYPE_CHECKING``) is read with :mod:`ast`; an import of a module
in a higher layer than the importer's fails. A module belongs to the layer of the longest
dotted prefix listed below (``codyn.routers.pipeline`` before ``codyn.routers``).

=====  ============  ====================================================================
layer  name          modules
=====  ============  ====================================================================
0      base          codyn (``__version__``), errors, paths, io, validate, records, job,
                     prompts (templates, the prompt header), ranking (the RS formula),
                     policy (the routing decision, fallback order, cost-weight range and
                     calibration, ``codyn-auto``), config, tiny_models, routers.params
                     (a table of parameter rules with no codyn imports; config checks
                     router entries with it)
1      data          datasets, backends, generate, cache, plan (what generation will
                     cost, before it runs), scoring, examples, matrix, importers, splits,
                     routing_data (the routers' input files)
2      routers       routers
3      evaluation    evaluation, routers.pipeline (the training job: fits a router and
                     calibrates it out-of-fold with evaluation.calibration),
                     routers.cascade (chooses and evaluates cascades over a score matrix
                     with evaluation.metrics), study, agreement, provenance
4      serving       serve (the codyn.serve package)
-      CLI           cli, route_cli, scoring.cli: may import any layer; nothing but
                     codyn.cli imports them (cli.py loads them by name)
=====  ============  ====================================================================

Not checked: ``importlib.import_module`` with a computed name (the router registry, the
subcommand table), and the implicit import of a package's ``__init__`` that importing one
of its modules runs (``codyn.routers.params`` runs ``codyn/routers/__init__.py``).
A new module must be given a layer here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "codyn"

BASE, DATA, ROUTERS, EVALUATION, SERVING = range(5)
LAYER_NAMES = ("base", "data", "routers", "evaluation", "serving")
LAYERS = {
    "codyn": BASE,
    "codyn.errors": BASE,
    "codyn.paths": BASE,
    "codyn.io": BASE,
    "codyn.validate": BASE,
    "codyn.records": BASE,
    "codyn.job": BASE,
    "codyn.prompts": BASE,
    "codyn.ranking": BASE,
    "codyn.policy": BASE,
    "codyn.config": BASE,
    "codyn.tiny_models": BASE,
    "codyn.routers.params": BASE,
    "codyn.datasets": DATA,
    "codyn.backends": DATA,
    "codyn.generate": DATA,
    "codyn.cache": DATA,
    "codyn.plan": DATA,
    "codyn.scoring": DATA,
    "codyn.examples": DATA,
    "codyn.matrix": DATA,
    "codyn.importers": DATA,
    "codyn.splits": DATA,
    "codyn.routing_data": DATA,
    "codyn.routers": ROUTERS,
    "codyn.evaluation": EVALUATION,
    "codyn.routers.pipeline": EVALUATION,
    "codyn.routers.cascade": EVALUATION,
    "codyn.study": EVALUATION,
    "codyn.agreement": EVALUATION,
    "codyn.provenance": EVALUATION,
    "codyn.serve": SERVING,
}
CLI = {"codyn.cli", "codyn.route_cli", "codyn.scoring.cli"}
CLI_IMPORTER = "codyn.cli"


def module_names(package: Path = PACKAGE) -> dict[str, Path]:
    """Dotted name -> file, for every .py file under ``package``."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports(path: Path, name: str, known: set[str]) -> list[tuple[str, int]]:
    """(imported codyn module, line) for every import in the file, at any depth."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                # ``from codyn.evaluation import metrics`` imports the module metrics;
                # ``from codyn.policy import choose`` imports codyn.policy.
                full = f"{base}.{alias.name}"
                out.append((full if full in known else base, node.lineno))
    return sorted({(m, line) for m, line in out if m == "codyn" or m.startswith("codyn.")})


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in LAYERS:
            return LAYERS[prefix]
    return None


def violations(package: Path = PACKAGE) -> list[str]:
    """One line per import against the layer order, naming file, line and both layers."""
    modules = module_names(package)
    known = set(modules)
    out = []
    for name, path in modules.items():
        where = path.relative_to(package.parent)
        for target, line in imports(path, name, known):
            if target in CLI and name != CLI_IMPORTER and target != name:
                out.append(f"{where}:{line}: {name} imports the CLI module {target}")
            if name in CLI or target in CLI:
                continue
            low, high = layer_of(name), layer_of(target)
            if low is not None and high is not None and high > low:
                out.append(
                    f"{where}:{line}: {name} ({LAYER_NAMES[low]}) imports {target} "
                    f"({LAYER_NAMES[high]}), a higher layer"
                )
    return out


def test_every_module_has_a_layer():
    missing = [m for m in module_names() if m not in CLI and layer_of(m) is None]
    assert not missing, f"give these modules a layer in tests/test_layers.py: {missing}"


def test_no_upward_imports():
    found = violations()
    assert not found, "imports against the layer order:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        # a function-level import of evaluation from a router
        (
            {
                "routers/__init__.py": "",
                "routers/x.py": "def f():\n    from codyn.evaluation import metrics\n",
                "evaluation/__init__.py": "",
                "evaluation/metrics.py": "",
            },
            ["codyn.routers.x (routers) imports codyn.evaluation.metrics (evaluation)"],
        ),
        # a relative import from the matrix layer up to the routers
        (
            {"importers.py": "from .routers.header import parse\n", "routers/header.py": ""},
            ["codyn.importers (data) imports codyn.routers.header (routers)"],
        ),
        # serving may not import a CLI module, and the CLI may import anything
        (
            {
                "serve.py": "import codyn.route_cli\n",
                "route_cli.py": "from codyn.serve import app\n",
            },
            ["codyn.serve imports the CLI module codyn.route_cli"],
        ),
        # downward imports are fine
        ({"routers/base.py": "from codyn.policy import choose\n", "policy.py": ""}, []),
    ],
)
def test_the_check_sees_upward_imports(tmp_path, files, expected):
    package = tmp_path / "codyn"
    for rel, text in {"__init__.py": "", **files}.items():
        (package / rel).parent.mkdir(parents=True, exist_ok=True)
        (package / rel).write_text(text, encoding="utf-8")
    found = violations(package)
    assert len(found) == len(expected), found
    for line, want in zip(found, expected, strict=True):
        assert want in line, line
