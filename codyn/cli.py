"""The ``codyn`` command. Each subcommand lives in the module that owns the concept."""

from __future__ import annotations

import importlib
import os
import sys

from codyn.errors import CodynError
from codyn.extras import missing_extra_message

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
    # The last line of defence, so that no input ends in a traceback: each subcommand
    # reports its own errors with file and record; these are what slips past them.
    try:
        module = importlib.import_module(SUBCOMMANDS[name][0])
        return int(module.main(rest) or 0)
    except ModuleNotFoundError as exc:
        message = missing_extra_message(exc)
        if message is None:
            raise
        print(f"codyn {name}: {message}", file=sys.stderr)
        return 1
    except CodynError as exc:
        print(f"codyn {name}: {exc}", file=sys.stderr)
        return 1
    except UnicodeError as exc:
        print(
            f"codyn {name}: text that is not valid UTF-8 / Unicode ({exc}); codyn reads and "
            "writes UTF-8",
            file=sys.stderr,
        )
        return 1
    except BrokenPipeError:
        # `codyn route ... | head`: the reader left; nothing is wrong with the input. Point
        # stdout at /dev/null so that the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:
        # A file the command cannot open or write (permissions, a full disk, a folder).
        where = f" {exc.filename}" if exc.filename else ""
        print(f"codyn {name}: cannot read or write{where}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Outputs are written atomically: an interrupted command leaves none half-written.
        print(f"codyn {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
