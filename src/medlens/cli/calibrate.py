"""``medlens calibrate --benchmark B --model M --name PROFILE``: fit a calibration profile.

Runs the model on a *calibration* split through ``medlens.pipeline.run`` (SLAKE: validation;
VQA-RAD: train without the rows that leak the test set), scores each answer with a bench
protocol, fits temperature scaling (or isotonic / histogram binning) on the answered questions,
chooses the abstention threshold that meets ``--target-risk`` there, and saves the profile
under ``$MEDLENS_HOME/profiles/PROFILE.json``. ``--evaluate test`` then reports, on a split the
profile never saw, accuracy, ECE before and after, and the coverage and risk the threshold
gives. Use the profile with ``medlens ask --calibration PROFILE``.

The profile is tied to what produced its confidences (model, prompt template version, recipe,
decoding settings): ask with the same settings. As in ``medlens ask``, closed and
multiple-choice questions are answered by scoring each candidate's likelihood where the model
can (the confidence is the candidates' normalised likelihood), so a profile fitted with the
defaults applies to ``medlens ask --calibration PROFILE`` as it is; with ``--generate`` the
model generates its answers here, and ``ask`` then needs ``--generate`` too. Benchmark images
get the pixel policy of ``medlens eval`` (``--deid-ocr``). A profile whose threshold answers
less than ``--min-coverage`` of the calibration questions is refused.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from medlens.cli.common import (
    add_model_options,
    add_privacy_options,
    add_prompt_options,
    backend_from_args,
    candidate_scoring,
    generation_options,
    prompt_from_args,
    protocols_from_args,
)

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
    add_model_options(parser, scores_by_default=True)
    add_prompt_options(parser)
    add_privacy_options(parser)
    parser.add_argument(
        "--deid-ocr",
        choices=["auto", "always", "never"],
        help="OCR redaction of burned-in text in the images, as medlens eval takes it "
        "(default: never for releases their publishers de-identified, whose pixels stay as "
        "published; else auto)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    group = parser.add_argument_group("calibration")
    group.add_argument(
        "--split", help="calibration split (default: validation where there is one, else train)"
    )
    group.add_argument("--method", default="temperature", help="temperature, isotonic, histogram")
    group.add_argument("--target-risk", type=float, default=0.05, help="default: %(default)s")
    group.add_argument(
        "--min-coverage",
        type=float,
        default=0.05,
        help="refuse a threshold that answers less than this share of the calibration "
        "questions (default: %(default)s; 0 keeps any)",
    )
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
    group.add_argument(
        "--protocol", help="scoring protocol for correctness (default: the harness's, else medlens)"
    )
    group.add_argument("--evaluate", metavar="SPLIT", help="report the profile on SPLIT (test)")
    group.add_argument("--limit", type=int, help="only the first N questions of each split")
    group.add_argument("--batch-size", type=int, default=8)
    group.add_argument("--data-dir", help="folder of the original releases (else $MEDLENS_DATA)")
    group.add_argument("--out", help="write calibration.json and PNG plots of --evaluate here")
    group.add_argument("--json", action="store_true", help="print a machine-readable summary")
    return parser


def run(args: argparse.Namespace) -> int:
    from medlens.bench.calibration import CalibrationSetup, calibrate

    setup = CalibrationSetup(
        benchmark=args.benchmark,
        name=args.name,
        model=args.model,
        backend=args.backend,
        split=args.split,
        kind=args.kind,
        leakage=args.leakage,
        limit=args.limit,
        data_dir=args.data_dir,
        method=args.method,
        target_risk=args.target_risk,
        delta=args.delta,
        confidence=args.confidence,
        protocol=(
            protocols_from_args(args, (args.protocol,) if args.protocol else ()) or ("medlens",)
        )[0],
        batch_size=args.batch_size,
        deidentify=not args.no_deid,
        deid_ocr=args.deid_ocr,
        options=generation_options(args),
        prompt=prompt_from_args(args),
        candidate_scoring=candidate_scoring(args),
        progress=not args.no_progress,
        min_coverage=args.min_coverage,
        seed=args.seed or 0,
        evaluate=args.evaluate,
        out=args.out,
    )
    summary = calibrate(setup, lambda: backend_from_args(args))
    from medlens.trust.metrics import json_ready

    text = json.dumps(json_ready(summary), indent=2, default=str, allow_nan=False)
    print(text if args.json else format_summary(summary))
    return 0


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
