"""Entry point of the ``medlens`` command.

Sub-commands are discovered from the modules of ``medlens.cli`` that define ``COMMAND``,
``add_parser(subparsers)`` and ``run(args) -> int``; building the parser imports argparse
only, so ``medlens --help`` stays fast. A ``MedlensError`` prints as one clear line (exit 2);
``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

import medlens
from medlens.cli.common import clean_help, plain_help
from medlens.errors import MedlensError


def _command_modules() -> list[ModuleType]:
    import medlens.cli as package

    modules = []
    for info in pkgutil.iter_modules(package.__path__):
        if info.name in {"main", "common"} or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"medlens.cli.{info.name}")
        if hasattr(module, "add_parser") and hasattr(module, "run"):
            modules.append(module)
    return sorted(modules, key=lambda m: (getattr(m, "ORDER", 50), m.__name__))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medlens",
        description="Medical vision-language models: load studies, de-identify, ask, evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"medlens {medlens.__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _command_modules():
        sub = module.add_parser(subparsers)
        clean_help(sub)
        sub.set_defaults(_run=module.run)
    for choice in subparsers._choices_actions:
        choice.help = plain_help(choice.help)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0
    try:
        code = int(args._run(args) or 0)
        sys.stdout.flush()  # a closed pipe fails here, inside the try, not at exit
        return code
    except BrokenPipeError:
        # The reader left (`medlens report --list | head`): stop quietly as Unix tools do,
        # pointing stdout at /dev/null so the exit flush cannot fail again (Python docs,
        # signal module, "Note on SIGPIPE").
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except MedlensError as exc:
        if args.debug:
            raise
        print(f"medlens {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"medlens {args.command}: interrupted; finished work is kept.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
