"""Burned-in text: find text lines, confirm them with OCR, black out the whole line.

Reading a whole radiograph with OCR makes tesseract see words in bone and lung texture, and
blacking those out destroys the image a model is asked about. So detection goes the other way
round, as text detectors for natural scenes do (stroke-width and connected-component methods,
Epshtein et al., CVPR 2010; Neumann & Matas, ACCV 2010):

1. **Strokes**: a morphological top-hat in each polarity (the image minus its grey opening,
   or its closing minus the image) keeps strokes thinner than ``stroke`` pixels that stand
   out from their local background by ``threshold`` grey levels: burned-in annotations are
   that, anatomy mostly is not.
2. **Letters**: connected components of the strokes whose size, fill and stroke width (twice
   the largest distance-transform value inside them) are those of glyphs.
3. **Lines**: letters of similar height that overlap across the line and follow each other
   closely are chained, along rows and along columns (text drawn at 90/270 degrees); a chain
   of three letters or more is a candidate line.
4. **Verification**: only the candidate lines are read, in-process (tesserocr, libtesseract),
   one crop each, levelled by the angle of a line fitted through its letters (text burned in
   a few degrees off the row), upscaled, in both polarities and as its two stroke pages
   (top-hat thresholded black on white, which lifts text off anatomy), in the two
   orientations of its direction, as one text line. A line is text when tesseract reads
   enough letters and digits with enough confidence (more on stroke pages, where texture
   reads as short words), or reads shaped like PHI (a date, an id: the patterns of
   :mod:`medlens.privacy.text`) at lower confidence, or when its letters are so regular (many,
   of one height, on one baseline, close together) that no anatomy makes them; a merged
   line is regular only when all its chains are. A merged line that fails is
   read again piece by piece (the chains it was built from, their letters without
   components far longer than high, their letters of typical size on the fitted baseline,
   and the whole chain in the band those letters span, where glyphs merged with anatomy),
   once more at twice the scale when it fails, and a piece counts only when it is regular
   (its own box goes) or reads shaped like PHI (then the whole merged line goes, since the
   rest of the string is what merged the piece with it). Pieces are cropped across the
   line to the band of their typical letters, and every baseline angle is a robust fit
   through those letters, so anatomy joined to a glyph neither fills the crop nor tilts
   it. (The first reading keeps the whole box: texture cropped that tight reads as short
   words too often.)
5. **Redaction**: the line's box grows along its direction over the letters and stroke ink
   that continue it (glyphs merged into the background that no chain holds), then by a
   margin of half the line height, and is filled with the image minimum, so glyphs OCR
   misread, accents and anti-aliased edges go too.

Colour images are searched twice: on their grey page and on their chroma page (largest
minus smallest channel), where coloured annotations stand out on grey anatomy even when as
bright as the tissue under them.

Regions (boxes only, never pixels or text) are cached by a keyed hash of the pixels and the
detector's settings under ``$MEDLENS_HOME/cache/text-regions``, so asking about the same image
again does not read it again.
"""

from __future__ import annotations

import glob
import hashlib
import hmac
import json
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medlens.errors import ImageTooLargeError, PrivacyError, require

if TYPE_CHECKING:
    from PIL import Image

MAX_OCR_PIXELS = 64_000_000
"""Above this, detection would take minutes and gigabytes; such images are refused."""

DETECTOR_VERSION = "lines-6"
"""Part of every cache key: a new detector never reuses an old one's regions."""

MAX_SKEW = 10.0
"""Degrees: lines fitted steeper than this are read as drawn (see :func:`skew`)."""

Box = tuple[int, int, int, int]
"""(y0, y1, x0, x1) in pixels, end-exclusive."""


@dataclass(frozen=True)
class TextRegion:
    """A rectangle of the image (pixel coordinates, end-exclusive) to black out: one text line
    with its margin."""

    x0: int
    y0: int
    x1: int
    y1: int
    rotation: int
    """The orientation (degrees, counter-clockwise) under which the line read best."""
    confidence: float
    """Tesseract's mean word confidence (0-100) on the line."""
    chars: int
    """Number of alphanumeric characters read (the text itself is never kept)."""


