"""``medlens deid IN_DIR OUT_DIR``: de-identify a folder tree of DICOM, PNG and JPEG files."""

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
            "done per file (never the PHI itself). Unreadable files are listed as skipped."
        ),
    )
    parser.add_argument("in_dir", metavar="IN_DIR")
    parser.add_argument("out_dir", metavar="OUT_DIR")
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
    parser.add_argument("--resume", action="store_true", help="skip files the audit lists")
    parser.add_argument(
        "--audit", metavar="FILE", help="audit file (.csv or .json); default OUT_DIR/deid-audit.csv"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from medlens.privacy.policy import DeidPolicy
    from medlens.privacy.tree import deidentify_tree

    policy = DeidPolicy.from_names(args.options, ocr=args.ocr)
    results = deidentify_tree(
        Path(args.in_dir),
        Path(args.out_dir),
        policy,
        audit_path=Path(args.audit) if args.audit else None,
        resume=args.resume,
        progress=not args.no_progress,
    )
    done = sum(r.status.startswith("ok") for r in results)
    skipped = [r for r in results if not r.status.startswith("ok")]
    print(f"de-identified {done} file(s), skipped {len(skipped)}", file=sys.stderr)
    for r in skipped:
        print(f"  {r.key}: {r.status}", file=sys.stderr)
    return 1 if skipped else 0
