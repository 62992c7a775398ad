"""The ``advdla`` command: one entry point, one module per subcommand under :mod:`advdla.commands`.

Each command module defines ``register(subparsers)``, which adds its parser and sets ``func``. Heavy
imports (torch, transformer_lens) happen inside the commands, so ``advdla --help`` starts fast. Every
:class:`~advdla.errors.AdvdlaError` becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from advdla import __version__
from advdla.errors import AdvdlaError

# Subcommand modules, in help order. A module missing here is simply not offered.
COMMANDS = ("run", "models", "predict", "analyze", "search", "suite", "score", "leaderboard")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="advdla", description="Adversarial benchmarks for direct logit attribution.")
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
        return int(args.func(args) or 0)
    except AdvdlaError as exc:
        print(f"advdla {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"advdla {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