@dataclass(frozen=True)
class DetectorSettings:
    """What decides the regions found; all of it goes into the cache key."""

    stroke: int = 9
    threshold: float = 40.0
    min_letter: int = 6
    max_letter: int = 64
    min_confidence: float = 45.0
    min_chars: int = 3
    min_stroke_chars: int = 5
    """Stroke pages make tesseract read three or four letters into bone texture ("aft",
    "Lee"): there a line needs more."""
    regular_letters: int = 5
    """A chain of this many letters of one height on one baseline is text even unread."""
    phi_confidence: float = 20.0
    """A reading shaped like PHI (a date, an id, a DICOM or titled name: the patterns of
    :mod:`medlens.privacy.text`) confirms a line from this confidence: texture does not read
    as "2023-08-28"."""
    max_aspect: float = 2.5
    """When a line fails, its pieces are read again without components longer than this many
    letter heights: glyphs merged with anatomy into one stroke hide the line from OCR."""


def to_grey8(image: np.ndarray | Image.Image) -> np.ndarray:
    """A 2D uint8 view for detection: colour averaged, values stretched between the 0.1 and
    99.9 percentiles, so CT numbers or 16-bit ultrasound become a visible page."""
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


def chroma_page(image: np.ndarray | Image.Image) -> np.ndarray | None:
    """How coloured each pixel of a colour image is (largest minus smallest channel), stretched
    to 0-255, or None for grey images and colour images without colour. Anatomy is grey in
    nearly every modality, so yellow or green annotations (ultrasound, secondary captures)
    stand out here on a black page even where their brightness matches the tissue under
    them."""
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[-1] < 3 or array.dtype != np.uint8:
        return None
    rgb = array[..., :3]
    chroma = rgb.max(axis=-1) - rgb.min(axis=-1)
    peak = int(chroma.max())
    if peak < 16:
        return None
    return np.asarray(chroma.astype(np.float32) * (255.0 / peak), dtype=np.uint8)


def top_hats(grey: np.ndarray, *, stroke: int = 9) -> tuple[np.ndarray, np.ndarray]:
    """How far each pixel stands out as part of a stroke thinner than ``stroke``: brighter
    than its surroundings (image minus its grey opening) and darker (closing minus image)."""
    from scipy import ndimage as ndi

    values = grey.astype(np.float32)
    size = (stroke, stroke)
    return values - ndi.grey_opening(values, size=size), ndi.grey_closing(
        values, size=size
    ) - values


def stroke_pages(grey: np.ndarray, *, stroke: int = 9, threshold: float = 40.0) -> list[np.ndarray]:
    """The two polarity masks of strokes: bright-on-dark and dark-on-bright."""
    return [hat > threshold for hat in top_hats(grey, stroke=stroke)]


# ------------------------------------------------------------------------------------------
# Letters and lines
# ------------------------------------------------------------------------------------------


def letters(mask: np.ndarray, settings: DetectorSettings) -> np.ndarray:
    """Glyph-like components of a stroke mask as rows (y0, y1, x0, x1): at least
    ``min_letter`` pixels on their long side and at most ``max_letter`` on their short side,
    strokes (twice the largest distance to the background, thickest where strokes meet)
    at most half their long side, not a
    solid block. Blobs of anatomy are as thick as they are long."""
    from scipy import ndimage as ndi

    labels, count = ndi.label(mask, structure=np.ones((3, 3), bool))
    if count == 0:
        return np.zeros((0, 4), np.int64)
    slices = ndi.find_objects(labels)
    boxes = np.array(
        [(s[0].start, s[0].stop, s[1].start, s[1].stop) for s in slices], dtype=np.int64
    )
    h = boxes[:, 1] - boxes[:, 0]
    w = boxes[:, 3] - boxes[:, 2]
    long, short = np.maximum(h, w), np.minimum(h, w)
    area = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    keep = (long >= settings.min_letter) & (long <= 20 * settings.max_letter)
    keep &= (short <= settings.max_letter) & (area >= 6)
    keep &= area <= 0.9 * h * w  # a solid block is not a glyph
    if keep.any():
        width = 2 * ndi.maximum(
            ndi.distance_transform_edt(mask), labels, index=np.flatnonzero(keep) + 1
        )
        thin = np.zeros(count, bool)
        thin[keep] = np.asarray(width) <= np.maximum(3.0, 0.5 * long[keep])
        keep &= thin
    return np.asarray(boxes[keep], dtype=np.int64)


