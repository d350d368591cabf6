"""Burned-in text: find every text line with a trained detector, read it, black out the lines
that identify the patient, keep the clinical labels.

1. **Detect and read** (:mod:`medlens.privacy.ocr`): PP-OCR's text detector and recogniser,
   trained on scene and document text, find lines at any angle (90/180/270 degrees and
   skewed), light on dark and dark on light, coloured overlays, 7-40 px glyphs. Each image
   is read as it is (other depths on a stretched 8-bit page) and on a second page: grey
   images smoothed (speckle hides lines from the detector, :func:`smoothed_page`), colour
   images as their colour residual (text on stained tissue or Doppler flow,
   :func:`colour_residual_page`); the lines of both are united (a box on one page that runs
   two lines together gives way to the other page's), pieces of one line joined (the
   detector splits a line down a column at its hyphens), and each is read once. Where the
   detector's map shows a line too small for it to box (7-px glyphs), that region is
   detected again at twice the scale.
2. **Decide** (:mod:`medlens.privacy.labels`): a line goes when it shows one of the study's
   own header values, is shaped like PHI or a name, or is not recognisably clinical; clinical
   labels ("LIVER L", "SUPINE", depth and gain read-outs, caliper values, ruler numbers) stay,
   unless ``redact_all``. A short line the rules cannot place, or a two-letter code, is read
   again first (:func:`medlens.privacy.ocr.second_reads`: its other page, its box looked
   along, tesseract as a second reader) and kept only on a confident clinical read. Each
   line keeps its decision, reason, box and a keyed hash of its text (never the text).
   A redacted line with a clinical word at an end that stands a wide blank apart from the
   PHI (a side marker boxed with the DOB line beside it) is cut in two: the label is kept
   (:func:`_labels_apart`).
3. **Redact**: each line to redact (but one that showed a header ID or date whole) is first
   grown along its axis over the glyphs the recogniser reads beyond the detector's box
   (:func:`medlens.privacy.ocr.extend_line`: the box ends early where the line runs onto a
   background of its own grey), then by a margin
   of a third of its height (anti-aliased edges, accents), cut back where it runs into a
   kept line's box (never inside its own: :func:`clear_of`), and its axis-aligned hull is
   filled with the image minimum.

Each image has a budget of recogniser passes (:attr:`DetectorSettings.reading_budget`,
counted in work, not seconds: the same image gets the same regions on any machine):
detection always runs, lines it leaves unread are redacted unread, lines to redact not yet
grown are grown blindly, and the study is marked for review ("reading-budget").

A trained detector replaced the stroke-width heuristics of earlier versions (medlens issue
12): they were tuned on radiographs and read ultrasound speckle, Doppler colour and brain
texture as letters (minutes per image, half the image blacked out, PHI left readable); no
measurement showed them adding recall over PP-OCR, so none of them stays.

Regions (boxes, decisions and keyed text hashes, never pixels or text) are cached by a keyed
hash of the pixels, the detector's settings and the header context under
``$MEDLENS_HOME/cache/text-regions``, so asking about the same image again does not read it
again.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import math
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medlens.errors import ImageTooLargeError, PrivacyError

if TYPE_CHECKING:
    from PIL import Image

    from medlens.privacy.labels import Identifiers, LineDecision
    from medlens.privacy.ocr import OcrLine, ReadingBudget

MAX_OCR_PIXELS = 64_000_000
"""Above this, detection would take minutes and gigabytes; such images are refused."""

DETECTOR_VERSION = "ppocr-4"
"""Part of every cache key: a new detector never reuses an old one's regions."""


