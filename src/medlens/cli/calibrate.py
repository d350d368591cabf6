"""``medlens calibrate --benchmark B --model M --name PROFILE``: fit a calibration profile.

Runs the model on a *calibration* split through ``medlens.pipeline.run`` (SLAKE: validation;
VQA-RAD: train without the rows that leak the test set), scores each answer with a bench
protocol, fits temperature scaling (or isotonic / histogram binning) on the answered questions,
chooses the abstention threshold that meets ``--target-risk`` there, and saves the profile
under ``$MEDLENS_HOME/profiles/PROFILE.json``. ``--evaluate test`` then reports, on a split the
profile never saw, accuracy, ECE before and after, and the coverage and risk the threshold
gives. Use the profile with ``medlens ask --calibration PROFILE``.

The profile is tied to what produced its confidences (model, prompt template version, recipe,
decoding settings): ask with the same settings. ``--score-candidates`` gives the decoding
``medlens ask`` uses for closed and multiple-choice questions.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from medlens.cli.common import add_model_options, add_privacy_options, generation_options

if TYPE_CHECKING:
    from medlens.backends.base import Backend
    from medlens.bench.benchmark import Benchmark
    from medlens.bench.samples import Sample
    from medlens.pipeline import Result

COMMAND = "calibrate"
ORDER = 25


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        COMMAND,
        help="fit a calibration profile (temperature, isotonic, histogram) and a threshold",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--benchmark", required=True, help="benchmark name, e.g. vqa-rad, slake")
    parser.add_argument("--name", required=True, help="profile name (letters, digits, . _ -)")
    add_model_options(parser)
    add_privacy_options(parser)
    group = parser.add_argument_group("calibration")
    group.add_argument(
        "--split", help="calibration split (default: validation where there is one, else train)"
    )
    group.add_argument("--method", default="temperature", help="temperature, isotonic, histogram")
    group.add_argument("--target-risk", type=float, default=0.05, help="default: %(default)s")
    group.add_argument(
        "--delta",
        type=float,
        help="choose the threshold so that the risk bound holds with probability 1 - DELTA "
        "(default: the empirical risk on the calibration split)",
    )
    group.add_argument(
        "--confidence", default="auto", help="auto, candidates, sequence, consistency, verbalized"
    )
    group.add_argument(
        "--kind",
        default="closed",
        choices=["closed", "choice", "open"],
        help="question kind to fit on (default: %(default)s)",
    )
    group.add_argument(
        "--leakage",
        default="images",
        choices=["images", "questions"],
        help="train split: drop rows sharing a test image (default) or only test questions",
    )
    group.add_argument("--protocol", default="medlens", help="scoring protocol for correctness")
    group.add_argument("--evaluate", metavar="SPLIT", help="report the profile on SPLIT (test)")
    group.add_argument("--limit", type=int, help="only the first N questions of each split")
    group.add_argument("--batch-size", type=int, default=8)
    group.add_argument("--data-dir", help="folder of the original releases (else $MEDLENS_DATA)")
    group.add_argument("--out", help="write calibration.json and PNG plots of --evaluate here")
    group.add_argument("--json", action="store_true", help="print a machine-readable summary")
    return parser


def run(args: argparse.Namespace) -> int:
    from medlens.bench.benchmarks import get_benchmark
    from medlens.bench.scoring import resolve_protocols
    from medlens.errors import ConfigError
    from medlens.trust.calibration import CALIBRATORS, fit_profile

    bench = get_benchmark(args.benchmark)
    CALIBRATORS.get(args.method)  # unknown names fail before any model loads
    (protocol,) = resolve_protocols([args.protocol]).values()
    split = args.split or ("validation" if "validation" in bench.splits else "train")
    if split == args.evaluate:
        raise ConfigError(
            f"Calibrating and evaluating on the same split ('{split}') would report fitted "
            "numbers as if they were held out; evaluate on another split."
        )
    calibration_set, prior_rows = calibration_samples(bench, split, args)
    backend = _backend(args, bench, prior_rows)
    try:
        fit_results = _answers(calibration_set, backend, args)
        fingerprints = {_fingerprint(r) for r, _ in fit_results}
        if len(fingerprints) != 1:
            raise ConfigError(
                "The calibration questions were asked under several setups (recipes or "
                "decoding); calibrate one kind of study at a time, e.g. with --kind."
            )
        items, counts = fit_items(fit_results, protocol)
        details = {
            "benchmark": bench.name,
            "split": split,
            "kind": args.kind,
            "protocol": f"{protocol.name}@{protocol.version}",
            "questions": len(fit_results),
            "outcomes": counts,
        }
        if split == "train":
            details["leakage_excluded"] = args.leakage
        profile = fit_profile(
            args.name,
            items,
            fingerprint=fingerprints.pop(),
            method=args.method,
            target_risk=args.target_risk,
            delta=args.delta,
            details=details,
        )
        path = profile.save()
        summary: dict[str, Any] = {"profile": profile.to_dict(), "path": str(path)}
        if args.evaluate:
            test = _limit(_of_kind(bench.load(args.evaluate, args.data_dir), args.kind), args)
            summary["evaluation"] = evaluate_profile(
                profile, _answers(test, backend, args), protocol, args.evaluate, args.out
            )
    finally:
        backend.close()
    print(json.dumps(summary, indent=2, default=str) if args.json else format_summary(summary))
    return 0


def _of_kind(samples: Sequence[Sample], kind: str) -> list[Sample]:
    return [s for s in samples if s.kind == kind]


def _limit(samples: list[Sample], args: argparse.Namespace) -> list[Sample]:
    return samples[: args.limit] if args.limit else samples


def calibration_samples(
    bench: Benchmark, split: str, args: argparse.Namespace
) -> tuple[list[Sample], list[Sample]]:
    """The calibration questions, and the rows a ``prior`` baseline may be fitted on (train,
    minus test-question leakage, minus the calibration questions themselves)."""
    from medlens.bench.plan import prior_training_rows

    has_train = "train" in bench.splits
    train = bench.load("train", args.data_dir) if has_train else []
    needs_test = "test" in bench.splits and bench.leaks_into_test and has_train
    test = bench.load("test", args.data_dir) if needs_test else []
    samples = train if split == "train" else bench.load(split, args.data_dir)
    if split == "train":
        samples = bench.exclude_leakage(samples, test, mode=args.leakage)
    chosen = _limit(_of_kind(samples, args.kind), args)
    ids = {s.id for s in chosen}
    prior = [s for s in prior_training_rows(bench, train, test) if s.id not in ids] if train else []
    return chosen, prior


def _backend(args: argparse.Namespace, bench: Benchmark, prior_rows: list[Sample]) -> Backend:
    """The model's backend; a ``prior``/``no-image`` baseline learns its table from
    ``prior_rows``, never from the questions it is calibrated or tested on."""
    from medlens.backends.base import BACKENDS, BASELINES, infer_backend_name
    from medlens.cli.common import backend_from_args

    name = args.backend or infer_backend_name(args.model)
    if name not in BASELINES:
        return backend_from_args(args)  # type: ignore[no-any-return]
    if name == "random":
        return BACKENDS.get(name)(name, seed=args.seed or 0)
    from medlens.bench.plan import fit_prior

    return BACKENDS.get(name)(name, prior=fit_prior(prior_rows) if prior_rows else None)


def _answers(
    samples: list[Sample], backend: Backend, args: argparse.Namespace
) -> list[tuple[Result, Sample]]:
    """Each sample's pipeline result (raw confidence, no profile), in order."""
    from medlens import pipeline
    from medlens.bench.treatments import item_of

    by_id = {s.id: s for s in samples}
    results = pipeline.run(
        [item_of(s) for s in samples],
        backend,
        batch_size=args.batch_size,
        confidence_method=args.confidence,
        deidentify=not args.no_deid,
        options=generation_options(args),
    )
    return [(r, by_id[r.request.id]) for r in results]


