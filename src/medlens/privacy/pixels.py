"""Burned-in text: find it with OCR (Debian tesseract through pytesseract) and black it out.

Tesseract reads clean black-on-white pages; a radiograph with a name written over bone is
not one. So each image is first turned into two clean pages, one per polarity: a
morphological top-hat (the image minus its grey opening, or its closing minus the image)
keeps thin strokes brighter (darker) than their surroundings, whatever the local background,
which is what burned-in annotations are, and drops anatomy, which is wider than a stroke.
Each page is read at 0/90/180/270 degrees (page segmentation mode 11, sparse text), so
vertical and upside-down text is found, and small skews are tolerated by tesseract itself.

A word box tesseract reads becomes a black rectangle, grown by a margin and by every stroke
of the page that touches it, so a word read only in part is still covered whole.

Vision-token masking alone removes under half of the identifiers burned into document images,
while pixel-level redaction combined with text scrubbing removes most (the motivation of this
module; see the medlens de-identification issue). Text scrubbing is ``medlens.privacy.text``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from medlens.errors import ImageTooLargeError, PrivacyError, require

if TYPE_CHECKING:
    from PIL import Image

MAX_OCR_PIXELS = 64_000_000
"""Above this, OCR would take minutes and gigabytes; such images are refused, not skipped."""


@dataclass(frozen=True)
class TextRegion:
    """A rectangle of the image (pixel coordinates, end-exclusive) that held text."""

    x0: int
    y0: int
    x1: int
    y1: int
    rotation: int
    """The page rotation (degrees) under which the text was read."""
    confidence: float
    chars: int
    """Number of alphanumeric characters read (the text itself is never kept)."""


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
    return (np.clip((values - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def stroke_pages(grey: np.ndarray, *, stroke: int = 9, threshold: float = 40.0) -> list[np.ndarray]:
    """The two polarity pages (bool masks of strokes): bright-on-dark and dark-on-bright."""
    from scipy import ndimage as ndi

    values = grey.astype(np.float32)
    size = (stroke, stroke)
    bright = values - ndi.grey_opening(values, size=size) > threshold
    dark = ndi.grey_closing(values, size=size) - values > threshold
    return [bright, dark]


def _read_words(
    page: np.ndarray, min_confidence: float
) -> list[tuple[int, int, int, int, float, int]]:
    """Tesseract word boxes (x0, y0, x1, y1, confidence, alnum count) on a black-on-white page."""
    pytesseract = require("pytesseract", "ocr", "Burned-in text detection")
    from PIL import Image as PILImage

    # One thread per tesseract process: its OpenMP threads oversubscribe small machines and
    # made each call 3x slower here; parallelism belongs to the caller (one file per worker).
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")

    try:
        data = pytesseract.image_to_data(
            PILImage.fromarray(page), config="--psm 11", output_type=pytesseract.Output.DICT
        )
    except pytesseract.TesseractNotFoundError as exc:
        raise PrivacyError(
            "Burned-in text detection needs the tesseract program. Install it with: "
            "apt-get install tesseract-ocr (or run with ocr='never' if the pixels are known "
            "to carry no text)."
        ) from exc
    words = []
    for text, conf, x, y, w, h in zip(
        data["text"], data["conf"], data["left"], data["top"], data["width"], data["height"]
    ):
        alnum = sum(ch.isalnum() for ch in str(text))
        # One character read at low confidence is what anatomy texture looks like to OCR.
        if alnum and float(conf) >= min_confidence and (alnum >= 2 or float(conf) >= 80):
            words.append((int(x), int(y), int(x + w), int(y + h), float(conf), alnum))
    return words


def detect_text(
    image: np.ndarray | Image.Image,
    *,
    rotations: tuple[int, ...] = (0, 90, 180, 270),
    min_confidence: float = 30.0,
    upscale: int | None = None,
    max_text_height: int = 64,
) -> list[TextRegion]:
    """Regions of ``image`` where tesseract reads text, in any of ``rotations``.

    ``upscale`` enlarges the pages before reading (small annotation fonts read better at
    twice their size); by default 2 for images under 800 pixels on their short side.
    Word boxes taller than ``max_text_height`` pixels are texture read as letters, not text.
    """
    grey = to_grey8(image)
    rows, cols = grey.shape
    if rows * cols > MAX_OCR_PIXELS:
        raise ImageTooLargeError(
            f"Image of {rows}x{cols} pixels is above the OCR cap of {MAX_OCR_PIXELS:,}; "
            "split it into tiles, or de-identify it with ocr='never' if it carries no text."
        )
    scale = upscale or (2 if min(rows, cols) < 800 else 1)
    regions: list[TextRegion] = []
    for mask in stroke_pages(grey):
        if not mask.any():
            continue
        page = np.where(mask, 0, 255).astype(np.uint8)
        if scale > 1:
            page = np.kron(page, np.ones((scale, scale), np.uint8))
        for rotation in rotations:
            k = rotation // 90
            rotated = np.ascontiguousarray(np.rot90(page, k))
            height, width = rotated.shape
            for x0, y0, x1, y1, conf, alnum in _read_words(rotated, min_confidence):
                # Map the box back through the rotation (np.rot90 turns counter-clockwise).
                corners = [_unrotate(x, y, k, width, height) for x, y in ((x0, y0), (x1, y1))]
                xs = sorted(c[0] for c in corners)
                ys = sorted(c[1] for c in corners)
                across = (y1 - y0) // scale
                if across > max_text_height or (alnum >= 2 and (x1 - x0) < (y1 - y0) / 2):
                    continue  # taller than annotation text, or not shaped like a word
                regions.append(
                    TextRegion(
                        xs[0] // scale,
                        ys[0] // scale,
                        -(-xs[1] // scale),
                        -(-ys[1] // scale),
                        rotation,
                        conf,
                        alnum,
                    )
                )
    return regions


def _unrotate(x: int, y: int, k: int, width: int, height: int) -> tuple[int, int]:
    """A point of ``np.rot90(page, k)`` (size width×height) in the unrotated page."""
    for _ in range(k % 4):
        # np.rot90 sends (x, y) of an image W wide to (y, W - x); undo one turn at a time.
        x, y = height - y, x
        width, height = height, width
    return x, y


def _components(strokes: list[np.ndarray], max_extent: int) -> np.ndarray:
    """Bounding boxes (y0, y1, x0, x1) of the stroke components small enough to be letters."""
    from scipy import ndimage as ndi

    found = []
    for mask in strokes:
        labels, _ = ndi.label(mask)
        for ys, xs in filter(None, ndi.find_objects(labels)):
            if max(ys.stop - ys.start, xs.stop - xs.start) <= max_extent:
                found.append((ys.start, ys.stop, xs.start, xs.stop))
    return np.array(found, dtype=np.int64).reshape(-1, 4)


def _complete_line(box: np.ndarray, horizontal: bool, comps: np.ndarray) -> np.ndarray:
    """Extend a word box along its text line over neighbouring letter-sized strokes, so a word
    that tesseract read only in part ("1/03/2009" of "DOB 21/03/2009") is covered whole.

    The box keeps its height (across the line) and grows at most by its own length each way,
    so texture that merely looks like letters cannot carry it across the image."""
    a0, a1, b0, b1 = (0, 1, 2, 3) if horizontal else (2, 3, 0, 1)
    size = int(box[a1] - box[a0])
    low, high = int(box[b0]), int(box[b1])
    limit_low, limit_high = low - (high - low) - size, high + (high - low) + size
    overlap = np.minimum(box[a1], comps[:, a1]) - np.maximum(box[a0], comps[:, a0])
    across = comps[:, a1] - comps[:, a0]
    letters = comps[(overlap >= 0.5 * across) & (across <= 1.3 * size) & (across >= 0.25 * size)]
    gap_max = max(3, size)
    changed = True
    while changed:
        gap = np.maximum(letters[:, b0] - high, low - letters[:, b1])
        near = letters[gap <= gap_max]
        new_low = max(limit_low, min(low, int(near[:, b0].min()) if len(near) else low))
        new_high = min(limit_high, max(high, int(near[:, b1].max()) if len(near) else high))
        changed = (new_low, new_high) != (low, high)
        low, high = new_low, new_high
    out = box.copy()
    out[b0], out[b1] = low, high
    return out


def redaction_mask(
    shape: tuple[int, int], regions: list[TextRegion], strokes: list[np.ndarray], margin: int
) -> np.ndarray:
    """Word boxes completed along their text line (``_complete_line``), grown by ``margin``."""
    out = np.zeros(shape, bool)
    if not regions:
        return out
    longest = max(max(r.x1 - r.x0, r.y1 - r.y0) for r in regions)
    comps = _components(strokes, max_extent=max(8, min(96, longest)))
    for r in regions:
        box = np.array([r.y0, r.y1, r.x0, r.x1], dtype=np.int64)
        horizontal = r.rotation in (0, 180)
        if len(comps) and r.chars >= 2:
            box = _complete_line(box, horizontal, comps)
        y0, y1, x0, x1 = (int(v) for v in box)
        out[max(0, y0 - margin) : y1 + margin, max(0, x0 - margin) : x1 + margin] = True
    return out


def redact_burned_in_text(
    pixels: np.ndarray | Image.Image,
    *,
    margin: int = 3,
    fill: float | None = None,
    regions: list[TextRegion] | None = None,
    rotations: tuple[int, ...] = (0, 90, 180, 270),
) -> tuple[np.ndarray | Image.Image, list[TextRegion]]:
    """Black out the text of one image; returns the new image (same type, dtype and shape)
    and the regions found. ``fill`` defaults to the image minimum (black in MONOCHROME2;
    in MONOCHROME1 it shows white, which hides the text just as well)."""
    from PIL import Image as PILImage

    is_pil = isinstance(pixels, PILImage.Image)
    mode = pixels.mode if is_pil else ""
    array = np.array(pixels.convert("RGB") if is_pil and mode not in ("L", "RGB") else pixels)
    if array.ndim not in (2, 3):
        raise PrivacyError(f"Expected a 2D grey or colour image, got shape {array.shape}.")
    grey = to_grey8(array)
    found = detect_text(grey, rotations=rotations) if regions is None else regions
    if not found:
        out_array = array
    else:
        mask = redaction_mask(grey.shape, found, stroke_pages(grey), margin)
        out_array = array.copy()
        value = array.min() if fill is None else fill
        out_array[mask] = value
    if is_pil:
        image = PILImage.fromarray(out_array)
        return (image.convert(mode) if image.mode != mode else image), found
    return out_array, found
