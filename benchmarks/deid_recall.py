"""De-identification recall and precision on generated studies with known PHI, and false
redaction on real images that carry no PHI.

    python benchmarks/deid_recall.py [--per-kind 6] [--kinds speckle,doppler,...]
                                     [--studies 20] [--clean-images 40] [--seed 0]
                                     [--workers N] [--timeout S] [--backgrounds DIR]

**Per background kind** (``medlens.testing.phi.BACKGROUND_KINDS``: VQA-RAD radiographs,
ultrasound speckle, Doppler colour, cine loops, SLAKE CT and MR slices, pathology tiles, dark
and bright fields, rulers and calipers; 1024x768), each image carries four or five PHI lines
and two or three clinical labels, and comes with a DICOM header holding the same patient. One
row per kind:

- header PHI removed (``deidentify_dataset``, every Table E.1-1 attribute filled);
- burned-in PHI strings unreadable to the strong attacker, among those it reads before:
  the attacker knows where each string was drawn and at what angle, crops it with a
  generous margin, turns it upright, upscales 3x and reads it with tesseract (both
  polarities and both top-hat stroke pages) and with PP-OCR's recogniser (both
  polarities), one wrong character allowed in tokens of 6+;
- clinical labels kept (>= 90 % of their ink untouched);
- area changed on the same kind of background without any text (mean / max), for the kinds
  whose backgrounds are free of text: drawn ones, and SLAKE CT/MR slices checked by eye (no
  radiograph is: every VQA-RAD and SLAKE chest radiograph checked shows a watermark, caption,
  side marker or read-out, so that column is empty for radiographs);
- CPU seconds per image (median / max; every worker runs one thread, so these are seconds
  on one core, whatever else the machine runs); a cine loop counts per frame. Each worker
  loads the models before its first image (printed apart: a cost per process, not per image).

``data/deid_text_check.tsv`` records which real images were checked for text by eye, the
verdict and what was seen. Real text-free images (checked SLAKE slices, pydicom's CT/MR,
nibabel's ``anatomical.nii``: area changed, images touched) and real images with text
(pydicom's ultrasound examples, checked VQA-RAD MedPix captures and SLAKE chest radiographs:
area changed, redacted lines by reason, and how many of them, with what share of the changed
area, tesseract reads letters in: a reader independent of PP-OCR, telling whether a change
sits on the image's own text) follow, then ``--studies`` radiograph
studies (a Secondary Capture DICOM and a PNG/JPEG screenshot with PHI on VQA-RAD
backgrounds, and a free-text report: PHI tokens removed by ``scrub_text``, clinical terms
kept).

The detector is called with the study's header as context when it takes one, so the same
script measures the stroke detector that came before (run it with that version's ``src`` on
``PYTHONPATH``); ``--timeout`` stops an image after that many CPU seconds and counts its
strings as still readable.
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
SLAKE = DATA / "slake" / "Slake1.0"
TEXT_CHECK = Path(__file__).resolve().parent / "data" / "deid_text_check.tsv"
"""Real images checked for burned-in text by eye: source, image, verdict, what was seen."""


@dataclass
class Tally:
    kind: str = ""
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
    labels_total: int = 0
    labels_kept: int = 0
    image_seconds: list[float] = field(default_factory=list)
    timeouts: int = 0
    reasons: list[str] = field(default_factory=list)
    redacted_lines: int = 0
    lines_on_text: int = 0
    """Redacted lines of an image with real text that tesseract reads text in."""
    share_on_text: list[float] = field(default_factory=list)
    """Share of the changed area of an image with real text that lies on such lines."""

    def add(self, other: Tally) -> None:
        for name, value in vars(other).items():
            if name == "kind":
                continue
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
    import glob

    import tesserocr

    folders = [os.environ.get("TESSDATA_PREFIX", "")]
    folders += sorted(glob.glob("/usr/share/tesseract-ocr/*/tessdata"), reverse=True)
    folders += ["/usr/share/tessdata", "/usr/local/share/tessdata"]
    found = next(f for f in folders if f and Path(f, "eng.traineddata").is_file())
    return tesserocr.PyTessBaseAPI(
        path=found.rstrip("/") + "/", lang="eng", psm=tesserocr.PSM.SINGLE_LINE
    )


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
    read.append(_recogniser_reads(np.asarray(page)))
    return " ".join(read)


@lru_cache(maxsize=1)
def _attacker_recogniser() -> Any:
    """PP-OCR's recogniser with RapidOCR's own settings (one thread), not medlens's: what
    the detector changes in its engine (input widths, say) never changes the attacker."""
    import rapidocr

    return rapidocr.RapidOCR(
        params={
            "Global.log_level": "error",
            "EngineConfig.onnxruntime.intra_op_num_threads": 1,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        }
    )


def _recogniser_reads(page: np.ndarray) -> str:
    """What PP-OCR's recogniser (the strongest reader at hand) reads in an upright crop, as it
    is and inverted; empty where RapidOCR is not installed (the detector before issue 12)."""
    try:
        reader = _attacker_recogniser()
    except ImportError:
        return ""
    out = []
    for crop in (page, 255 - page):
        rgb = np.stack([crop] * 3, axis=-1) if crop.ndim == 2 else crop[..., :3]
        result = reader(
            np.ascontiguousarray(rgb[..., ::-1], dtype=np.uint8),
            use_det=False,
            use_cls=False,
            use_rec=True,
        )
        out += [str(t) for t in (result.txts or ())]
    return " ".join(out)


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


def score_labels(
    original: np.ndarray, redacted: np.ndarray, labels: list[Any], tally: Tally
) -> None:
    """A clinical label is kept when at least 90 % of its ink is untouched."""
    changed = _blacked(original, redacted)
    for label in labels:
        tally.labels_total += 1
        if changed[label.mask].mean() <= 0.1:
            tally.labels_kept += 1
        else:
            tally.misses.append(f"label removed: {label.text}")


class _TimeUp(Exception):
    pass


def _redact(pixels: np.ndarray, ds: Any, timeout: float) -> tuple[np.ndarray, list[Any], float]:
    """Redact one image or (frames, rows, cols[, 3]) stack with the study's header as context
    (when the detector takes one: the stroke detector before issue 12 does not), under a
    ``timeout`` of CPU seconds (``_TimeUp``); returns the result, its lines and the CPU seconds
    it took (every worker runs one thread, so CPU seconds are seconds on one core)."""
    import inspect
    import signal

    from medlens.privacy import pixels as px
    from medlens.privacy.studies import redact_slices

    def stop(signum: int, frame: Any) -> None:
        raise _TimeUp

    signal.signal(signal.SIGPROF, stop)
    signal.setitimer(signal.ITIMER_PROF, timeout)  # CPU time, as the figures
    start = time.process_time()  # CPU seconds: the shared machine's load does not count
    try:
        stack = pixels.ndim == 4 or (pixels.ndim == 3 and pixels.shape[-1] != 3)
        if "identifiers" in inspect.signature(px.redact_burned_in_text).parameters:
            from medlens.privacy.labels import Identifiers

            ids = Identifiers.from_dataset(ds) if ds is not None else None
            if stack:
                out, _, lines = redact_slices(pixels, None, identifiers=ids)
                return out, lines, time.process_time() - start
            image, found = px.redact_burned_in_text(pixels, identifiers=ids)
        elif stack:
            out, _ = redact_slices(pixels, None)
            return out, [], time.process_time() - start
        else:
            image, found = px.redact_burned_in_text(pixels)
        return np.asarray(image), list(found), time.process_time() - start
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)


def checked(verdict: str) -> list[Path]:
    """The real images of :data:`TEXT_CHECK` with ``verdict`` ("text-free" or "text") that
    are here."""
    folders = {"slake": SLAKE / "imgs", "vqa-rad": DEFAULT_BACKGROUNDS}
    out = []
    for line in TEXT_CHECK.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        source, image, found, _what = line.split("\t")
        path = folders[source] / image
        if found == verdict and path.is_file():
            out.append(path)
    return out


def _slake_modality() -> dict[str, str]:
    import json

    out: dict[str, str] = {}
    for split in ("train", "validate", "test"):
        if (SLAKE / f"{split}.json").is_file():
            for row in json.loads((SLAKE / f"{split}.json").read_text()):
                out[row["img_name"]] = row.get("modality", "")
    return out


NO_TEXT_FREE_BACKGROUND = frozenset({"radiograph"})
"""Kinds without real backgrounds checked free of text (their text-free twin is skipped)."""


def kind_sources() -> dict[str, list[Path]]:
    """Real images for the kinds that have them: VQA-RAD radiographs (MedPix captures with
    their own text; the PHI is burned in beside it), SLAKE CT and MR slices checked free of
    text (:data:`TEXT_CHECK`)."""
    out: dict[str, list[Path]] = {}
    if DEFAULT_BACKGROUNDS.is_dir():
        out["radiograph"] = sorted(DEFAULT_BACKGROUNDS.glob("*.jpg"))
    modality = _slake_modality()
    free = checked("text-free")
    for name, kind in (("CT", "ct"), ("MRI", "mr")):
        out[kind] = [p for p in free if modality.get(f"{p.parent.name}/{p.name}") == name]
    return out


def run_kind(kind: str, index: int, seed: int, timeout: float) -> Tally:
    """One image of ``kind`` with PHI and labels, and the same kind without text."""
    from medlens.privacy import DeidPolicy, deidentify_dataset
    from medlens.testing.phi import (
        BACKGROUND_KINDS,
        SyntheticImage,
        kind_image,
        make_phi,
        synthetic_dataset,
    )

    # A stable number per kind (str hashes change from process to process).
    rng = np.random.default_rng([seed, index, BACKGROUND_KINDS.index(kind)])
    tally = Tally(kind=kind)
    phi = make_phi(rng)
    sources = kind_sources()
    image = kind_image(kind, phi, rng, sources=sources)
    first = image.pixels[0] if kind == "cine" else image.pixels
    ds, filled = synthetic_dataset(phi, rng, SyntheticImage(first, image.texts))
    out, _ = deidentify_dataset(ds, DeidPolicy(project_key=b"benchmark-key"))
    for tag, value in filled.items():
        tally.header_total += 1
        tally.header_removed += not (tag in out and value in str(out[tag].value))
    try:
        redacted, lines, seconds = _redact(image.pixels, ds, timeout)
    except _TimeUp:
        tally.timeouts += 1
        tally.image_seconds.append(timeout)
        tally.burned_total += len(image.texts)
        tally.burned_readable_before += len(image.texts)
        tally.burned_readable_after += len(image.texts)  # unfinished: nothing was redacted
        tally.labels_total += len(image.labels)
        return tally
    tally.image_seconds.append(seconds / (image.pixels.shape[0] if kind == "cine" else 1))
    tally.reasons += [getattr(line, "reason", "") for line in lines]
    before = image.pixels[0] if kind == "cine" else image.pixels
    after = redacted[0] if kind == "cine" else redacted
    score_image(before, after, image.texts, tally, kind)
    score_labels(before, after, image.labels, tally)
    if kind == "cine":  # every frame must be blacked out wherever any frame was
        changed = np.any([_blacked(image.pixels[k], redacted[k]) for k in range(len(redacted))], 0)
        filled = [
            _blacked(redacted[k], np.full_like(redacted[k], redacted[k].min()))
            for k in range(len(redacted))
        ]
        if any(f[changed].any() for f in filled):
            tally.misses.append("cine: frames redacted differently")
    if kind in NO_TEXT_FREE_BACKGROUND:
        return tally
    clean = kind_image(
        kind, phi, np.random.default_rng([seed, index, 7]), sources=sources, text=False
    )
    try:
        cleaned, _, _ = _redact(clean.pixels, ds, timeout)
        tally.clean_area.append(float(_blacked(clean.pixels, cleaned).mean()))
    except _TimeUp:
        tally.timeouts += 1
        tally.clean_area.append(float("nan"))
    tally.clean_images += 1
    return tally


def _sample(files: list[Path], count: int, rng: np.random.Generator) -> list[str]:
    picked = rng.choice(len(files), min(count, len(files)), replace=False) if files else []
    return [str(files[i]) for i in sorted(picked)]


def real_text_free(count: int, seed: int) -> list[str]:
    """SLAKE slices checked free of text (:data:`TEXT_CHECK`) and pydicom's and nibabel's
    CT/MR test files."""
    chosen = _sample(checked("text-free"), count, np.random.default_rng(seed))
    return chosen + ["pydicom:CT_small.dcm", "pydicom:MR_small.dcm", "nibabel:anatomical.nii"]


def _real_pixels(name: str) -> np.ndarray:
    if name.startswith("pydicom:"):
        import pydicom
        from pydicom.data import get_testdata_file

        ds = pydicom.dcmread(get_testdata_file(name.split(":", 1)[1]))
        array = ds.pixel_array
        if ds.PhotometricInterpretation.startswith("YBR"):
            from pydicom.pixels.processing import convert_color_space

            array = convert_color_space(array, ds.PhotometricInterpretation, "RGB")
        return np.asarray(array[0] if array.ndim == 4 else array)
    if name.startswith("nibabel:"):
        import nibabel
        from nibabel.testing import data_path

        volume = np.asarray(nibabel.load(os.path.join(data_path, name.split(":", 1)[1])).dataobj)
        return np.asarray(volume[:, :, volume.shape[2] // 2], np.float32)
    from PIL import Image

    with Image.open(name) as image:
        return np.asarray(image.convert("L"))


def run_real(name: str, timeout: float, own_text: bool = False) -> Tally:
    """What redaction does to one real image: area changed, lines and their reasons; with
    ``own_text`` (an image with real text) also which redacted lines tesseract reads text
    in and the share of the changed area on them."""
    tally = Tally(kind=name, clean_images=1)
    pixels = _real_pixels(name)
    try:
        redacted, lines, seconds = _redact(pixels, None, timeout)
    except _TimeUp:
        tally.timeouts += 1
        tally.clean_area.append(float("nan"))
        return tally
    tally.image_seconds.append(seconds)
    changed = _blacked(pixels, redacted)
    tally.clean_area.append(float(changed.mean()))
    tally.clean_touched += bool(changed.any())
    tally.reasons += [getattr(line, "reason", "redacted") for line in lines]
    if own_text:
        on_text = np.zeros(changed.shape, bool)
        for line in lines:
            if getattr(line, "redact", True):
                box = (line.y0, line.y1, line.x0, line.x1)
                tally.redacted_lines += 1
                if tesseract_sees_text(pixels, box):
                    tally.lines_on_text += 1
                    on_text[line.y0 : line.y1, line.x0 : line.x1] = True
        tally.share_on_text.append(float((changed & on_text).sum() / max(1, changed.sum())))
    return tally


def tesseract_sees_text(image: np.ndarray, box: tuple[int, int, int, int]) -> bool:
    """Whether tesseract, a reader independent of PP-OCR, reads a letter or digit at
    confidence 60 or more in ``box`` (y0, y1, x0, x1) of the unredacted image: the crop
    upscaled 3x, as it is and inverted, read as one line."""
    from PIL import Image, ImageOps

    grey = to_grey8(image)
    y0, y1, x0, x1 = box
    crop = Image.fromarray(grey[y0:y1, x0:x1])
    crop = crop.resize((crop.width * 3, crop.height * 3), Image.Resampling.LANCZOS)
    api = _attacker()
    for page in (crop, ImageOps.invert(crop)):
        api.SetImage(page)
        api.Recognize()
        words = zip(api.GetUTF8Text().split(), api.AllWordConfidences())
        if any(any(ch.isalnum() for ch in word) and conf >= 60 for word, conf in words):
            return True
    return False


def to_grey8(image: np.ndarray) -> np.ndarray:
    from medlens.privacy.pixels import to_grey8 as grey8

    return grey8(image)


def run_study(index: int, seed: int, backgrounds: str | None) -> Tally:
    from medlens.privacy import DeidPolicy, deidentify_dataset, redact_burned_in_text, scrub_text
    from medlens.testing.phi import (
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
    tally.seconds = time.process_time() - start
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


def real_with_text(count: int, seed: int) -> list[str]:
    """pydicom's two ultrasound examples and ``count`` images checked to carry text
    (:data:`TEXT_CHECK`), half VQA-RAD MedPix captures (watermark, uploader caption,
    markers, window read-outs), half SLAKE chest radiographs (side markers, "PORTABLE")."""
    names = ["pydicom:examples_rgb_color.dcm", "pydicom:examples_ybr_color.dcm"]
    rng = np.random.default_rng(seed + 1)
    text = checked("text")
    for source in ("vqa-rad", "slake"):
        names += _sample([p for p in text if source in str(p).lower()], (count + 1) // 2, rng)
    return names[: 2 + count]


def _warm() -> None:
    """Load the detector, classifier and recogniser in this worker before any image is
    timed (once per process; ``--workers`` processes pay it once each)."""
    from medlens.privacy import pixels as px

    start = time.process_time()
    px.redact_burned_in_text(_warm_page())
    print(f"models loaded in {time.process_time() - start:.2f} CPU-s", flush=True)


def _warm_page() -> np.ndarray:
    from PIL import Image, ImageDraw

    page = Image.new("L", (320, 96), 0)
    ImageDraw.Draw(page).text((10, 30), "WARM 123", fill=255)
    return np.asarray(page)


def _pct(a: float, b: float) -> str:
    return f"{100 * a / b:.1f}% ({a}/{b})" if b else "-"


def _seconds(values: list[float]) -> str:
    return f"{np.median(values):.2f} / {max(values):.2f}" if values else "-"


def _area(values: list[float]) -> str:
    area = np.array(values, dtype=float)
    area = area[~np.isnan(area)]
    return f"{100 * area.mean():.2f}% / {100 * area.max():.2f}%" if len(area) else "-"


def main(argv: list[str] | None = None) -> int:
    from medlens.testing.phi import BACKGROUND_KINDS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-kind", type=int, default=6, help="images per background kind")
    parser.add_argument("--kinds", default=",".join(BACKGROUND_KINDS))
    parser.add_argument("--studies", type=int, default=20, help="radiograph studies + reports")
    parser.add_argument("--clean-images", type=int, default=40, help="real text-free images")
    parser.add_argument("--text-images", type=int, default=10, help="real VQA-RAD images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--timeout", type=float, default=600.0, help="CPU seconds per image")
    parser.add_argument(
        "--backgrounds", default=str(DEFAULT_BACKGROUNDS) if DEFAULT_BACKGROUNDS.is_dir() else None
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")  # the attacker's tesseract: one thread
    kinds = [k for k in args.kinds.split(",") if k]
    per_kind: dict[str, Tally] = {k: Tally(kind=k) for k in kinds}
    studies, free = Tally(), Tally()
    wall = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers, initializer=_warm) as pool:
        kind_jobs = [
            (k, pool.submit(run_kind, k, i, args.seed, args.timeout))
            for i in range(args.per_kind)
            for k in kinds
        ]
        clean_jobs = [
            pool.submit(run_real, n, args.timeout)
            for n in real_text_free(args.clean_images, args.seed)
        ]
        text_jobs = [
            pool.submit(run_real, n, args.timeout, True)
            for n in real_with_text(args.text_images, args.seed)
        ]
        study_jobs = [
            pool.submit(run_study, i, args.seed, args.backgrounds) for i in range(args.studies)
        ]
        for kind, job in kind_jobs:
            per_kind[kind].add(job.result())
        for job in clean_jobs:
            free.add(job.result())
        text_results = [job.result() for job in text_jobs]
        for job in study_jobs:
            studies.add(job.result())
    wall = time.perf_counter() - wall

    print(f"per background kind: {args.per_kind} images each, 1024x768, seed {args.seed}")
    print(
        "| kind | header PHI removed | burned-in PHI unreadable (strong attacker) "
        "| clinical labels kept | text-free area changed (mean / max) | CPU s per image (median / max) |"
    )
    print("|---|---|---|---|---|---|")
    total = Tally()
    for kind in kinds:
        t = per_kind[kind]
        total.add(t)
        before, after = t.burned_readable_before, t.burned_readable_after
        note = f" ({t.timeouts} timed out at {args.timeout:.0f} s)" if t.timeouts else ""
        clean = (
            "no text-free background" if kind in NO_TEXT_FREE_BACKGROUND else _area(t.clean_area)
        )
        print(
            f"| {kind} | {_pct(t.header_removed, t.header_total)} "
            f"| {_pct(before - after, before)} | {_pct(t.labels_kept, t.labels_total)} "
            f"| {clean} | {_seconds(t.image_seconds)}{note} |"
        )
    before, after = total.burned_readable_before, total.burned_readable_after
    print(
        f"| all | {_pct(total.header_removed, total.header_total)} | {_pct(before - after, before)} "
        f"| {_pct(total.labels_kept, total.labels_total)} | {_area(total.clean_area)} "
        f"| {_seconds(total.image_seconds)} |"
    )
    print(f"PHI strings readable before redaction: {_pct(before, total.burned_total)}")
    print(f"line decisions: {dict(Counter(total.reasons).most_common())}")
    print(
        f"real text-free images (SLAKE checked by eye, pydicom CT/MR, nibabel anatomical.nii): "
        f"{free.clean_images}, area changed mean / max {_area(free.clean_area)}, touched "
        f"{_pct(free.clean_touched, free.clean_images)}, s per image {_seconds(free.image_seconds)}"
    )
    print(
        "real images with text (area changed; lines redacted by reason; redacted lines "
        "tesseract reads text in; share of the changed area on them):"
    )
    for t in text_results:
        name = t.kind if t.kind.startswith("py") else "/".join(Path(t.kind).parts[-2:])
        share = f"{100 * t.share_on_text[0]:.0f}%" if t.share_on_text else "-"
        print(
            f"  {name}: area {_area(t.clean_area)}, {dict(Counter(t.reasons))}, on text "
            f"{_pct(t.lines_on_text, t.redacted_lines)}, changed area on text {share}, "
            f"{_seconds(t.image_seconds)} s"
        )
    if args.studies:
        before, after = studies.burned_readable_before, studies.burned_readable_after
        print(
            f"radiograph studies ({args.studies}): header {_pct(studies.header_removed, studies.header_total)}, "
            f"burned-in unreadable {_pct(before - after, before)}, free-text PHI removed "
            f"{_pct(studies.text_removed, studies.text_total)}, clinical terms kept "
            f"{_pct(studies.clinical_kept, studies.clinical_total)}"
        )
    print(f"wall {wall:.0f} s on {args.workers} workers")
    for miss, count in Counter(total.misses + studies.misses).most_common(15):
        print(f"  miss x{count}: {miss}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