def _fingerprint(result: Result) -> Any:
    from medlens import pipeline

    return pipeline.fingerprint_of(result.prepared, result.generation)


def _outcome(result: Result, sample: Sample, protocol: Any) -> str:
    answer = result.answer
    score = protocol.score(
        sample,
        answer.raw,
        parsed=answer.text,
        parsed_ok=answer.parsed,
        abstained=answer.abstained,
    )
    return str(score.outcome)


def fit_items(
    results: list[tuple[Result, Sample]], protocol: Any
) -> tuple[list[Any], dict[str, int]]:
    """Answered questions with a confidence, as ``FitItem``s, and every outcome's count
    (unparseable and abstained answers are counted, not fitted on)."""
    from collections import Counter

    from medlens.trust.calibration import FitItem
    from medlens.trust.confidence import normalize

    items = []
    counts: Counter[str] = Counter()
    for result, sample in results:
        outcome = _outcome(result, sample, protocol)
        counts[outcome] += 1
        confidence = result.answer.confidence
        if outcome in ("correct", "wrong", "partial") and confidence is not None:
            refs = {normalize(a) for a in sample.answers}
            label = next((k for k in confidence.candidate_probs if normalize(k) in refs), None)
            items.append(FitItem(confidence, outcome == "correct", label))
    return items, dict(counts)


