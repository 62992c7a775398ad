"""The ``advdla`` command: one entry point, one module per subcommand under :mod:`advdla.commands`.

Each command module defines ``register(subparsers)``, which adds its parser and sets ``func``. Heavy
imports (torch, transformer_lens) happen inside the commands, so ``advdla --help`` starts fast.

A mistake the user can fix is one line on stderr and exit status 2, never a traceback: an
:class:`~advdla.errors.AdvdlaError`, a bad option (argparse's usage block is left out: the line points at
``--help``), and an :class:`OSError` (a path that cannot be read or written, a storage that cannot be
reached). ``ADVDLA_DEBUG=1`` shows the traceback of the latter instead. Commands validate their arguments,
inputs and destinations before they create anything (see :func:`advdla.atomic.check_writable`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from advdla import __version__
from advdla.errors import AdvdlaError
from advdla.report import set_layout

# Subcommand modules, in help order. A module missing here is simply not offered.
COMMANDS = ("run", "models", "methods", "tasks", "predict", "analyze", "search", "suite", "score", "leaderboard")


# What Ctrl-C keeps, per command: the work that resumes when the same command runs again.
RESUME_HINT = {
    "run": "the finished stages are kept in --out; the same command resumes after them",
    "search": "the study is kept in --out (or --storage); the same command resumes it",
    "suite": "a suite build keeps what it finished (suites/.NAME.partial/); the same command resumes it",
    "score": "with --out, each method's estimates so far are checkpointed; the same command resumes them",
}


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (the subcommands' parsers are of this class too)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="advdla", description="Adversarial benchmarks for direct logit attribution.")
    parser.add_argument("--version", action="version", version=f"advdla {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"advdla.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"advdla.commands.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        set_layout(wide=getattr(args, "wide", False), columns=getattr(args, "columns", None))
        return int(args.func(args) or 0)
    except AdvdlaError as exc:
        print(f"advdla {args.command}: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # whoever read stdout stopped (advdla ... | head): nothing went wrong here
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        if os.environ.get("ADVDLA_DEBUG"):
            raise
        print(f"advdla {args.command}: error: {_os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"advdla {args.command}: interrupted: {RESUME_HINT.get(args.command, 'nothing was left half-written')}",
              file=sys.stderr)
        return 130


def _one_line(text: str) -> str:
    return " ".join(text.split()) if "\n" in text else text


def _os_error(exc: OSError) -> str:
    """An OSError as one line: what failed on which path, and what to check (ADVDLA_DEBUG=1 for the traceback)."""
    what = _one_line(exc.strerror or str(exc) or type(exc).__name__)
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    if paths:
        fix = f"{' -> '.join(paths)}: check that the path exists and that you may read (or write) it"
    elif isinstance(exc, ConnectionError | TimeoutError):
        fix = "check the network, or the server's address"
    else:
        fix = f"{type(exc).__name__} from the system: check free disk space, memory and open-file limits"
    return f"{what}: {fix} (ADVDLA_DEBUG=1 shows where this happened)"


if __name__ == "__main__":
    sys.exit(main())
