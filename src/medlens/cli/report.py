"""``medlens report RUN [RUN...]``: HTML, JSON and CSV reports of stored runs.

Each model run is shown with the baselines that ran beside it; several runs are compared
side by side. ``--protocol`` re-scores the stored generations under other protocols (no
model is run).
"""

from __future__ import annotations

import argparse

COMMAND = "report"
ORDER = 21


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        COMMAND,
        help="write the HTML/JSON/CSV report of stored runs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("runs", nargs="*", metavar="RUN", help="run ids (a unique prefix works)")
    parser.add_argument("--out", help="output folder (default: medlens-report-<first run id>)")
    parser.add_argument(
        "--protocol", help="protocol(s), comma-separated; re-scores stored generations if needed"
    )
    parser.add_argument(
        "--no-baselines", action="store_true", help="only the named runs, without baselines"
    )
    parser.add_argument("--store", help="run store file (default: $MEDLENS_HOME/runs.sqlite)")
    parser.add_argument("--list", action="store_true", help="list the stored runs and exit")
    return parser


def run(args: argparse.Namespace) -> int:
    import time

    from medlens.bench.report import write_report
    from medlens.bench.store import RunStore
    from medlens.errors import ConfigError

    store = RunStore(args.store)
    try:
        if args.list:
            for r in store.runs():
                when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created))
                print(
                    f"{r.id}  {when}  {r.benchmark:<12} {r.split:<6} {r.label:<30} "
                    f"{store.count(r.id):>5}/{r.n_planned or '?':<5} {r.status}"
                )
            return 0
        if not args.runs:
            raise ConfigError("Name the run(s) to report, or list them with --list.")
        protocols = tuple(p.strip() for p in (args.protocol or "").split(",") if p.strip())
        out = args.out or f"medlens-report-{store.get_run(args.runs[0]).id}"
        files = write_report(
            store, args.runs, out, protocols=protocols, baselines=not args.no_baselines
        )
    finally:
        store.close()
    print(f"wrote {files.html}, {files.json.name}, {files.csv.name}")
    return 0