@dataclass(frozen=True)
class TextRegion:
    """One text line found in the image: the rectangle (pixel coordinates, end-exclusive,
    margin included) that is blacked out when ``redact`` is set, and why."""

    x0: int
    y0: int
    x1: int
    y1: int
    rotation: int
    """90 when the line runs along the columns (text drawn at 90/270 degrees), else 0."""
    confidence: float
    """The recogniser's confidence (0-1) in what it read."""
    chars: int
    """Number of letters and digits read (the text itself is never kept)."""
    redact: bool = True
    reason: str = ""
    """Why (:class:`medlens.privacy.labels.LineDecision`): "header:PatientName", "phi:DATE",
    "unrecognised", "all-text", "region:<recipe>" for a fixed region; "clinical" when kept."""
    text_hash: str = ""
    """A keyed hash (HMAC-SHA256 under the project key, 16 hex digits) of the normalised
    text, so two audits can tell the same line without holding it."""
    hurried: bool = False
    """The reading budget ran out before this line was read ("reading-budget") or looked along
    for more of it (its box then grown blindly by :data:`medlens.privacy.ocr.EXTEND`
    heights at each end): the study needs review."""

    def audit(self) -> dict[str, object]:
        """The line as an audit entry: box, decision, reason, confidence, keyed text hash."""
        return {
            "box": [self.x0, self.y0, self.x1, self.y1],
            "redacted": self.redact,
            "reason": self.reason,
            "confidence": self.confidence,
            "text_hash": self.text_hash,
        }


READING_BUDGET = 160.0
"""Recogniser passes (:class:`medlens.privacy.ocr.ReadingBudget`) a 1024x768 image may take:
2.5 times the most an ordinary screen took (17-34 passes on generated screens of every
background kind, up to 64 on VQA-RAD radiographs with captions, 36-55 on pydicom's three
ultrasound screens), about 3 CPU-s of reading on one core past the 1.2-1.7 s detection
takes. What it bounds is the image that reads as hundreds of lines."""


@dataclass(frozen=True)
class DetectorSettings:
    """What decides the regions found; all of it goes into the cache key."""

    min_score: float = 0.5
    """Recogniser confidence below which a detected line is texture, not text."""
    min_chars: int = 1
    """Lines reading fewer letters and digits are ignored (arrows, tick marks)."""
    max_height: float = 0.2
    """A "line" taller than this share of the image's short side is anatomy."""
    margin: float = 0.34
    """Redaction margin around a line, as a share of its height."""
    threads: int = 1
    """ONNX Runtime threads per image: parallelism belongs to the caller (``--workers``)."""
    reading_budget: float = READING_BUDGET
    """Recogniser passes (:class:`medlens.privacy.ocr.ReadingBudget`) one 1024x768 image
    may take, scaled with its pixel count."""


BUDGET_PIXELS = 1024 * 768
"""The image size :attr:`DetectorSettings.reading_budget` is for."""


def to_grey8(image: np.ndarray | Image.Image) -> np.ndarray:
    """A 2D uint8 view: colour averaged, other depths stretched between their 0.1 and 99.9
    percentiles, so CT numbers or 16-bit ultrasound become a visible page."""
    from PIL import Image as PILImage

    if isinstance(image, PILImage.Image):
        image = np.asarray(
            image.convert("L") if image.mode not in ("L", "I;16", "I", "F") else image
        )
    array = np.asarray(image)
    if array.ndim == 3:
        array = array[..., :3].mean(axis=-1)
    if array.ndim != 2:
        raise PrivacyError(f"Expected one 2D image for text detection, got shape {array.shape}.")
    if array.dtype == np.uint8:
        return array
    values = array.astype(np.float32)
    lo, hi = np.percentile(values, [0.1, 99.9])
    if hi <= lo:
        return np.zeros(values.shape, np.uint8)
    return np.asarray(np.clip((values - lo) / (hi - lo), 0, 1) * 255, dtype=np.uint8)


def colour_residual_page(image: np.ndarray, *, colours: int = 3) -> np.ndarray | None:
    """How far each pixel's colour is from the nearest of the image's ``colours`` dominant
    colours (Lloyd's k-means on a fixed sample of pixels), or None for grey images and colour
    images without colour. Stained tissue is a few colours (stroma, nuclei, gaps) and Doppler
    a few more (grey speckle, red and blue flow): their texture goes flat here, while text in
    any colour the image does not otherwise have (yellow on pink, black on purple, white on
    flow) stands out, also where the luminance of ink and tissue is the same. Distances are
    RGB units times two (128 and more is white). On the generator's pathology tiles the
    detector finds on this page all 37 burned-in strings it finds 18 of on the colour
    saturation page that came before it, and 3 of on the image itself."""
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[-1] < 3 or array.dtype != np.uint8:
        return None
    rgb = array[..., :3]
    if int((rgb.max(axis=-1) - rgb.min(axis=-1)).max()) < 16:
        return None
    pixels = rgb.reshape(-1, 3).astype(np.float32)
    rng = np.random.default_rng(0)
    sample = pixels[rng.choice(len(pixels), min(len(pixels), 4096), replace=False)]
    centres = sample[rng.choice(len(sample), colours, replace=False)]
    for _ in range(12):
        nearest = ((sample[:, None] - centres[None]) ** 2).sum(-1).argmin(axis=1)
        centres = np.stack(
            [
                sample[nearest == k].mean(axis=0) if (nearest == k).any() else centres[k]
                for k in range(colours)
            ]
        )
    distance = np.full(len(pixels), np.inf, np.float32)
    for centre in centres:
        distance = np.minimum(distance, ((pixels - centre) ** 2).sum(axis=-1))
    page = np.sqrt(distance).reshape(rgb.shape[:2]) * 2
    return np.asarray(np.clip(page, 0, 255), dtype=np.uint8)


