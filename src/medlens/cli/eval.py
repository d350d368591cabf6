"""``medlens eval BENCHMARK[,BENCHMARK...] --model M``: score a model, beside the baselines.

``medlens eval --studies cases.csv --model M`` evaluates a list of your own studies instead:
one row per question, with the study (a ``dicomweb://HOST:PORT/dicom-web/studies/UID[/series/
UID]`` address or a path), the question and optionally the gold answer, in the rows of a
benchmark release as ``medlens score`` reads them (CSV, TSV, JSONL: ``qid,study,question,
answer,answer_type``). Each study is de-identified before the model sees it.

Every generation is committed to the SQLite run store as its batch completes, so a run killed
at any point continues with ``--resume`` (the newest matching run) or ``--resume RUN_ID``,
without losing or repeating a sample. Identical requests are served from the store's cache.

``--engine ray --replicas N [--address auto|ray://HOST:10001]`` generates on N copies of the
model on a Ray cluster (one per GPU when it has GPUs); this process still plans, loads and
de-identifies every study, scores and writes the store, so the stored rows are those of a
local run, and ``--resume`` works the same.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from typing import Any

from medlens.cli.common import (
    add_judge_options,
    add_model_options,
    add_privacy_options,
    add_prompt_options,
    probability,
)

SANITY = ("blank", "noise-image", "swap", "no-image")
"""``medlens.bench.treatments.SANITY_CHECKS``, repeated so that ``--help`` imports nothing."""
ENGINES = ("local", "ray")
"""``medlens.bench.engines.ENGINES``, repeated so that ``--help`` imports nothing."""

COMMAND = "eval"
ORDER = 20


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        COMMAND,
        help="evaluate a model on benchmarks (resumable, with baselines)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "benchmarks", nargs="?", help="benchmark name(s), comma-separated: vqa-rad,slake"
    )
    add_model_options(parser)
    # None: each task's own decoding defaults (short answers for closed/open questions).
    add_privacy_options(parser)
    add_prompt_options(parser)
    parser.add_argument(
        "--deid-ocr",
        choices=["auto", "always", "never"],
        help="OCR redaction of burned-in text in the images (default: never for releases "
        "their publishers de-identified, whose pixels stay as published; else auto)",
    )
    trust = parser.add_argument_group("trust")
    trust.add_argument(
        "--calibration",
        metavar="PROFILE",
        help="calibration profile (medlens calibrate) for the model's answers to the questions "
        "it was fitted on; stored answers then carry calibrated confidence and abstentions",
    )
    trust.add_argument(
        "--abstain-below",
        type=probability,
        metavar="P",
        help="abstain when confidence is below P (0..1; default: the profile's threshold)",
    )
    trust.add_argument(
        "--sanity",
        nargs="?",
        const=",".join(SANITY),
        metavar="CHECKS",
        help="also run the model with the image blanked, replaced by noise or by another "
        f"sample's image, and removed (default checks: {','.join(SANITY)})",
    )
    trust.add_argument(
        "--shift",
        metavar="SHIFTS",
        help="also run the model under each shift, e.g. blur:radius=2,jpeg:quality=10,"
        "gaussian-noise:sigma=25,contrast:factor=0.5,resolution:scale=0.5,"
        "rotation:degrees=10,typos:rate=0.05,paraphrase",
    )
    group = parser.add_argument_group("run")
    group.add_argument(
        "--studies",
        metavar="FILE",
        help="evaluate a list of studies instead of benchmarks: CSV/TSV/JSONL rows with a "
        "study (dicomweb:// address or path), a question and optionally the gold answer "
        "(qid,study,question,answer,answer_type)",
    )
    group.add_argument("--split", default="test", help="benchmark split (default: %(default)s)")
    group.add_argument("--limit", type=int, help="only the first N samples, in the release's order")
    group.add_argument("--batch-size", type=int, default=8, help="default: %(default)s")
    group.add_argument(
        "--data-dir",
        help="folder holding the original releases (else $MEDLENS_DATA, else the Hub)",
    )
    group.add_argument(
        "--protocol",
        help="scoring protocol(s), comma-separated (default: every registered protocol)",
    )
    add_judge_options(
        group,
        also="with it, medevalkit-judge is scored beside the other protocols and each run "
        "records the judge",
    )
    group.add_argument(
        "--no-baselines",
        action="store_true",
        help="do not run the prior / no-image / random baselines beside the model",
    )
    group.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="RUN_ID",
        help="continue a killed run: RUN_ID, or the newest run of this model and benchmark",
    )
    group.add_argument("--store", help="run store file (default: $MEDLENS_HOME/runs.sqlite)")
    engine = parser.add_argument_group(
        "engine", "where the model generates; every engine stores the same results"
    )
    engine.add_argument(
        "--engine",
        choices=ENGINES,
        default="local",
        help="local: in this process; ray: on --replicas copies of the model on a Ray "
        "cluster, this process keeping the plan, de-identification, scoring and the store "
        "(default: %(default)s)",
    )
    engine.add_argument(
        "--address",
        help="ray: the cluster to join, 'auto' (the one `ray start` runs on this machine) or "
        "ray://HOST:10001 (default: start a local cluster)",
    )
    engine.add_argument("--replicas", type=int, help="ray: copies of the model (default: 1)")
    engine.add_argument(
        "--gpus-per-replica",
        type=float,
        help="ray: GPUs each (default: 1 for an in-process model when the cluster has GPUs, "
        "else 0)",
    )
    engine.add_argument("--cpus-per-replica", type=float, help="ray: CPUs each (default: 1)")
    group.add_argument("--out", help="also write the report (HTML, JSON, CSV) into this folder")
    group.add_argument(
        "--log-samples",
        nargs="?",
        const="",
        metavar="PATH",
        help="also write every answer of every run (question, gold, raw output, parsed "
        "answer, score per protocol, confidence, abstained) to PATH: a .jsonl or .csv file, or "
        "a folder for both (default: --out, else medlens-samples-<run id>)",
    )
    group.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _names(value: str | None) -> tuple[str, ...]:
    return tuple(n.strip() for n in (value or "").split(",") if n.strip())


def run(args: argparse.Namespace) -> int:
    from medlens.backends.base import BASELINES
    from medlens.bench.benchmarks import get_benchmark
    from medlens.bench.report.table import published_lines, run_table
    from medlens.bench.runner import EvalSpec, evaluate
    from medlens.bench.scoring import resolve_protocols
    from medlens.bench.store import RunStore
    from medlens.bench.treatments import split_probe_list
    from medlens.cli.common import (
        backend_from_args,
        generation_options,
        prompt_from_args,
        protocols_from_args,
    )
    from medlens.errors import ConfigError

    replica_flags = {
        "--address": args.address,
        "--replicas": args.replicas,
        "--gpus-per-replica": args.gpus_per_replica,
        "--cpus-per-replica": args.cpus_per_replica,
    }
    given = [flag for flag, value in replica_flags.items() if value is not None]
    if given and args.engine != "ray":
        raise ConfigError(
            f"{', '.join(given)} choose the replicas of the ray engine: add --engine ray, or "
            "leave them out."
        )
    benchmarks = _names(args.benchmarks)
    if bool(benchmarks) == bool(args.studies):
        raise ConfigError(
            "Name the benchmarks to evaluate (medlens eval vqa-rad,slake ...) or a list of "
            "studies (medlens eval --studies FILE ...), one of the two."
        )
    for name in benchmarks:  # unknown names fail before any model loads
        get_benchmark(name)
    protocols = protocols_from_args(args, _names(args.protocol))
    resolve_protocols(protocols)
    if args.calibration and not args.score_candidates:
        from medlens.trust.calibration import CalibrationProfile

        profile = CalibrationProfile.load(args.calibration)
        if dict(profile.fingerprint.decoding).get("score_candidates"):
            args.score_candidates = True  # answer as the profile was fitted (medlens ask does)
            print(
                f"medlens eval: scoring closed/choice candidates, as profile "
                f"'{profile.name}' was fitted",
                file=sys.stderr,
            )
    options = generation_options(args)
    spec = EvalSpec(
        benchmarks=benchmarks,
        model=args.model,
        backend=args.backend,
        split=args.split,
        limit=args.limit,
        batch_size=args.batch_size,
        data_dir=args.data_dir,
        protocols=protocols,
        baselines=not args.no_baselines,
        deidentify=not args.no_deid,
        deid_ocr=args.deid_ocr,
        options=options,
        prompt=prompt_from_args(args),
        seed=args.seed or 0,
        calibration=args.calibration,
        abstain_below=args.abstain_below,
        sanity=split_probe_list(args.sanity or ""),
        shifts=split_probe_list(args.shift or ""),
        engine=args.engine,
        studies=args.studies,
        judge=args.judge,
        judge_backend=args.judge_backend,
    )
    is_baseline = spec.backend_name in BASELINES
    pools: list[Any] = []
    factory: Callable[[], Any] | None = None
    if args.engine == "ray" and not is_baseline:
        factory = functools.partial(_replica_pool, args, pools)
    elif not is_baseline:
        factory = functools.partial(backend_from_args, args)
    store = RunStore(args.store)
    try:
        outcomes = evaluate(
            spec,
            store,
            resume=args.resume,
            progress=not args.no_progress,
            backend_factory=factory,
        )
        runs = [o.run for o in outcomes]
        if args.resume:
            print(resume_report(store, outcomes))
        print(run_table(store, runs))
        for line in published_lines(store, runs):
            print(line)
        for pool in pools:
            print(pool.summary())
        if args.out:
            from medlens.bench.report import write_report

            model_runs = [o.run.id for o in outcomes if o.run.role == "model"]
            files = write_report(store, model_runs, args.out, protocols=protocols)
            print(f"report: {files.html}")
        if args.log_samples is not None:
            from medlens.bench.report.samples import write_samples

            target = args.log_samples or args.out or f"medlens-samples-{runs[0].id}"
            paths = write_samples(store, [store.get_run(r.id) for r in runs], target)
            print(f"samples: {', '.join(map(str, paths))}")
    finally:
        store.close()
    return 0


def _replica_pool(args: argparse.Namespace, pools: list[Any]) -> Any:
    """The model's replicas on the Ray cluster (``--engine ray``), built as the local engine
    would build the model, once per replica."""
    from medlens.bench.engines.ray import replica_pool
    from medlens.cli.common import backend_options

    name, options = backend_options(args)
    pool = replica_pool(
        args.model,
        name,
        replicas=args.replicas or 1,
        address=args.address,
        options=options,
        cpus_per_replica=args.cpus_per_replica or 1.0,
        gpus_per_replica=args.gpus_per_replica,
        allow_identified=args.no_deid,
    )
    pools.append(pool)
    return pool


def resume_report(store: Any, outcomes: list[Any]) -> str:
    """What ``--resume`` continued: per run, how many answers were already stored and how
    many were added now."""
    lines = []
    for outcome in outcomes:
        run = outcome.run
        before = store.count(run.id) - outcome.n_new
        lines.append(
            f"resumed run {run.id} ({run.benchmark}, {run.label}): {before} of {outcome.n_total} "
            f"answers were stored, {outcome.n_new} answered now"
        )
    return "\n".join(lines)
