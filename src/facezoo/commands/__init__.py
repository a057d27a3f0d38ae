"""Plain (non-Lightning) subcommands of the ``facezoo`` command line.

Each module in this package defines one subcommand with two module attributes::

    HELP = "one line shown in `facezoo --help`"

    def build_parser(parser: argparse.ArgumentParser) -> None: ...   # add arguments / sub-subcommands
    def execute(args: argparse.Namespace) -> int: ...                  # run it, return the exit status

The module name is the subcommand name (``facezoo/commands/model.py`` -> ``facezoo model``). Modules are
discovered with :mod:`pkgutil`, so a new subcommand needs no registration anywhere else. Heavy imports belong
inside ``execute`` so that ``facezoo --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class Command:
    """A discovered subcommand."""

    name: str
    module: ModuleType

    @property
    def help(self) -> str:
        return getattr(self.module, "HELP", "")

    def run(self, argv: Sequence[str], prog: str) -> int:
        parser = argparse.ArgumentParser(
            prog=prog, description=self.module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        self.module.build_parser(parser)
        args = parser.parse_args(list(argv))
        return int(self.module.execute(args) or 0)


def discover() -> dict[str, Command]:
    """All subcommand modules of this package, by name."""
    commands = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "build_parser") and hasattr(module, "execute"):
            commands[info.name] = Command(info.name, module)
    return commands