def smoothed_page(image: np.ndarray) -> np.ndarray:
    """The image blurred by a Gaussian of one pixel: ultrasound speckle and noise, whose
    grain the detector takes for a page of tiny glyphs (it then misses the real line over
    it), fade, while strokes of 7 px glyphs and larger survive."""
    from scipy import ndimage as ndi

    array = np.asarray(image)
    sigma = (1.0, 1.0, 0.0) if array.ndim == 3 else 1.0
    return np.asarray(ndi.gaussian_filter(array.astype(np.float32), sigma)).astype(array.dtype)


def pages(image: np.ndarray) -> list[np.ndarray]:
    """What the detector reads of one image: the image and, for colour images, its colour
    residual page, else its smoothed page. (On colour images smoothing adds no line: on the
    generator's Doppler and pathology images, image + residual found 56 of 56 strings and
    image + smoothed + saturation 44; adding the smoothed page to image + residual raised the
    median from 1.2 to 1.7 CPU-s per image for no string more.)"""
    residual = colour_residual_page(image)
    return [image, smoothed_page(image) if residual is None else residual]


def overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over the smaller of two (x0, y0, x1, y1) boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return w * h / max(1, smaller)


def text_hash(text: str, key: bytes) -> str:
    """16 hex digits of HMAC-SHA256(key, normalised text)."""
    from medlens.privacy.labels import normalise

    return hmac.new(key, normalise(text).encode(), hashlib.sha256).hexdigest()[:16]


def _decide(
    line: OcrLine,
    settings: DetectorSettings,
    identifiers: Identifiers | None,
    redact_all: bool,
    limit: float,
) -> LineDecision | None:
    """What happens to one line: redacted unread past the time budget, ignored when it is
    texture (low confidence, too few letters) or anatomy (taller than ``limit``), else as
    :func:`medlens.privacy.labels.classify_line` decides."""
    from medlens.privacy.labels import LineDecision, classify_line

    if line.height > limit:
        return None
    if not line.read:
        return LineDecision(True, "reading-budget")
    if (
        line.score < settings.min_score
        or sum(ch.isalnum() for ch in line.text) < settings.min_chars
    ):
        return None
    return classify_line(line.text, identifiers, redact_all=redact_all)


def unsettled(decision: LineDecision) -> LineDecision:
    """The decision on a line whose first read was a guess (``needs_second_reading``) when
    the reading budget leaves no second reading to settle it: redacted. A two-letter code
    kept on its first read is as often a three-letter name read short ("OT" of "OTT"), and a
    line is never kept for want of reading ("OTT" came through when a budget ran out between
    the two readings)."""
    from medlens.privacy.labels import LineDecision

    return decision if decision.redact else LineDecision(True, "reading-budget")


