"""``medlens report RUN [RUN...]``: HTML, JSON and CSV reports of stored runs.

Each model run is shown with the baselines that ran beside it; several runs are compared
side by side. ``--protocol`` re-scores the stored generations under other protocols (no
model is run), and under the current version of a protocol a run was scored with in an
earlier one (whose scores stay, reported as NAME@VERSION). Each run's scores are reported
under the protocol versions that made them, and the prompt preset that produced its
generations is named, with a note where a protocol comes from another harness.
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
    parser.add_argument(
        "--samples",
        nargs="?",
        const="",
        metavar="PATH",
        help="also write every answer of the reported runs (question, gold, raw output, "
        "parsed answer, score per protocol, confidence, abstained) to PATH: a .jsonl or .csv "
        "file, or a folder for both (default: the report folder)",
    )
    parser.add_argument(
        "--max-thumbnails",
        type=int,
        default=300,
        metavar="N",
        help="distinct images the HTML sample table embeds, wrong answers' first; 0 for none "
        "(default: %(default)s, about 4 KB each)",
    )
    parser.add_argument("--store", help="run store file (default: $MEDLENS_HOME/runs.sqlite)")
    parser.add_argument("--list", action="store_true", help="list the stored runs and exit")
    return parser


def run(args: argparse.Namespace) -> int:
    import sys
    import time

    from medlens.bench.report import write_report
    from medlens.bench.report.table import sample_set_warnings
    from medlens.bench.scoring import prompt_notes, run_prompt
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
        compared = [(run, store.done_ids(run.id)) for run in map(store.get_run, args.runs)]
        for warning in sample_set_warnings(compared):
            print(f"medlens report: warning: {warning}", file=sys.stderr)
        protocols = tuple(p.strip() for p in (args.protocol or "").split(",") if p.strip())
        out = args.out or f"medlens-report-{store.get_run(args.runs[0]).id}"
        if args.max_thumbnails < 0:
            raise ConfigError(f"--max-thumbnails must be 0 or more, not {args.max_thumbnails}.")
        files = write_report(
            store,
            args.runs,
            out,
            protocols=protocols,
            baselines=not args.no_baselines,
            max_thumbnails=args.max_thumbnails,
        )
        print(f"wrote {files.html}, {files.json.name}, {files.csv.name}")
        for run in map(store.get_run, args.runs):
            print(f"{run.id}: generations from prompt preset {run_prompt(run)['label']}")
            for note in prompt_notes(run, protocols or run.protocols):
                print(f"  {note}")
        if args.samples is not None:
            from medlens.bench.report import select_runs
            from medlens.bench.report.samples import write_samples

            runs = select_runs(store, args.runs, baselines=not args.no_baselines)
            paths = write_samples(store, runs, args.samples or out, protocols)
            print(f"samples: {', '.join(map(str, paths))}")
    finally:
        store.close()
    return 0
