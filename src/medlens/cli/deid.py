"""``medlens deid IN_DIR OUT_DIR``: de-identify a folder tree of DICOM, PNG and JPEG files;
``medlens deid --inspect IN_DIR``: list which files carry burned-in text, writing nothing."""

from __future__ import annotations

import argparse
import sys

COMMAND = "deid"
ORDER = 30


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        COMMAND,
        help="de-identify a folder of DICOM/PNG/JPEG files (PS3.15 profile, OCR redaction)",
        description=(
            "Write de-identified copies of every DICOM (with or without extension), PNG and "
            "JPEG file under IN_DIR into OUT_DIR, with hashed names and an audit of what was "
            "done per file (never the PHI itself, nor the input names). Unreadable files are "
            "listed as skipped in the audit by key, and on the terminal by their input path. "
            "Burned-in text that identifies the patient is blacked out; clinical labels "
            "(side markers, probe and depth read-outs, measurements) are kept unless "
            "--redact-all-text. Files whose redaction covers more than 10 %% of the image or "
            "lies on the body are marked needs_review in the audit."
        ),
    )
    parser.add_argument("in_dir", metavar="IN_DIR")
    parser.add_argument("out_dir", metavar="OUT_DIR", nargs="?", help="not with --inspect")
    parser.add_argument(
        "--policy-option",
        action="append",
        dest="options",
        metavar="NAME",
        help="a DICOM PS3.15 profile option, repeatable (e.g. retain-device-identity, "
        "clean-descriptors); giving any replaces the default "
        "(retain-longitudinal-modified-dates: dates shifted, descriptors removed)",
    )
    parser.add_argument(
        "--ocr",
        choices=("auto", "always", "never"),
        default="auto",
        help="search pixels for burned-in text: auto (BurnedInAnnotation YES, text-prone "
        "modalities, all PNG/JPEG), always, never",
    )
    parser.add_argument(
        "--redact-all-text",
        action="store_true",
        help="black out every text line found, clinical labels too",
    )
    parser.add_argument(
        "--recipe",
        metavar="FILE",
        help="a recipe file (TOML): header actions by keyword or tag pattern, fixed pixel "
        "regions per manufacturer/model (see medlens.privacy.recipe)",
    )
    parser.add_argument(
        "--inspect",
        action="store_true",
        help="write nothing; print one TSV row per file under IN_DIR: its path, the text lines "
        "found, how many would be redacted and why",
    )
    parser.add_argument(
        "--review",
        metavar="DIR",
        help="also write before/after overlays per file into DIR (red: redacted, green: kept); "
        "they show the original pixels, so DIR holds PHI",
    )
    parser.add_argument(
        "--boxes", action="store_true", help="write each output's text lines as OUTPUT.boxes.json"
    )
    parser.add_argument("--workers", type=int, default=1, metavar="N", help="processes (default 1)")
    parser.add_argument("--resume", action="store_true", help="skip files the audit lists")
    parser.add_argument(
        "--audit", metavar="FILE", help="audit file (.csv or .json); default OUT_DIR/deid-audit.csv"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def run(args: argparse.Namespace) -> int:
    import csv
    from pathlib import Path

    from medlens.errors import ConfigError
    from medlens.privacy.policy import DeidPolicy
    from medlens.privacy.tree import INSPECT_FIELDS, deidentify_tree, inspect_tree

    if args.workers < 1:
        raise ConfigError(f"--workers must be 1 or more, not {args.workers}.")
    policy = DeidPolicy.from_names(
        args.options, ocr=args.ocr, redact_all_text=args.redact_all_text, recipe=args.recipe
    )
    if args.inspect:
        if args.out_dir:
            raise ConfigError("--inspect writes nothing: give IN_DIR only.")
        rows = inspect_tree(
            Path(args.in_dir), policy, workers=args.workers, progress=not args.no_progress
        )
        writer = csv.DictWriter(sys.stdout, fieldnames=INSPECT_FIELDS, delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
        return 0
    if not args.out_dir:
        raise ConfigError("Give OUT_DIR (or --inspect to only look).")
    results = deidentify_tree(
        Path(args.in_dir),
        Path(args.out_dir),
        policy,
        audit_path=Path(args.audit) if args.audit else None,
        resume=args.resume,
        progress=not args.no_progress,
        workers=args.workers,
        boxes=args.boxes,
        review_dir=Path(args.review) if args.review else None,
    )
    done = [r for r in results if r.status.startswith("ok")]
    skipped = [r for r in results if not r.status.startswith("ok")]
    review = [r for r in done if r.needs_review]
    regions = sum(r.regions for r in done)
    print(
        f"de-identified {len(done)} file(s), skipped {len(skipped)}; {regions} text region(s) "
        f"redacted, {sum(r.lines_kept for r in done)} clinical label(s) kept; "
        f"{len(review)} need review",
        file=sys.stderr,
    )
    for r in review:
        print(
            f"  needs review: {r.output} ({r.needs_review}; {r.regions} regions, "
            f"{100 * r.redacted_share:.1f} % of the image redacted)",
            file=sys.stderr,
        )
    if skipped:  # the terminal is local: name the inputs; the audit keeps only their keys
        print(f"skipped inputs (under {args.in_dir}; audit key in brackets):", file=sys.stderr)
    for r in skipped:
        print(f"  {r.source} [{r.key}]: {r.status}", file=sys.stderr)
    return 1 if skipped else 0