def _find_regions(
    image: np.ndarray,
    settings: DetectorSettings,
    identifiers: Identifiers | None,
    redact_all: bool,
    key: bytes,
    budget: ReadingBudget,
) -> list[TextRegion]:
    from medlens.privacy.labels import needs_second_reading, second_reading
    from medlens.privacy.ocr import bgr_page, extend_line, read_pages, second_reads, stretch

    rows, cols = image.shape[:2]
    page_list = pages(image)
    limit = settings.max_height * min(rows, cols)
    lines = read_pages(page_list, threads=settings.threads, budget=budget, tallest=limit)
    views = [bgr_page(page) for page in page_list]
    decided = []
    for line, decision in (
        (line, _decide(line, settings, identifiers, redact_all, limit)) for line in lines
    ):
        if decision is None or redact_all or budget.exhausted:
            decided.append((line, decision))
        else:
            decided += _labels_apart(line, decision, views, lines, identifiers, settings.threads)
    lines = [line for line, _ in decided]
    redacted = [line for line, decision in decided if decision is not None and decision.redact]

    def grow(line: OcrLine) -> tuple[OcrLine, bool]:
        """``line`` looked along for more of it, or stretched blindly once the budget is
        spent."""
        if budget.exhausted:
            return stretch(line), True
        others = [other for other in lines if other is not line]
        return extend_line(views[0], line, others, threads=settings.threads), False

    grown: list[tuple[OcrLine, LineDecision, bool]] = []  # line, decision, hurried
    for first, decision in decided:
        if decision is None:
            continue
        line, hurried = first, not first.read
        # Lines are grown to their end unless they showed a header ID or date whole, lie
        # half inside a longer line that goes too (a word of it, found on another page), or
        # were boxed at twice the scale (their boxes end with their glyphs).
        inside = any(
            overlap(line.box, other.box) >= 0.5 and _letters(other.text) > _letters(line.text)
            for other in redacted
        )
        whole = identifiers is not None and identifiers.whole_value(decision.reason)
        growable = first.read and not first.small and not inside and not whole
        if decision.redact and growable:
            line, hurried = grow(first)
        if first.read and needs_second_reading(first.text, decision):
            if hurried or budget.exhausted:  # no pass left to settle the guess
                stretched = stretch(first) if line is first and growable else line
                grown.append((stretched, unsettled(decision), True))  # redacted, reviewed
                continue
            reads = second_reads(views, first, line, threads=settings.threads)
            decision, read = second_reading(first, decision, reads, identifiers)
            if read is not None and not decision.redact:
                line = read  # a label read whole: kept over the box it was read in
            elif decision.redact and line is first and growable:
                line, hurried = grow(first)
        grown.append((line, decision, hurried))
    kept = [line.box for line, decision, _ in grown if not decision.redact]
    regions: list[TextRegion] = []
    for line, decision, hurried in grown:
        x0, y0, x1, y1 = line.box
        pad = max(2, round(settings.margin * line.height))
        box = (max(0, x0 - pad), max(0, y0 - pad), min(cols, x1 + pad), min(rows, y1 + pad))
        if decision.redact:
            box = clear_of(box, line.box, kept)
        regions.append(
            TextRegion(
                *box,
                90 if line.vertical else 0,
                round(line.score, 4),
                _letters(line.text),
                decision.redact,
                decision.reason,
                text_hash(line.text, key),
                hurried,
            )
        )
    return regions


LABEL_GAP = 1.2
"""Glyph pitches (the distance from one glyph's centre to the next within the line's
words) of blank from which a label stands apart from the PHI beside it
(:func:`_labels_apart`): a word space is 0.5-0.8 of them, a side marker 25 px from a DOB
line in 24-px glyphs 1.7 (deid_recall --seed 3, bright field)."""


