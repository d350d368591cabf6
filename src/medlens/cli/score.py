"""``medlens score PREDICTIONS --benchmark B``: score another tool's predictions file.

Reads JSONL/CSV rows (question id or question text, optional image name, raw model answer),
matches them to the benchmark's questions and prints matched / unmatched / duplicate /
conflicting counts, then one table per protocol with bootstrap 95 % intervals. A row is never
scored against another question's gold: ids are checked against the row's own question text
and image, in the id space the file uses (VQA-RAD has two: MEVF's and the OSF JSON's);
a row whose id contradicts its question is matched by (image, question), or the command fails
listing the conflicts. ``--judge MODEL`` adds an LLM judge's
accuracy on open answers, reported beside the rule-based scores.
"""

from __future__ import annotations

import argparse
from typing import Any

from medlens.cli.common import add_judge_options

COMMAND = "score"
ORDER = 35

PROTOCOL_SOURCES = {
    "medlens": "medlens's own strict rules (medlens.normalize, medlens.bench.metrics.text)",
    "medevalkit": "alibaba-damo-academy/MedEvalKit@9b12e3b utils/utils.py, VQA_RAD.cal_metrics",
    "medevalkit-fixed": "the same, its bugs fixed",
    "medevalkit-judge": "alibaba-damo-academy/MedEvalKit@9b12e3b get_compare_messages (needs "
    "--judge)",
    "llava-med": "microsoft/LLaVA-Med@b9a98a7 llava/eval/run_eval.py:evaluate (PR #35)",
    "llava-med-ad758b6": "microsoft/LLaVA-Med@ad758b6 llava/eval/run_eval.py:evaluate (first "
    "release)",
    "llava-med-fixed": "the same, its bugs fixed",
    "lmms-eval": "EvolvingLMMs-Lab/lmms-eval@0a75d6b lmms_eval/tasks/slake/utils.py (the SLAKE "
    "rule)",
    "medgemma-card": "the google/medgemma-4b-it model card's wording (no scorer published)",
}
"""Each protocol's upstream, short, so that ``--help`` imports nothing; a test holds every
entry to the protocol's own description."""


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        COMMAND,
        help="score a predictions file written by another tool",
        description="Match a JSONL/CSV predictions file to a benchmark and score it under one "
        "or more scoring protocols, without running a model. Each protocol reproduces the "
        "upstream code it names:\n"
        + "\n".join(f"  {name}: {source}" for name, source in PROTOCOL_SOURCES.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("predictions", help="JSONL, JSON list, CSV or TSV file")
    parser.add_argument("--benchmark", required=True, help="benchmark name, e.g. vqa-rad")
    parser.add_argument("--split", help="split (default: the benchmark's test split)")
    parser.add_argument(
        "--protocol", default="medlens", help="protocol name(s), comma-separated (default: medlens)"
    )
    parser.add_argument("--data-dir", help="folder with the original release (or $MEDLENS_DATA)")
    add_judge_options(parser, also="medlens's own judge accuracy is printed beside the rules")
    parser.add_argument(
        "--store", help="run store that caches the judge's verdicts (default: $MEDLENS_HOME)"
    )
    parser.add_argument("--json", metavar="OUT", help="write all summaries as JSON here")
    parser.add_argument(
        "--group-by",
        default="kind,question_type,modality,organ",
        help="metadata keys for breakdowns, comma-separated",
    )
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--id-column")
    parser.add_argument("--question-column")
    parser.add_argument("--image-column")
    parser.add_argument("--answer-column")
    parser.add_argument(
        "--id-space",
        help="how to read the id column when the rows cannot tell (VQA-RAD: mevf or osf)",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    import json
    import sys
    from pathlib import Path

    from medlens.bench.benchmarks import get_benchmark
    from medlens.bench.metrics.predictions import detect_columns, match_predictions, read_rows
    from medlens.bench.protocols import get_protocol
    from medlens.bench.quality import format_issues
    from medlens.errors import DataError

    benchmark = get_benchmark(args.benchmark)
    protocols = [get_protocol(p.strip()) for p in args.protocol.split(",") if p.strip()]
    samples = benchmark.load(args.split, args.data_dir)
    print(
        f"{benchmark.name} {samples[0].split if samples else args.split}: {len(samples)} questions"
    )
    print(format_issues(benchmark.quality(samples)))
    rows = read_rows(args.predictions)
    columns = detect_columns(
        rows,
        id_column=args.id_column,
        question_column=args.question_column,
        image_column=args.image_column,
        answer_column=args.answer_column,
    )
    print(
        f"columns: id={columns.id} question={columns.question} image={columns.image} "
        f"answer={columns.answer}"
    )
    module = sys.modules[type(benchmark).__module__]
    spaces_of = getattr(module, "id_spaces", None)
    spaces = spaces_of(benchmark.local_root(args.data_dir), samples) if spaces_of else None
    report = match_predictions(rows, samples, columns, id_spaces=spaces, id_space=args.id_space)
    print(report.summary())
    if report.conflicts:
        listed = "\n".join(f"  row {n}: {reason}" for n, reason in report.conflicts[:5])
        raise DataError(
            f"{len(report.conflicts)} rows name, by id, a question their own text or image "
            f"contradicts, and match no question by (image, question) either:\n{listed}\n"
            "Check --benchmark/--split, the id column (--id-column, --id-space) and the "
            "question column; medlens does not score a row against another question's gold."
        )
    if not report.matched:
        raise DataError(
            f"no row of {args.predictions} matched a question of {benchmark.name}; check "
            "--benchmark/--split and the column flags"
        )
    matched = [s for s, _ in report.matched]
    raw = [p for _, p in report.matched]
    group_by = [g.strip() for g in args.group_by.split(",") if g.strip()]
    output: dict[str, object] = {
        "benchmark": benchmark.name,
        "rows": len(rows),
        "matched": len(report.matched),
        "unmatched": [{"row": n, "reason": r} for n, r in report.unmatched],
        "duplicates": report.duplicates,
        "conflicts": [{"row": n, "reason": r} for n, r in report.conflicts],
        "id_space": report.id_space,
        "rematched": report.rematched,
        "missing": len(report.missing),
        "protocols": {},
    }
    judge_backend = None
    if args.judge:
        from medlens.backends.base import load_backend

        judge_backend = load_backend(args.judge, args.judge_backend)
    for protocol in protocols:
        if getattr(protocol, "needs_judge", False):
            protocol = _with_verdicts(protocol, matched, raw, judge_backend, args.store)
        scores = [protocol.score(s, p) for s, p in zip(matched, raw)]
        summary = protocol.aggregate(
            matched, scores, group_by=group_by, n_boot=args.bootstrap, seed=args.seed
        )
        print()
        print(summary.format())
        print(f"  source: {PROTOCOL_SOURCES.get(protocol.name, protocol.description)}")
        output["protocols"][protocol.name] = summary.to_dict()  # type: ignore[index]
    if judge_backend is not None:
        from medlens.bench.metrics.judge import LLMJudge

        judge = LLMJudge(judge_backend)
        open_pairs = [(s, p) for s, p in report.matched if s.kind == "open"]
        verdicts = judge.grade([s for s, _ in open_pairs], [p for _, p in open_pairs])
        judged = judge.summarize(verdicts, n_boot=args.bootstrap, seed=args.seed)
        print()
        print(
            f"LLM judge {judged.model} on open answers (separate from the rule-based scores): "
            f"{judged.accuracy}; unreadable verdicts: {judged.unreadable}"
        )
        output["judge"] = judged.to_dict()
    if args.json:
        Path(args.json).write_text(json.dumps(output, indent=2), encoding="utf-8")
    return 0


def _with_verdicts(
    protocol: Any, samples: list[Any], raw: list[str], judge: Any, store_path: str | None
) -> Any:
    """``protocol`` (one that needs an LLM judge) with its verdicts, cached in the run store."""
    from medlens.bench.protocols.medevalkit_judge import judge_verdicts
    from medlens.bench.store import RunStore
    from medlens.errors import ConfigError

    if judge is None:
        raise ConfigError(
            f"{protocol.name} grades open answers with an LLM judge: pass --judge URL_OR_ID "
            "(an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1, or a model id)"
        )
    store = RunStore(store_path)
    try:
        return judge_verdicts(protocol, samples, raw, judge, cache=store)
    finally:
        store.close()