def evaluate_profile(
    profile: Any,
    results: list[tuple[Result, Sample]],
    protocol: Any,
    split: str,
    out: str | None = None,
) -> dict[str, Any]:
    """Raw and calibrated metrics on ``results`` (a split the profile was not fitted on), and
    the coverage and risk of the profile's threshold there; writes plots into ``out``."""
    from medlens.trust.sections import calibration_section

    if results:
        profile.check(_fingerprint(results[0][0]))
    outcomes = [_outcome(r, s, protocol) for r, s in results]
    confidences = [r.answer.confidence for r, _ in results]
    raw = [c.value if c is not None else math.nan for c in confidences]
    calibrated = [profile.apply(c).value if c is not None else math.nan for c in confidences]
    section = calibration_section(
        raw,
        outcomes,
        calibrated=calibrated,
        threshold=profile.threshold,
        target_risk=profile.target_risk,
        title=f"{profile.name} on {split}",
    )
    if out:
        from pathlib import Path

        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "calibration.json").write_text(json.dumps(dict(section.data), indent=2))
        for name, png in section.images.items():
            (folder / f"{name}.png").write_bytes(png)
    return {"split": split, **dict(section.data)}


def _f(value: Any, pct: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * value:.1f}%" if pct else f"{value:.3f}"


def format_summary(summary: dict[str, Any]) -> str:
    """A few lines: what was fitted where, and how it does on the held-out split."""
    p = summary["profile"]
    fit = p["fit"]
    params = ", ".join(
        f"{k}={v:.3g}" for k, v in p["params"].items() if isinstance(v, (int, float))
    )
    head = (
        f"profile {p['name']}: {p['method']}({params}) on {p['confidence_method']} "
        f"confidence, saved to {summary['path']}"
    )
    where = (
        f"fitted on {fit['benchmark']} {fit['split']} ({fit['kind']}, {fit['n']} answered of "
        f"{fit['questions']}; outcomes {fit['outcomes']})"
    )
    on_fit = (
        f"  fit split: accuracy {_f(fit['before']['accuracy'], True)}, ECE "
        f"{_f(fit['before']['ece'])} -> {_f(fit['after']['ece'])}, threshold "
        f"{_f(p['threshold'])} for target risk {_f(p['target_risk'], True)} "
        f"(coverage {_f(fit.get('coverage'), True)})"
    )
    lines = [head, where, on_fit]
    ev = summary.get("evaluation")
    if ev:
        raw, cal, abst = ev["raw"], ev["calibrated"], ev.get("abstention", {})
        lines.append(
            f"  {ev['split']}: n={raw['n']} accuracy {_f(raw['accuracy'], True)}, ECE "
            f"{_f(raw['ece'])} -> {_f(cal['ece'])}, Brier {_f(raw['brier'])} -> "
            f"{_f(cal['brier'])}, AUROC {_f(raw['auroc'])}; at the threshold: coverage "
            f"{_f(abst.get('coverage'), True)}, risk {_f(abst.get('risk'), True)}"
        )
    return "\n".join(lines)