def _labels_apart(
    line: OcrLine,
    decision: LineDecision,
    views: list[np.ndarray],
    lines: list[OcrLine],
    identifiers: Identifiers | None,
    threads: int,
) -> list[tuple[OcrLine, LineDecision]]:
    """A redacted line cut into its PHI and the labels burned beside it
    (:func:`medlens.privacy.labels.labels_beside`) that stand farther from it than
    :data:`LABEL_GAP`, each label kept as a line of its own, cut at the middle of the gap;
    else the line as it is. The detector boxes a side marker 25 px from a DOB line in 24-px
    glyphs with it (or one of its pages does, and that box is taken), and "R DOB ..." went as
    the date, the marker with it. A label that is one of ``lines`` already (boxed alone on
    a page) is not added again. The words are read again along the line
    (:func:`medlens.privacy.ocr.word_spans`) only when its first read has such labels."""
    from medlens.privacy.labels import LineDecision, labels_beside
    from medlens.privacy.ocr import blank_run, part, word_spans

    whole = [(line, decision)]
    if not decision.redact or labels_beside(line.text.split(), identifiers) == (0, 0):
        return whole
    view = views[line.pages[0] if line.pages else 0]
    words = word_spans(view, line, threads=threads)
    head, tail = labels_beside([text for text, _, _ in words], identifiers)
    edges = sorted({0, head, len(words) - tail, len(words)})
    groups = list(itertools.pairwise(edges))
    spans = [(min(w[1] for w in words[i:j]), max(w[2] for w in words[i:j])) for i, j in groups]
    runs = [(w[2] - w[1], len(w[0]) - 1) for w in words if len(w[0]) > 1]
    pitch = sum(r[0] for r in runs) / max(1, sum(r[1] for r in runs))
    forward = len(spans) > 1 and spans[-1][0] > spans[0][0]  # reading runs along the axis
    nearer = [(s[1], t[0]) if forward else (t[1], s[0]) for s, t in itertools.pairwise(spans)]
    gaps = [blank_run(view, line, a, b) for a, b in nearer]
    if len(groups) < 2 or not runs or min(gaps) < LABEL_GAP * pitch:
        return whole
    half = _frame_length(line) / 2
    cuts = [(a + b) / 2 for a, b in nearer]
    ends = [-half if forward else half, *cuts, half if forward else -half]
    out = []
    for k, (i, j) in enumerate(groups):
        text = " ".join(w[0] for w in words[i:j])
        piece = part(line, min(ends[k], ends[k + 1]), max(ends[k], ends[k + 1]), text)
        if (i, j) == (head, len(words) - tail):
            out.append((piece, decision))
        elif not any(overlap(piece.box, other.box) >= 0.5 for other in lines if other is not line):
            out.append((piece, LineDecision(False, "clinical")))
    return out


def _frame_length(line: OcrLine) -> float:
    from medlens.privacy.ocr import _frame

    return _frame(np.asarray(line.corners))[3]


Box = tuple[int, int, int, int]


def _shared(a: Box, b: Box) -> int:
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


def clear_of(box: Box, core: Box, kept: list[Box]) -> Box:
    """``box`` (a line's redaction box: its ``core``, the box the detector drew and the
    look along it grew, plus the margin) cut back on a side where it runs into the box of a
    line that is kept and lies beyond that side (its centre past the core's edge): lines
    burned a few pixels apart ("SUPINE" under the patient's name, "DIST 4.1 cm" under the
    MRN) lose none of a label to a neighbour's margin. The cut stops at the kept box, and
    where the two detector boxes overlap it splits the overlap in proportion to their
    heights: the detector pads each line's ink by a share of its height, so that point lies
    between the two lines' ink. Of the cuts the one that leaves the least of the kept box
    covered is taken (the most area on a tie); a kept box inside ``core`` (a piece of the
    line itself, read on its own) cuts nothing."""
    for other in kept:
        covered = _shared(box, other)
        if not covered:
            continue
        share = _short(core) / max(1, _short(core) + _short(other))
        centre = ((other[0] + other[2]) / 2, (other[1] + other[3]) / 2)
        x0, y0, x1, y1 = box
        cuts = []
        if centre[0] < core[0]:
            edge = other[2] if other[2] <= core[0] else core[0] + (other[2] - core[0]) * share
            cuts.append((max(x0, math.floor(edge)), y0, x1, y1))
        if centre[1] < core[1]:
            edge = other[3] if other[3] <= core[1] else core[1] + (other[3] - core[1]) * share
            cuts.append((x0, max(y0, math.floor(edge)), x1, y1))
        if centre[0] > core[2]:
            edge = other[0] if other[0] >= core[2] else core[2] - (core[2] - other[0]) * share
            cuts.append((x0, y0, min(x1, math.ceil(edge)), y1))
        if centre[1] > core[3]:
            edge = other[1] if other[1] >= core[3] else core[3] - (core[3] - other[1]) * share
            cuts.append((x0, y0, x1, min(y1, math.ceil(edge))))
        best = min(
            cuts,
            key=lambda c: (_shared(c, other), -(c[2] - c[0]) * (c[3] - c[1])),
            default=box,
        )
        if _shared(best, other) < covered:
            box = best
    return box


