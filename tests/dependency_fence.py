"""Run codyn with only some distributions importable, as in an install that has just them.

    python dependency_fence.py DIST [DIST ...] -- cli ARG ...        # codyn's command line
    python dependency_fence.py DIST [DIST ...] -- scripts FILE ...   # run pipeline scripts

Importable: the standard library, codyn, the named distributions and what they require
(recursively, from the installed metadata). Any other top-level module raises
ModuleNotFoundError, as it would where that package is not installed. ``scripts`` runs each
file until it first touches the ``snakemake`` object Snakemake injects (a NameError here):
every import at the top of the script has then succeeded. Used by tests/test_wheel.py (the
core install) and tests/test_envs.py (each stage's conda env).
"""

from __future__ import annotations

import importlib.abc
import importlib.metadata as md
import re
import runpy
import sys


def importable(dists: list[str]) -> set[str]:
    """Top-level module names of ``dists`` and of everything they require."""
    modules: set[str] = set()
    seen: set[str] = set()
    todo = list(dists)
    while todo:
        name = todo.pop()
        if name.lower() in seen:
            continue
        seen.add(name.lower())
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:  # a requirement for another platform (tzdata)
            continue
        top = (dist.read_text("top_level.txt") or "").split()
        modules.update(
            top
            or {
                f.parts[0].removesuffix(".py")
                for f in dist.files or []
                if len(f.parts) > 1 or f.suffix == ".py"
            }
        )
        todo += [
            re.split(r"[ ;<>=!~\[(]", r)[0] for r in dist.requires or [] if "extra ==" not in r
        ]
    return modules


class Fence(importlib.abc.MetaPathFinder):
    def __init__(self, allowed: set[str]):
        self.allowed = allowed

    def find_spec(self, name, path, target=None):
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or top in self.allowed or top == "codyn" or top[0] == "_":
            return None  # the normal finders decide
        raise ModuleNotFoundError(f"No module named {name!r} (fenced off)", name=name)


def main(argv: list[str]) -> int:
    split = argv.index("--")
    dists, mode, rest = argv[:split], argv[split + 1], argv[split + 2 :]
    sys.meta_path.insert(0, Fence(importable(dists)))
    if mode == "cli":
        from codyn.cli import main as codyn

        return codyn(rest)
    for script in rest:
        try:
            runpy.run_path(script, run_name="__main__")
        except NameError as exc:
            if "'snakemake'" not in str(exc):
                raise
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
