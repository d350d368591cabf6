"""De-identification recall on generated studies with known PHI.

    python benchmarks/deid_recall.py [--studies 200] [--seed 0] [--workers N] [--backgrounds DIR]

Each study is a Secondary Capture/US DICOM with every PS3.15 Table E.1-1 attribute filled,
private tags, an overlay and PHI burned into the pixels; a PNG or JPEG screenshot with PHI;
and a free-text report. Printed figures:

- header: share of identifying attributes whose PHI is gone after ``deidentify_dataset``;
- burned-in: share of burned PHI strings that OCR (tesseract on the redacted image, four
  rotations) can no longer read, plus the stricter share whose ink is >= 95% covered;
- free text: share of PHI tokens removed by ``scrub_text``, share of clinical terms kept;
- files per second of de-identification alone (generation and scoring excluded).

Backgrounds default to the VQA-RAD radiographs of ../shared/data when present (real anatomy
under the text), else synthetic ones.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BACKGROUNDS = REPO.parent / "shared" / "data" / "vqa-rad" / "VQA_RAD Image Folder"


@dataclass
class Tally:
    header_total: int = 0
    header_removed: int = 0
    burned_total: int = 0
    burned_unreadable: int = 0
    burned_covered: int = 0
    burned_readable_before: int = 0
    area: list[float] = field(default_factory=list)
    text_total: int = 0
    text_removed: int = 0
    clinical_total: int = 0
    clinical_kept: int = 0
    files: int = 0
    seconds: float = 0.0
    misses: list[str] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        for name, value in vars(other).items():
            if isinstance(value, list):
                getattr(self, name).extend(value)
            else:
                setattr(self, name, getattr(self, name) + value)


def _norm(text: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", text.upper())


def ocr_text(image: np.ndarray) -> str:
    """What an attacker with plain tesseract reads, in all four orientations."""
    import pytesseract
    from PIL import Image

    grey = image if image.ndim == 2 else image.mean(axis=-1).astype(np.uint8)
    return " ".join(
        pytesseract.image_to_string(
            Image.fromarray(np.ascontiguousarray(np.rot90(grey, k))), config="--psm 11"
        )
        for k in range(4)
    )


def tokens(text: str) -> list[str]:
    """The identifying tokens of a burned string: digit runs of 6+ and name parts of 4+."""
    parts = re.split(r"[\s^/\-]+", text)
    out = [_norm(p) for p in parts if len(_norm(p)) >= 4 and not _norm(p).isalpha()]
    out += [_norm(p) for p in parts if len(_norm(p)) >= 4 and _norm(p).isalpha()]
    digits = re.sub(r"\D", "", text)
    if len(digits) >= 6:
        out.append(digits)
    return [t for t in out if t not in {"DOB", "ACC"}]


def score_image(
    original: np.ndarray,
    redacted: np.ndarray,
    texts: list,
    tally: Tally,
    label: str,
    baseline: bool,
) -> None:
    changed = (redacted != original) if redacted.ndim == 2 else (redacted != original).any(-1)
    floor = redacted.min()
    covered = changed | ((redacted if redacted.ndim == 2 else redacted.min(-1)) == floor)
    tally.area.append(float(changed.mean()))
    after = _norm(ocr_text(redacted))
    before = _norm(ocr_text(original)) if baseline else ""
    for burned in texts:
        tally.burned_total += 1
        found = [t for t in tokens(burned.text) if t in after]
        tally.burned_unreadable += not found
        tally.burned_covered += covered[burned.mask].mean() >= 0.95
        if baseline:
            tally.burned_readable_before += any(t in before for t in tokens(burned.text))
        if found:
            tally.misses.append(
                f"burned {label}: angle {burned.angle:.0f}, read {len(found)} token(s)"
            )


def run_study(index: int, seed: int, backgrounds: str | None, baseline: bool) -> Tally:
    from medlens.privacy import DeidPolicy, deidentify_dataset, redact_burned_in_text, scrub_text
    from medlens.privacy.synthetic import (
        make_phi,
        synthetic_dataset,
        synthetic_image,
        synthetic_report,
    )

    rng = np.random.default_rng([seed, index])
    source = Path(backgrounds) if backgrounds else None
    policy = DeidPolicy(project_key=b"benchmark-key")
    tally = Tally()
    phi = make_phi(rng)
    dicom_image = synthetic_image(
        phi, rng, shape=(480, 640), color=bool(rng.random() < 0.5), source=source
    )
    ds, filled = synthetic_dataset(phi, rng, dicom_image)
    screen = synthetic_image(phi, rng, shape=(360, 480), color=True, source=source)
    report = synthetic_report(phi, rng)

    start = time.perf_counter()
    out, _ = deidentify_dataset(ds, policy)
    pixels, _ = redact_burned_in_text(dicom_image.pixels)
    shot, _ = redact_burned_in_text(screen.pixels)
    scrubbed = scrub_text(report.text).text
    tally.seconds = time.perf_counter() - start
    tally.files = 3

    for tag, value in filled.items():
        tally.header_total += 1
        if tag in out and value in str(out[tag].value):
            tally.header_removed += 0
            tally.misses.append(f"header: {out[tag].keyword or hex(tag)}")
        else:
            tally.header_removed += 1
    private = [e for e in out if e.tag.is_private]
    tally.header_total += 1
    tally.header_removed += not private

    score_image(dicom_image.pixels, np.asarray(pixels), dicom_image.texts, tally, "dicom", baseline)
    score_image(screen.pixels, np.asarray(shot), screen.texts, tally, "screenshot", baseline)

    for kind, value in report.phi:
        tally.text_total += 1
        if value in scrubbed:
            tally.misses.append(f"text {kind}")
        else:
            tally.text_removed += 1
    tally.clinical_total += len(report.clinical)
    tally.clinical_kept += sum(term in scrubbed for term in report.clinical)
    return tally


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--backgrounds", default=str(DEFAULT_BACKGROUNDS) if DEFAULT_BACKGROUNDS.is_dir() else None
    )
    parser.add_argument(
        "--baseline-every",
        type=int,
        default=4,
        help="also OCR the unredacted image for every Nth study",
    )
    args = parser.parse_args(argv)
    total = Tally()
    wall = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        jobs = [
            pool.submit(run_study, i, args.seed, args.backgrounds, i % args.baseline_every == 0)
            for i in range(args.studies)
        ]
        for job in jobs:
            total.add(job.result())
    wall = time.perf_counter() - wall
    baseline_n = sum(1 for i in range(args.studies) if i % args.baseline_every == 0)

    def pct(a: int, b: int) -> str:
        return f"{100 * a / max(b, 1):.2f}% ({a}/{b})"

    print(
        f"studies: {args.studies} (seed {args.seed}, backgrounds: "
        f"{'VQA-RAD radiographs' if args.backgrounds else 'synthetic'}, workers {args.workers})"
    )
    print(f"header attributes removed:            {pct(total.header_removed, total.header_total)}")
    print(
        f"burned-in PHI not recoverable by OCR: {pct(total.burned_unreadable, total.burned_total)}"
    )
    print(f"burned-in PHI ink >= 95% covered:     {pct(total.burned_covered, total.burned_total)}")
    print(
        f"  (OCR read the PHI before redaction in {total.burned_readable_before} strings of "
        f"{baseline_n} baseline studies)"
    )
    print(f"image area redacted (mean):           {100 * float(np.mean(total.area)):.1f}%")
    print(f"free-text PHI tokens removed:         {pct(total.text_removed, total.text_total)}")
    print(f"clinical terms kept:                  {pct(total.clinical_kept, total.clinical_total)}")
    print(
        f"files per second (de-id only, 1 worker): {total.files / total.seconds:.2f} "
        f"[{total.files} files, {total.seconds:.1f} s]; wall {wall:.0f} s"
    )
    from collections import Counter

    for miss, count in Counter(total.misses).most_common(15):
        print(f"  miss x{count}: {miss}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