def _short(box: Box) -> int:
    return min(box[2] - box[0], box[3] - box[1])


def _letters(text: str) -> int:
    return sum(ch.isalnum() for ch in text)


def _cache_key(
    page: np.ndarray, settings: DetectorSettings, context: str, redact_all: bool, key: bytes
) -> str:
    """A keyed hash (HMAC-SHA256 under the project key) of the page, its shape, the
    detector's settings and version, the readers (:func:`medlens.privacy.ocr.readers`: with
    or without tesseract, short lines are decided differently) and the header context:
    without the key nobody can test whether an image they hold was processed here."""
    from medlens.privacy.ocr import readers

    mac = hmac.new(key, digestmod=hashlib.sha256)
    mac.update(
        f"{DETECTOR_VERSION}|{readers()}|{page.shape}|{page.dtype}|"
        f"{sorted(asdict(settings).items())}|{redact_all}|{context}|".encode()
    )
    mac.update(np.ascontiguousarray(page).tobytes())
    return mac.hexdigest()


class RegionCache:
    """Detected text regions by content: one small JSON file of boxes and decisions per
    image under ``folder`` (never pixels, never text), written atomically."""

    def __init__(self, folder: Path, key: bytes) -> None:
        self.folder = Path(folder)
        self.key = key

    def _path(self, digest: str) -> Path:
        return self.folder / digest[:2] / f"{digest}.json"

    def get(self, digest: str) -> list[TextRegion] | None:
        try:
            rows = json.loads(self._path(digest).read_text())
            return [TextRegion(**row) for row in rows]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError):
            return None  # a damaged or older entry is recomputed and rewritten

    def put(self, digest: str, found: list[TextRegion]) -> None:
        path = self._path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps([asdict(r) for r in found]))
        tmp.replace(path)


def detect_text(
    image: np.ndarray | Image.Image,
    *,
    settings: DetectorSettings | None = None,
    cache: RegionCache | None = None,
    identifiers: Identifiers | None = None,
    redact_all: bool = False,
    key: bytes = b"",
) -> list[TextRegion]:
    """Every text line burned into ``image``, each with its redaction box and decision.
    ``identifiers`` are the study's own header values (:class:`Identifiers`), ``key`` keys
    the text hashes (the cache's key when a cache is given)."""
    settings = settings or DetectorSettings()
    array = np.asarray(image)
    if array.ndim not in (2, 3):
        raise PrivacyError(f"Expected a 2D grey or colour image, got shape {array.shape}.")
    rows, cols = array.shape[:2]
    if rows * cols > MAX_OCR_PIXELS:
        raise ImageTooLargeError(
            f"Image of {rows}x{cols} pixels is above the OCR cap of {MAX_OCR_PIXELS:,}; "
            "split it into tiles, or de-identify it with ocr='never' if it carries no text."
        )
    key = cache.key if cache is not None else key
    context = identifiers.fingerprint() if identifiers else ""
    digest = _cache_key(array, settings, context, redact_all, key) if cache is not None else ""
    if cache is not None:
        cached = cache.get(digest)
        if cached is not None:
            return cached
    from medlens.privacy.ocr import reading_budget

    passes = settings.reading_budget * max(1.0, rows * cols / BUDGET_PIXELS)
    with reading_budget(passes) as budget:
        found = _find_regions(array, settings, identifiers, redact_all, key, budget)
    if cache is not None:
        cache.put(digest, found)
    return found


def redaction_mask(shape: tuple[int, ...], regions: list[TextRegion]) -> np.ndarray:
    """The union of the boxes of the regions to redact."""
    out = np.zeros(shape[:2], bool)
    for r in regions:
        if r.redact:
            out[r.y0 : r.y1, r.x0 : r.x1] = True
    return out


def fixed_regions(
    boxes: list[tuple[int, int, int, int]], shape: tuple[int, ...], reason: str
) -> list[TextRegion]:
    """Regions to redact whatever is read there, (x0, y0, x1, y1) clipped to the image: a
    recipe's known text areas for one device (:mod:`medlens.privacy.recipe`)."""
    rows, cols = shape[:2]
    return [
        TextRegion(max(0, x0), max(0, y0), min(cols, x1), min(rows, y1), 0, 1.0, 0, True, reason)
        for x0, y0, x1, y1 in boxes
    ]