def chain_lines(boxes: np.ndarray, vertical: bool, settings: DetectorSettings) -> list[np.ndarray]:
    """Chains of letters along rows (or columns when ``vertical``): neighbours of similar
    height (within 2.2x) overlapping by half their height across the line and no further apart
    than 1.5 line heights. Returns the member boxes of each chain of ``min_chars`` or more."""
    if len(boxes) == 0:
        return []
    a0, a1, b0, b1 = (2, 3, 0, 1) if vertical else (0, 1, 2, 3)
    across = boxes[:, a1] - boxes[:, a0]
    along = boxes[:, b1] - boxes[:, b0]
    ok = (across >= settings.min_letter // 2 + 2) & (across <= settings.max_letter)
    ok &= along <= 20 * across
    idx = np.flatnonzero(ok)
    if len(idx) == 0:
        return []
    sub = boxes[idx]
    order = np.argsort(sub[:, b0], kind="stable")
    sub, idx = sub[order], idx[order]
    height = sub[:, a1] - sub[:, a0]
    parent = np.arange(len(sub))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    starts = sub[:, b0]
    for i in range(len(sub)):
        reach = sub[i, b1] + 1.5 * height[i]
        hi = int(np.searchsorted(starts, reach, side="right"))
        if hi <= i + 1:
            continue
        js = np.arange(i + 1, hi)
        other = sub[js]
        overlap = np.minimum(sub[i, a1], other[:, a1]) - np.maximum(sub[i, a0], other[:, a0])
        small = np.minimum(height[i], height[js])
        big = np.maximum(height[i], height[js])
        gap = other[:, b0] - sub[i, b1]
        link = (overlap >= 0.5 * small) & (big <= 2.2 * small) & (gap >= -0.3 * small)
        for j in js[link]:
            parent[find(int(j))] = find(i)
    roots = np.array([find(i) for i in range(len(sub))])
    chains = []
    for root in np.unique(roots):
        members = sub[roots == root]
        size = members[:, a1] - members[:, a0]
        length = members[:, b1] - members[:, b0]
        # Joined glyphs count for as many letters as their length allows.
        count = int(np.maximum(1, np.round(length / (0.7 * np.median(size)))).sum())
        if count >= settings.min_chars:
            chains.append(members)
    return chains


def _regular(members: np.ndarray, vertical: bool, settings: DetectorSettings) -> bool:
    """Many separate letters of one height on one baseline, each close behind the last:
    typeset text, not texture. (Ribs around a CT body outline are of one size and in a row
    too, but far apart.)"""
    if len(members) < settings.regular_letters:
        return False
    a0, a1, b0, b1 = (2, 3, 0, 1) if vertical else (0, 1, 2, 3)
    size = (members[:, a1] - members[:, a0]).astype(float)
    median = float(np.median(size))
    tops, bottoms = members[:, a0].astype(float), members[:, a1].astype(float)
    spread = min(
        np.median(np.abs(tops - np.median(tops))), np.median(np.abs(bottoms - np.median(bottoms)))
    )
    order = np.argsort(members[:, b0], kind="stable")
    gaps = members[order[1:], b0] - np.maximum.accumulate(members[order, b1])[:-1]
    return bool(
        np.median(np.abs(size - median)) <= 0.12 * median
        and spread <= 0.12 * median
        and float(np.median(gaps)) <= 0.5 * median
    )


@dataclass(frozen=True)
class _Line:
    """A candidate text line: its box (y0, y1, x0, x1), letter height across the line, whether
    it runs along columns, and whether its letters are regular enough to count as text
    unread."""

    box: Box
    across: int
    vertical: bool
    regular: bool
    angle: float = 0.0
    """Baseline angle (degrees) of a horizontal line, to level it before reading."""
    parts: tuple[_Line, ...] = ()
    """The chains of its letters no longer than ``max_aspect`` heights, read when it fails."""
    band: Box | None = None
    """The box to read it by when it is a piece: across the line only as far as its letters
    of typical size reach, so anatomy merged into a glyph does not fill the crop."""

    @property
    def read_box(self) -> Box:
        return self.band or self.box


# ------------------------------------------------------------------------------------------
# OCR
# ------------------------------------------------------------------------------------------


def tessdata_path() -> str:
    """The folder holding tesseract's ``eng.traineddata``: ``$TESSDATA_PREFIX``, else the
    Debian/Ubuntu and /usr/local locations."""
    candidates = [os.environ.get("TESSDATA_PREFIX", "")]
    candidates += sorted(glob.glob("/usr/share/tesseract-ocr/*/tessdata"), reverse=True)
    candidates += ["/usr/share/tessdata", "/usr/local/share/tessdata"]
    for folder in candidates:
        if folder and Path(folder, "eng.traineddata").is_file():
            return folder.rstrip("/") + "/"
    raise PrivacyError(
        "Burned-in text detection needs tesseract's English model (eng.traineddata), which "
        "was not found. Install it with: apt-get install tesseract-ocr-eng (or set "
        "TESSDATA_PREFIX), or de-identify with ocr='never' if the pixels carry no text."
    )


_LOCAL = threading.local()


def _line_reader() -> Any:
    """One in-process tesseract per thread (the API object is not thread-safe), reading one
    text line (page segmentation mode 7), created once: no process per image."""
    api = getattr(_LOCAL, "api", None)
    if api is None:
        # One thread per engine: OpenMP threads oversubscribe small machines; parallelism
        # belongs to the caller (one file per worker).
        os.environ.setdefault("OMP_THREAD_LIMIT", "1")
        tesserocr: Any = require("tesserocr", "ocr", "Burned-in text detection")
        api = tesserocr.PyTessBaseAPI(
            path=tessdata_path(), lang="eng", psm=tesserocr.PSM.SINGLE_LINE
        )
        _LOCAL.api = api
    return api


def read_line(page: np.ndarray) -> tuple[float, int, float, bool]:
    """(mean confidence, alphanumeric count, alphanumeric share of the non-space characters,
    whether the text is shaped like PHI) of one text line, dark on light, upright. The text
    itself goes no further."""
    from PIL import Image as PILImage

    from medlens.privacy.text import find_phi

    api = _line_reader()
    api.SetImage(PILImage.fromarray(page))
    words = " ".join(api.GetUTF8Text().split())
    text = words.replace(" ", "")
    alnum = sum(ch.isalnum() for ch in text)
    shaped = any(
        sum(ch.isalnum() for ch in words[span.start : span.end]) >= 5
        for span in find_phi(words, names=False)
    )
    return float(api.MeanTextConf()), alnum, alnum / max(1, len(text)), shaped


def _pages(
    grey: np.ndarray, hats: tuple[np.ndarray, np.ndarray], box: Box, pad: int
) -> list[np.ndarray]:
    """The crops of one line to read: the grey crop in both polarities, and each polarity's
    strokes (top-hat above 35% of its peak in the crop) black on white, which lift text off
    anatomy that a grey crop shows as clutter."""
    y0, y1, x0, x1 = box
    window = (slice(max(0, y0 - pad), y1 + pad), slice(max(0, x0 - pad), x1 + pad))
    crop = grey[window]
    pages = [crop, 255 - crop]
    for hat in hats:
        strokes = hat[window]
        cut = max(20.0, 0.35 * float(strokes.max()))
        pages.append(np.where(strokes > cut, 0, 255).astype(np.uint8))
    return pages


def _typical(members: np.ndarray, vertical: bool = False) -> np.ndarray:
    """The letters of a chain whose size across the line is within 25% of its median."""
    a0, a1 = (2, 3) if vertical else (0, 1)
    size = (members[:, a1] - members[:, a0]).astype(float)
    return np.asarray(members[np.abs(size - np.median(size)) <= 0.25 * np.median(size)])


def _slope(letters: np.ndarray, vertical: bool = False) -> float:
    """How far the letters' centres move across the line per pixel along it: the median of
    the slopes between pairs (Theil-Sen), which letters merged with anatomy do not sway."""
    a0, a1, b0, b1 = (2, 3, 0, 1) if vertical else (0, 1, 2, 3)
    if len(letters) < 3:
        return 0.0
    across = (letters[:, a0] + letters[:, a1]) / 2.0
    along = (letters[:, b0] + letters[:, b1]) / 2.0
    i, j = np.triu_indices(len(letters), k=1)
    apart = along[j] - along[i]
    valid = np.abs(apart) > 0
    if not valid.any():
        return 0.0
    return float(np.median((across[j] - across[i])[valid] / apart[valid]))


def skew(members: np.ndarray) -> float:
    """The angle (degrees, counter-clockwise as drawn) of a horizontal chain's baseline, from
    its letters of typical height (:func:`_slope`). Text burned in at a few degrees reads only
    once levelled."""
    typical = _typical(members)
    if len(typical) < 3:
        return 0.0
    angle = float(np.degrees(np.arctan(-_slope(typical))))
    # Chained letters overlap their neighbours by half a height: a steeper "baseline" is
    # texture joined to the line, not text drawn at that angle.
    return angle if abs(angle) <= MAX_SKEW else 0.0


def aligned(members: np.ndarray, vertical: bool) -> np.ndarray:
    """The letters of a chain that sit on its text line: of typical size, with both edges
    across the line within a quarter height of the edges fitted through those letters.
    Anatomy chained with a string has neither the size nor the baseline of its glyphs."""
    a0, a1, b0, b1 = (2, 3, 0, 1) if vertical else (0, 1, 2, 3)
    typical = _typical(members, vertical)
    if len(typical) < 3:
        return typical
    slope = _slope(typical, vertical)
    along = (typical[:, b0] + typical[:, b1]) / 2.0
    tolerance = 0.25 * float(np.median(typical[:, a1] - typical[:, a0]))
    keep = np.ones(len(typical), bool)
    for edge in (a0, a1):
        residual = typical[:, edge] - slope * along
        keep &= np.abs(residual - np.median(residual)) <= tolerance
    return np.asarray(typical[keep])


def _verify(
    grey: np.ndarray,
    hats: tuple[np.ndarray, np.ndarray],
    line: _Line,
    settings: DetectorSettings,
    *,
    shaped_only: bool = False,
    zoom: int = 1,
) -> tuple[bool, float, int, int]:
    """Read one candidate line (grey in both polarities and its stroke pages, levelled when
    skewed) in the two orientations of its direction; returns the best (confidence,
    alphanumerics, rotation) among readings that look like text (at least 60% letters and
    digits, and at least ``min_stroke_chars`` of them on stroke pages), stopping at the first
    reading that confirms the line (with ``min_confidence``, or ``phi_confidence`` when shaped
    like PHI; only then with ``shaped_only``, which also crops to the line's band),
    upscaled ``zoom`` times more than usual. Returns whether it did, first."""
    from PIL import Image as PILImage

    across = line.across
    scale = int(np.clip(round(36 / max(across, 1)), 1, 4)) * zoom
    best = (0.0, 0, 0)
    crop = line.read_box if shaped_only else line.box
    for k, page in enumerate(_pages(grey, hats, crop, max(2, across // 2))):
        needed = settings.min_chars if k < 2 else settings.min_stroke_chars
        image = PILImage.fromarray(np.ascontiguousarray(page))
        if abs(line.angle) >= 1.5:
            image = image.rotate(
                -line.angle,
                expand=True,
                resample=PILImage.Resampling.BICUBIC,
                fillcolor=int(np.median(page)),
            )
        if scale > 1:
            size = (image.width * scale, image.height * scale)
            image = image.resize(size, PILImage.Resampling.BICUBIC)
        levelled = np.asarray(image)
        for rotation in (90, 270) if line.vertical else (0, 180):
            # np.rot90 turns counter-clockwise; text drawn at +90 degrees reads after -90.
            upright = np.ascontiguousarray(np.rot90(levelled, -rotation // 90))
            confidence, alnum, share, shaped = read_line(upright)
            if share < 0.6 or alnum < needed:
                continue
            if (confidence >= settings.min_confidence and not shaped_only) or (
                shaped and confidence >= settings.phi_confidence
            ):
                return True, confidence, alnum, rotation
            best = max(best, (confidence, alnum, rotation))
    return (False, *best)


# ------------------------------------------------------------------------------------------
# Detection, cache, redaction
# ------------------------------------------------------------------------------------------


def _union(a: Box, b: Box) -> Box:
    return min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])


def _inside(inner: Box, outer: Box) -> bool:
    return (
        outer[0] <= inner[0]
        and inner[1] <= outer[1]
        and outer[2] <= inner[2]
        and inner[3] <= outer[3]
    )


def _band(box: Box, letters: np.ndarray, vertical: bool) -> Box:
    """``box`` with its extent across the line narrowed to what ``letters`` span."""
    a0, a1 = (2, 3) if vertical else (0, 1)
    out = list(box)
    out[a0], out[a1] = int(letters[:, a0].min()), int(letters[:, a1].max())
    return out[0], out[1], out[2], out[3]


def _merge(lines: list[_Line]) -> list[_Line]:
    """Join candidates of one direction and similar letter height that lie on the same line
    (overlapping by half across it) no further apart than 1.5 letter heights: the pieces of one
    text line (both polarities, split words) become one box to read and redact."""
    merged = list(lines)
    changed = True
    while changed:
        changed = False
        out: list[_Line] = []
        for line in merged:
            for k, other in enumerate(out):
                if other.vertical != line.vertical:
                    continue
                big = max(line.across, other.across)
                if big > 1.6 * min(line.across, other.across):
                    continue
                a, b = line.box, other.box
                c0, c1, d0, d1 = (2, 3, 0, 1) if line.vertical else (0, 1, 2, 3)
                across = min(a[c1], b[c1]) - max(a[c0], b[c0])
                extent = min(a[c1] - a[c0], b[c1] - b[c0])
                gap = max(a[d0], b[d0]) - min(a[d1], b[d1])
                if across >= 0.5 * extent and gap <= 1.5 * big:
                    out[k] = _Line(
                        _union(a, b),
                        max(line.across, other.across),
                        line.vertical,
                        line.regular and other.regular,
                        max((line, other), key=lambda x: x.box[d1] - x.box[d0]).angle,
                        band=_union(line.read_box, other.read_box),
                    )
                    changed = True
                    break
            else:
                out.append(line)
        merged = out
    return merged


def _chain_line(
    members: np.ndarray, vertical: bool, settings: DetectorSettings, split: bool
) -> _Line:
    """The candidate line of one chain; with ``split``, also its parts: the chains its letters
    make without the components longer than ``max_aspect`` letter heights, and those its
    letters on the line's baseline make (:func:`aligned`)."""
    a0, a1, b0, b1 = (2, 3, 0, 1) if vertical else (0, 1, 2, 3)
    box = (
        int(members[:, 0].min()),
        int(members[:, 1].max()),
        int(members[:, 2].min()),
        int(members[:, 3].max()),
    )
    size = members[:, a1] - members[:, a0]
    across = int(np.median(size))
    typical = _typical(members, vertical)
    band = _band(box, typical if len(typical) else members, vertical)
    parts: list[_Line] = []
    if split:
        short = members[members[:, b1] - members[:, b0] <= settings.max_aspect * size]
        on_line = aligned(members, vertical)
        for subset in (short, on_line):
            if 0 < len(subset) < len(members):
                parts += [
                    _chain_line(sub, vertical, settings, split=False)
                    for sub in chain_lines(subset, vertical, settings)
                ]
        if len(on_line) >= settings.min_chars and len(on_line) < len(members):
            # The whole chain's length in the band of its aligned letters: the glyphs that
            # merged with anatomy are in that band too.
            parts.append(
                _Line(
                    _band(box, on_line, vertical),
                    int(np.median(on_line[:, a1] - on_line[:, a0])),
                    vertical,
                    False,
                    0.0 if vertical else skew(on_line),
                )
            )
    angle = 0.0 if vertical else skew(members)
    regular = _regular(members, vertical, settings)
    return _Line(box, across, vertical, regular, angle, tuple(parts), band)


def candidate_lines(
    grey: np.ndarray, settings: DetectorSettings
) -> tuple[list[_Line], list[_Line], np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Letter chains of both polarities and both directions merged into line boxes, and the
    chains themselves (each with its parts); also every letter box (y0, y1, x0, x1) of both
    polarities, to complete confirmed lines, and the two top-hats, to read the lines'
    strokes."""
    chains: list[_Line] = []
    found = []
    hats = top_hats(grey, stroke=settings.stroke)
    for hat in hats:
        boxes = letters(hat > settings.threshold, settings)
        found.append(boxes)
        for vertical in (False, True):
            for members in chain_lines(boxes, vertical, settings):
                chains.append(_chain_line(members, vertical, settings, split=True))
    return _merge(chains), chains, np.concatenate(found), hats


def _pieces(line: _Line, chains: list[_Line]) -> list[_Line]:
    """What to read when a merged line fails: the chains it was built from (when more than
    one; a regular one even when it spans the whole line, since merging with the other
    polarity's texture is what made the line irregular) and their parts, so a string beside
    texture that merged with it is read alone."""
    inside = [c for c in chains if c.vertical == line.vertical and _inside(c.box, line.box)]
    out = [c for c in inside if c.box != line.box or c.regular] if len(inside) > 1 else []
    return out + [part for c in inside for part in c.parts]


def complete_line(line: _Line, boxes: np.ndarray, ink: np.ndarray) -> Box:
    """Grow a confirmed line along its direction over the letters and the stroke ink that
    continue it (in its band across, runs no further than 1.5 letter heights apart), so that
    the part of a string OCR could not confirm, or whose glyphs merged into the background,
    is blacked out with the part it could. It grows at most by its own length each way, so
    texture that looks like letters cannot carry it across the image."""
    c0, c1, d0, d1 = (2, 3, 0, 1) if line.vertical else (0, 1, 2, 3)
    size = line.across
    box = list(line.box)
    across = boxes[:, c1] - boxes[:, c0]
    overlap = np.minimum(box[c1], boxes[:, c1]) - np.maximum(box[c0], boxes[:, c0])
    near = boxes[
        (overlap >= 0.5 * np.minimum(across, box[c1] - box[c0]))
        & (across <= 1.6 * size)
        & (across >= 0.5 * size)
    ]
    length = box[d1] - box[d0]
    low, high = max(0, box[d0] - length - size), min(ink.shape[d0 // 2], box[d1] + length + size)
    while len(near):
        gap = np.maximum(near[:, d0] - box[d1], box[d0] - near[:, d1])
        joined = near[gap <= 1.5 * size]
        if not len(joined):
            break
        box[d0] = max(low, min(box[d0], int(joined[:, d0].min())))
        box[d1] = min(high, max(box[d1], int(joined[:, d1].max())))
        near = near[gap > 1.5 * size]
    band = ink[box[0] : box[1], :] if not line.vertical else ink[:, box[2] : box[3]].T
    inked = np.flatnonzero(band.sum(axis=0) >= 2)
    step = 1.5 * size
    after = inked[(inked >= box[d1]) & (inked < high)]
    breaks = np.flatnonzero(np.diff(np.concatenate([[box[d1] - 1], after])) > step)
    box[d1] = int((after[: breaks[0]] if len(breaks) else after).max(initial=box[d1] - 1)) + 1
    before = inked[(inked < box[d0]) & (inked >= low)][::-1]
    breaks = np.flatnonzero(np.diff(np.concatenate([[box[d0]], before])) < -step)
    box[d0] = int((before[: breaks[0]] if len(breaks) else before).min(initial=box[d0]))
    return box[0], box[1], box[2], box[3]


def _confirmed(
    grey: np.ndarray,
    hats: tuple[np.ndarray, np.ndarray],
    line: _Line,
    chains: list[_Line],
    settings: DetectorSettings,
) -> list[tuple[_Line, bool, float, int, int]]:
    """The line with its reading when it reads (or is regular), else each of its pieces that
    is regular or reads as PHI (pieces of texture read as words often enough), skipping
    pieces inside one already confirmed."""
    read, confidence, alnum, rotation = _verify(grey, hats, line, settings)
    if read or line.regular:
        return [(line, read, confidence, alnum, rotation)]
    out: list[tuple[_Line, bool, float, int, int]] = []
    for piece in _pieces(line, chains):
        if any(_inside(piece.box, p.box) for p, *_ in out):
            continue
        if piece.regular:
            out.append((piece, False, 0.0, 0, 90 if piece.vertical else 0))
            continue
        for zoom in (1, 2):
            read, confidence, alnum, rotation = _verify(
                grey, hats, piece, settings, shaped_only=True, zoom=zoom
            )
            if read:
                out.append((piece, read, confidence, alnum, rotation))
                break
    return out


def _find_regions(grey: np.ndarray, settings: DetectorSettings) -> list[TextRegion]:
    rows, cols = grey.shape
    regions: list[TextRegion] = []
    lines, chains, boxes, hats = candidate_lines(grey, settings)
    ink = (hats[0] > settings.threshold) | (hats[1] > settings.threshold)
    for candidate in lines:
        for line, read, confidence, alnum, rotation in _confirmed(
            grey, hats, candidate, chains, settings
        ):
            box = complete_line(line, boxes, ink)
            if line is not candidate and read:
                # A piece read as PHI: the rest of its string is what merged it with the rest.
                box = _union(box, candidate.box)
            y0, y1, x0, x1 = box
            margin = max(3, line.across // 2)
            regions.append(
                TextRegion(
                    max(0, x0 - margin),
                    max(0, y0 - margin),
                    min(cols, x1 + margin),
                    min(rows, y1 + margin),
                    rotation if read else (90 if line.vertical else 0),
                    confidence,
                    alnum,
                )
            )
    return regions


def _cache_key(pages: list[np.ndarray], settings: DetectorSettings, key: bytes) -> str:
    """A keyed hash (HMAC-SHA256 under the project key) of the pages read, their shape and the
    detector's settings and version: without the key nobody can test whether an image they
    hold was processed here."""
    mac = hmac.new(key, digestmod=hashlib.sha256)
    shapes = [page.shape for page in pages]
    mac.update(f"{DETECTOR_VERSION}|{shapes}|{sorted(asdict(settings).items())}|".encode())
    for page in pages:
        mac.update(np.ascontiguousarray(page).tobytes())
    return mac.hexdigest()


class RegionCache:
    """Detected text regions by content: one small JSON file of box coordinates per image
    under ``folder`` (never pixels, never text), written atomically."""

    def __init__(self, folder: Path, key: bytes) -> None:
        self.folder = Path(folder)
        self.key = key

    def _path(self, digest: str) -> Path:
        return self.folder / digest[:2] / f"{digest}.json"

    def get(self, pages: list[np.ndarray], settings: DetectorSettings) -> list[TextRegion] | None:
        path = self._path(_cache_key(pages, settings, self.key))
        try:
            rows = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None  # a damaged entry is recomputed and rewritten
        return [TextRegion(**row) for row in rows]

    def put(
        self, pages: list[np.ndarray], settings: DetectorSettings, found: list[TextRegion]
    ) -> None:
        path = self._path(_cache_key(pages, settings, self.key))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps([asdict(r) for r in found]))
        tmp.replace(path)


def detect_text(
    image: np.ndarray | Image.Image,
    *,
    settings: DetectorSettings | None = None,
    cache: RegionCache | None = None,
) -> list[TextRegion]:
    """Boxes of the text lines burned into ``image``, each with its redaction margin, found on
    its grey page and, for colour images, on its chroma page."""
    settings = settings or DetectorSettings()
    grey = to_grey8(image)
    rows, cols = grey.shape
    if rows * cols > MAX_OCR_PIXELS:
        raise ImageTooLargeError(
            f"Image of {rows}x{cols} pixels is above the OCR cap of {MAX_OCR_PIXELS:,}; "
            "split it into tiles, or de-identify it with ocr='never' if it carries no text."
        )
    chroma = chroma_page(image)
    pages = [grey] if chroma is None else [grey, chroma]
    if cache is not None:
        cached = cache.get(pages, settings)
        if cached is not None:
            return cached
    found = [region for page in pages for region in _find_regions(page, settings)]
    if cache is not None:
        cache.put(pages, settings, found)
    return found


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
    """Whether any region lies for more than ``share`` of its area on the body region
    (:func:`body_region`): text burned over anatomy, or anatomy taken for text, either
    way a person should look."""
    if not regions:
        return False
    body = body_region(image)
    if not body.any():
        return False
    for r in regions:
        window = body[r.y0 : r.y1, r.x0 : r.x1]
        if window.size and float(window.mean()) > share:
            return True
    return False


def redaction_mask(shape: tuple[int, int], regions: list[TextRegion]) -> np.ndarray:
    """The union of the regions' boxes."""
    out = np.zeros(shape, bool)
    for r in regions:
        out[r.y0 : r.y1, r.x0 : r.x1] = True
    return out


def redact_burned_in_text(
    pixels: np.ndarray | Image.Image,
    *,
    fill: float | None = None,
    regions: list[TextRegion] | None = None,
    settings: DetectorSettings | None = None,
    cache: RegionCache | None = None,
) -> tuple[np.ndarray | Image.Image, list[TextRegion]]:
    """Black out the text of one image; returns the new image (same type, dtype and shape)
    and the regions found. ``fill`` defaults to the image minimum (black in MONOCHROME2;
    in MONOCHROME1 it shows white, which hides the text just as well)."""
    from PIL import Image as PILImage

    is_pil = isinstance(pixels, PILImage.Image)
    mode = pixels.mode if isinstance(pixels, PILImage.Image) else ""
    source = (
        pixels.convert("RGB")
        if isinstance(pixels, PILImage.Image)
        and mode
        not in (
            "L",
            "RGB",
        )
        else pixels
    )
    array = np.array(source)
    if array.ndim not in (2, 3):
        raise PrivacyError(f"Expected a 2D grey or colour image, got shape {array.shape}.")
    found = detect_text(array, settings=settings, cache=cache) if regions is None else regions
    out_array = array
    if found:
        out_array = array.copy()
        out_array[redaction_mask(array.shape[:2], found)] = array.min() if fill is None else fill
    if is_pil:
        image = PILImage.fromarray(out_array)
        return (image.convert(mode) if image.mode != mode else image), found
    return out_array, found
