"""``medlens models [ID]``: the model zoo (medlens.bench.models) — how to run each medical VLM
of the literature and what its authors published, with the protocol that reproduces it."""

from __future__ import annotations

import argparse

COMMAND = "models"
ORDER = 80


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        COMMAND,
        help="list the model zoo: Hub ids, backends, prompts, licences, published figures",
        description=__doc__,
    )
    parser.add_argument("model", nargs="?", help="one Hub id: show its whole entry")
    parser.add_argument("--json", action="store_true", help="print the entries as JSON")
    return parser


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from medlens.bench.models import BACKEND_PATHS, ZOO, format_figures, format_zoo, get_model

    models = [get_model(args.model)] if args.model else list(ZOO)
    if args.json:
        print(json.dumps([dataclasses.asdict(m) for m in models], indent=2))
    elif args.model:
        entry = models[0]
        for name, value in dataclasses.asdict(entry).items():
            if name in ("figures", "unverified"):
                continue
            shown = BACKEND_PATHS[value] if name == "backend" else value
            print(f"{name:<14} {shown or 'not confirmed'}")
        print(format_figures(models) or "published figures: none recorded")
    else:
        print(format_zoo(models))
    return 0
