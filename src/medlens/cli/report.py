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
    import sys
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
                    f"{store.count(r.id):>5}/{r.n_planned or '?':<5} {store.status_of(r)}"
                )
            return 0
        if not args.runs:
            raise ConfigError("Name the run(s) to report, or list them with --list.")
        for warning in sample_set_warnings(store, args.runs):
            print(f"medlens report: warning: {warning}", file=sys.stderr)
        protocols = tuple(p.strip() for p in (args.protocol or "").split(",") if p.strip())
        out = args.out or f"medlens-report-{store.get_run(args.runs[0]).id}"
        files = write_report(
            store, args.runs, out, protocols=protocols, baselines=not args.no_baselines
        )
    finally:
        store.close()
    print(f"wrote {files.html}, {files.json.name}, {files.csv.name}")
    return 0


def sample_set_warnings(store: object, run_ids: list[str]) -> list[str]:
    """Runs of one benchmark compared side by side must have answered the same questions;
    a 50-question run beside a 451-question one compares nothing. One warning per benchmark
    whose runs differ, naming the counts and the overlap."""
    from medlens.bench.store import RunStore

    assert isinstance(store, RunStore)
    by_benchmark: dict[str, list[tuple[str, set[str]]]] = {}
    for run_id in run_ids:
        run = store.get_run(run_id)
        by_benchmark.setdefault(f"{run.benchmark} {run.split}", []).append(
            (run.id, store.done_ids(run.id))
        )
    warnings = []
    for benchmark, runs in by_benchmark.items():
        if len({frozenset(ids) for _, ids in runs}) <= 1:
            continue
        common = set.intersection(*(ids for _, ids in runs))
        counts = ", ".join(f"{run_id}: {len(ids)}" for run_id, ids in runs)
        warnings.append(
            f"the {benchmark} runs answered different questions ({counts}; {len(common)} in "
            "common), so their numbers are not comparable. Compare runs made with the same "
            "--split and --limit."
        )
    return warnings
