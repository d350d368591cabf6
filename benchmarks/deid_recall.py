"""De-identification recall and precision on generated studies with known PHI, and false
redaction on real images that carry no PHI.

    python benchmarks/deid_recall.py [--studies 200] [--clean-images 100] [--seed 0]
                                     [--workers N] [--backgrounds DIR]

Each study is a Secondary Capture/US DICOM with every PS3.15 Table E.1-1 attribute filled,
private tags, an overlay and PHI burned into the pixels; a PNG or JPEG screenshot with PHI;
and a free-text report. Printed figures:

- header: share of identifying attributes whose PHI is gone after ``deidentify_dataset``;
- burned-in, against a strong attacker who knows where each string was drawn and at what
  angle: a crop around it (generous margin), turned back upright, upscaled 3x, read by
  tesseract in both polarities and as top-hat stroke pages, one wrong character
  allowed. (a) strings it reads BEFORE redaction,
  (b) of those, strings it still reads AFTER, (c) strings whose ink is >= 95% covered,
  and the area blacked out outside the strings' boxes;
- false positives on real VQA-RAD and SLAKE images (radiographs, CT, MR) that carry no
  synthetic text: share of image area blacked out, share of images touched, and what the
  attacker read inside the removed boxes before redaction (the publications' own
  annotations: "L"/"R" markers, arrows, letters naming structures; not PHI);
- free text: share of PHI tokens removed by ``scrub_text``, share of clinical terms kept;
- files per second of de-identification alone (generation and scoring excluded), and
  milliseconds per clean real image.

Backgrounds default to the VQA-RAD radiographs of ../shared/data when present (real anatomy
under the text), else synthetic ones.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
DEFAULT_BACKGROUNDS = DATA / "vqa-rad" / "VQA_RAD Image Folder"
CLEAN_SOURCES = (DATA / "vqa-rad" / "VQA_RAD Image Folder", DATA / "slake" / "Slake1.0" / "imgs")


@dataclass
class Tally:
    header_total: int = 0
    header_removed: int = 0
    burned_total: int = 0
    burned_readable_before: int = 0
    burned_readable_after: int = 0
    burned_covered: int = 0
    outside_area: list[float] = field(default_factory=list)
    clean_images: int = 0
    clean_touched: int = 0
    clean_area: list[float] = field(default_factory=list)
    clean_seconds: float = 0.0
    clean_removed: list[str] = field(default_factory=list)
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


@lru_cache(maxsize=1)
def _attacker() -> Any:
    """An in-process tesseract reader of one text line (page segmentation mode 7)."""
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    import tesserocr

    from medlens.privacy.pixels import tessdata_path

    return tesserocr.PyTessBaseAPI(path=tessdata_path(), lang="eng", psm=tesserocr.PSM.SINGLE_LINE)


def attacker_reads(image: np.ndarray, box: tuple[int, int, int, int], angle: float) -> str:
    """What a strong attacker reads in ``box`` (y0, y1, x0, x1) of ``image``: the crop with a
    margin of half its short side (at least 10 px), turned upright by ``angle`` degrees,
    upscaled 3x, read as it is, inverted, and as the two top-hat stroke pages (bright and
    dark strokes thresholded black on white), which lift text off a varying background."""
    from PIL import Image, ImageOps
    from scipy import ndimage as ndi

    grey = image if image.ndim == 2 else image.mean(axis=-1)
    y0, y1, x0, x1 = box
    margin = max(10, min(y1 - y0, x1 - x0) // 2)
    crop = np.asarray(
        grey[max(0, y0 - margin) : y1 + margin, max(0, x0 - margin) : x1 + margin], np.float32
    )
    page = Image.fromarray(crop.clip(0, 255).astype(np.uint8))
    if angle:
        fill = int(np.median(crop))
        page = page.rotate(-angle, expand=True, resample=Image.Resampling.BICUBIC, fillcolor=fill)
    page = page.resize((page.width * 3, page.height * 3), Image.Resampling.LANCZOS)
    values = np.asarray(page, np.float32)
    size = max(5, 3 * min(y1 - y0, x1 - x0) // 3)
    pages = [page, ImageOps.invert(page)]
    for strokes in (
        values - ndi.grey_opening(values, size=(size, size)),
        ndi.grey_closing(values, size=(size, size)) - values,
    ):
        cut = 0.35 * float(strokes.max()) or 1.0
        pages.append(Image.fromarray(np.where(strokes > cut, 0, 255).astype(np.uint8)))
    api = _attacker()
    read = []
    for item in pages:
        api.SetImage(item)
        read.append(api.GetUTF8Text())
    return " ".join(read)


def tokens(text: str) -> list[str]:
    """The identifying tokens of a burned string: digit runs of 6+ and name parts of 4+ (the
    whole string when it has none)."""
    parts = [_norm(p) for p in re.split(r"[\s^/\-]+", text)]
    out = [p for p in parts if len(p) >= 4 and p not in {"DOB", "ACC"}]
    digits = re.sub(r"\D", "", text)
    if len(digits) >= 6:
        out.append(digits)
    return out or [_norm(text)]


def recovered(token: str, read: str) -> bool:
    """Whether ``read`` holds ``token``, allowing one wrong character in tokens of 6 or more
    (an attacker who reads "9538298O" has the id)."""
    if token in read:
        return True
    n = len(token)
    return n >= 6 and any(
        sum(a != b for a, b in zip(token, read[i : i + n])) <= 1 for i in range(len(read) - n + 1)
    )


def _box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1


def _blacked(original: np.ndarray, redacted: np.ndarray) -> np.ndarray:
    """Pixels the redaction changed."""
    changed = redacted != original
    return changed if changed.ndim == 2 else changed.any(axis=-1)


def score_image(
    original: np.ndarray, redacted: np.ndarray, texts: list[Any], tally: Tally, label: str
) -> None:
    changed = _blacked(original, redacted)
    floor = redacted.min()
    covered = changed | ((redacted if redacted.ndim == 2 else redacted.min(-1)) == floor)
    boxes = np.zeros(changed.shape, bool)
    for burned in texts:
        y0, y1, x0, x1 = _box(burned.mask)
        pad = max(4, min(y1 - y0, x1 - x0) // 3)
        boxes[max(0, y0 - pad) : y1 + pad, max(0, x0 - pad) : x1 + pad] = True
        tally.burned_total += 1
        tally.burned_covered += covered[burned.mask].mean() >= 0.95
        wanted = tokens(burned.text)
        before = _norm(attacker_reads(original, (y0, y1, x0, x1), burned.angle))
        if not any(recovered(t, before) for t in wanted):
            continue
        tally.burned_readable_before += 1
        after = _norm(attacker_reads(redacted, (y0, y1, x0, x1), burned.angle))
        found = [t for t in wanted if recovered(t, after)]
        if found:
            tally.burned_readable_after += 1
            tally.misses.append(f"burned {label}: angle {burned.angle:.0f}, {len(found)} token(s)")
    tally.outside_area.append(float((changed & ~boxes).sum() / max(1, (~boxes).sum())))


def run_study(index: int, seed: int, backgrounds: str | None) -> Tally:
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
            tally.misses.append(f"header: {out[tag].keyword or hex(tag)}")
        else:
            tally.header_removed += 1
    tally.header_total += 1
    tally.header_removed += not any(e.tag.is_private for e in out)

    score_image(dicom_image.pixels, np.asarray(pixels), dicom_image.texts, tally, "dicom")
    score_image(screen.pixels, np.asarray(shot), screen.texts, tally, "screenshot")

    for kind, value in report.phi:
        tally.text_total += 1
        if value in scrubbed:
            tally.misses.append(f"text {kind}")
        else:
            tally.text_removed += 1
    tally.clinical_total += len(report.clinical)
    tally.clinical_kept += sum(term in scrubbed for term in report.clinical)
    return tally


def clean_images(count: int, seed: int) -> list[str]:
    """``count`` real images with no synthetic text, half VQA-RAD and half SLAKE."""
    rng = np.random.default_rng(seed)
    chosen: list[str] = []
    for folder in CLEAN_SOURCES:
        if not folder.is_dir():
            continue
        files = sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".png"))
        take = min(len(files), count // len(CLEAN_SOURCES))
        chosen += [files[i] for i in sorted(rng.choice(len(files), take, replace=False))]
    return chosen


def run_clean(path: str) -> Tally:
    """False redaction on one real image: area blacked out, and what was there."""
    from PIL import Image

    from medlens.privacy import redact_burned_in_text

    with Image.open(path) as image:
        pixels = np.asarray(image.convert("L"))
    tally = Tally(clean_images=1)
    start = time.perf_counter()
    redacted, regions = redact_burned_in_text(pixels)
    tally.clean_seconds = time.perf_counter() - start
    changed = _blacked(pixels, np.asarray(redacted))
    tally.clean_area.append(float(changed.mean()))
    tally.clean_touched += bool(changed.any())
    for region in regions:
        box = (region.y0, region.y1, region.x0, region.x1)
        read = re.sub(r"\s+", " ", attacker_reads(pixels, box, region.rotation)).strip()
        tally.clean_removed.append(read[:24] or "(nothing readable)")
    return tally


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=200)
    parser.add_argument("--clean-images", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--backgrounds", default=str(DEFAULT_BACKGROUNDS) if DEFAULT_BACKGROUNDS.is_dir() else None
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    total = Tally()
    wall = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        jobs = [pool.submit(run_study, i, args.seed, args.backgrounds) for i in range(args.studies)]
        jobs += [pool.submit(run_clean, p) for p in clean_images(args.clean_images, args.seed)]
        for job in jobs:
            total.add(job.result())
    wall = time.perf_counter() - wall

    def pct(a: int, b: int) -> str:
        return f"{100 * a / max(b, 1):.2f}% ({a}/{b})"

    before, after = total.burned_readable_before, total.burned_readable_after
    print(
        f"studies: {args.studies} (seed {args.seed}, backgrounds: "
        f"{'VQA-RAD radiographs' if args.backgrounds else 'synthetic'}, workers {args.workers})"
    )
    print(
        f"header attributes removed:                {pct(total.header_removed, total.header_total)}"
    )
    print(f"burned-in strings, strong attacker:       {total.burned_total}")
    print(f"  (a) readable before redaction:          {pct(before, total.burned_total)}")
    print(f"  (b) still readable after:               {pct(after, before)}")
    print(f"      not recoverable (1 - b):            {pct(before - after, before)}")
    print(
        f"  (c) ink >= 95% covered:                 {pct(total.burned_covered, total.burned_total)}"
    )
    print(
        f"  area blacked out outside text boxes:    {100 * float(np.mean(total.outside_area)):.2f}%"
    )
    if total.clean_images:
        area = np.array(total.clean_area)
        print(f"real images without synthetic text:       {total.clean_images} (VQA-RAD, SLAKE)")
        print(
            f"  (d) area blacked out: mean {100 * area.mean():.2f}%, median "
            f"{100 * float(np.median(area)):.2f}%, max {100 * area.max():.2f}%"
        )
        print(
            f"  images touched:                         {pct(total.clean_touched, total.clean_images)}"
        )
        print(
            f"  ms per image (1 worker):                "
            f"{1000 * total.clean_seconds / total.clean_images:.0f}"
        )
        removed = Counter(total.clean_removed).most_common(12)
        print(f"  read inside removed boxes: {', '.join(f'{t!r} x{n}' for t, n in removed)}")
    print(f"free-text PHI tokens removed:             {pct(total.text_removed, total.text_total)}")
    print(
        f"clinical terms kept:                      {pct(total.clinical_kept, total.clinical_total)}"
    )
    print(
        f"files per second (de-id only, 1 worker):  {total.files / max(total.seconds, 1e-9):.2f} "
        f"[{total.files} files, {total.seconds:.1f} s]; wall {wall:.0f} s"
    )
    for miss, count in Counter(total.misses).most_common(15):
        print(f"  miss x{count}: {miss}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