def _otsu(values: np.ndarray) -> float:
    """The grey level that best splits ``values`` (uint8) in two classes (Otsu, 1979)."""
    counts = np.bincount(values.ravel(), minlength=256).astype(np.float64)
    weight = np.cumsum(counts)
    mean = np.cumsum(counts * np.arange(256))
    total, grand = weight[-1], mean[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (grand * weight - mean * total) ** 2 / (weight * (total - weight))
    return float(np.nanargmax(np.nan_to_num(between[:-1], nan=-1.0)))


def body_region(image: np.ndarray | Image.Image, *, min_share: float = 0.1) -> np.ndarray:
    """Where the imaged body is: the largest bright component (holes filled) of the image,
    blurred by 2 % of its size and split at Otsu's level, when it covers at least
    ``min_share`` of the image; else nothing. Text lines are thin and far apart, so they
    never make such a component; a radiograph's patient, a CT body outline, an ultrasound
    sector or a pathology tissue does."""
    from scipy import ndimage as ndi

    grey = to_grey8(image)
    step = max(1, max(grey.shape) // 256)
    small = ndi.gaussian_filter(grey[::step, ::step].astype(np.float32), 0.02 * 256)
    page = np.clip(small, 0, 255).astype(np.uint8)
    if int(page.max()) - int(page.min()) < 16:
        return np.zeros(grey.shape, bool)
    labels, count = ndi.label(page > _otsu(page))
    if count == 0:
        return np.zeros(grey.shape, bool)
    sizes = np.bincount(labels.ravel())[1:]
    biggest = int(np.argmax(sizes)) + 1
    if sizes[biggest - 1] < min_share * page.size:
        return np.zeros(grey.shape, bool)
    body = ndi.binary_fill_holes(labels == biggest)
    full = np.repeat(np.repeat(body, step, axis=0), step, axis=1)
    return np.asarray(full[: grey.shape[0], : grey.shape[1]], dtype=bool)


def body_overlap(
    image: np.ndarray | Image.Image, regions: list[TextRegion], *, share: float = 0.5
) -> bool:
    """Whether any region to redact lies for more than ``share`` of its area on the body
    region (:func:`body_region`): text burned over anatomy, or anatomy taken for text,
    either way a person should look."""
    wanted = [r for r in regions if r.redact]
    if not wanted:
        return False
    body = body_region(image)
    if not body.any():
        return False
    for r in wanted:
        window = body[r.y0 : r.y1, r.x0 : r.x1]
        if window.size and float(window.mean()) > share:
            return True
    return False


def redact_burned_in_text(
    pixels: np.ndarray | Image.Image,
    *,
    fill: float | None = None,
    regions: list[TextRegion] | None = None,
    settings: DetectorSettings | None = None,
    cache: RegionCache | None = None,
    identifiers: Identifiers | None = None,
    redact_all: bool = False,
    key: bytes = b"",
) -> tuple[np.ndarray | Image.Image, list[TextRegion]]:
    """Black out the identifying text of one image; returns the new image (same type, dtype
    and shape) and every line found (``redact`` tells which went). ``fill`` defaults to the
    image minimum (black in MONOCHROME2; in MONOCHROME1 it shows white, which hides the text
    just as well)."""
    from PIL import Image as PILImage

    is_pil = isinstance(pixels, PILImage.Image)
    mode = pixels.mode if isinstance(pixels, PILImage.Image) else ""
    if isinstance(pixels, PILImage.Image) and mode not in ("L", "RGB"):
        pixels = pixels.convert("RGB")
    array = np.array(pixels)
    if array.ndim not in (2, 3):
        raise PrivacyError(f"Expected a 2D grey or colour image, got shape {array.shape}.")
    found = (
        detect_text(
            array,
            settings=settings,
            cache=cache,
            identifiers=identifiers,
            redact_all=redact_all,
            key=key,
        )
        if regions is None
        else regions
    )
    out_array = array
    mask = redaction_mask(array.shape, found)
    if mask.any():
        out_array = array.copy()
        out_array[mask] = array.min() if fill is None else fill
    if is_pil:
        image = PILImage.fromarray(out_array)
        return (image.convert(mode) if image.mode != mode else image), found
    return out_array, found
