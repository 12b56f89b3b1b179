"""The ``codyn`` command. Each subcommand lives in the module that owns the concept."""

from __future__ import annotations

import importlib
import sys

# subcommand -> (module, help). Each module exposes ``main(argv: list[str]) -> int``.
SUBCOMMANDS = {
    "plan": ("codyn.plan", "tasks, scorability, calls, tokens and dollars before any paid call"),
    "score": ("codyn.scoring.cli", "score responses against tasks (same code as the pipeline)"),
    "route": ("codyn.route_cli", "pick a model for prompts with a trained router"),
    "serve": ("codyn.serve", "OpenAI-compatible routing server"),
    "provenance": ("codyn.provenance", "trace a result file back to raw inputs"),
    "import": ("codyn.importers", "import a published instance x model score table"),
}


def usage() -> str:
    lines = ["usage: codyn <command> [options]", "", "commands:"]
    lines += [f"  {name:<12} {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"codyn: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
