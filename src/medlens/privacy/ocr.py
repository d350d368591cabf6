"""Burned-in text found by a trained detector and read by a trained recogniser.

The detector is PP-OCR's DBNet text detector and the recogniser its SVTR-style line reader
(Du et al., "PP-OCR: A Practical Ultra Lightweight OCR System", 2020; PaddleOCR's PP-OCRv6
"small" models), run on ONNX Runtime through RapidOCR, whose wheel ships the three models
(detector, 0/180 degree classifier, recogniser): nothing is downloaded at run time. They
were trained on scene and document text in both polarities, at any angle and on cluttered
backgrounds, which is what burned-in annotations are; stroke heuristics tuned on one kind of
background (the detector this replaced) read bone and speckle as letters.

Threads are set through the runtime's own session options (one intra-op thread by default):
parallelism belongs to the caller, one image per worker, and the library never writes the
process environment.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from medlens.errors import require

OCR_MODELS = "PP-OCRv6-small (det, rec) + PP-OCRv2 mobile cls, RapidOCR 3"
"""What reads the pixels; part of every cache key."""

MIN_SIDE = 736
"""The detector sees images scaled so that their short side is at least this (RapidOCR's
default): 7-px glyphs of a 320x240 ultrasound screen are then 20 px tall."""


@dataclass(frozen=True)
class OcrLine:
    """One text line: its four corners (x, y) in image pixels (a rotated rectangle), what the
    recogniser read, and its confidence (0-1). The text stays in
    memory; audits and caches hold only its keyed hash."""

    corners: tuple[tuple[float, float], ...]
    text: str
    score: float

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1), end-exclusive, around the corners."""
        xs = [c[0] for c in self.corners]
        ys = [c[1] for c in self.corners]
        return (
            int(np.floor(min(xs))),
            int(np.floor(min(ys))),
            int(np.ceil(max(xs))) + 1,
            int(np.ceil(max(ys))) + 1,
        )

    @property
    def height(self) -> float:
        """The line's short side (letter height plus the detector's padding)."""
        c = np.asarray(self.corners, np.float64)
        sides = [np.linalg.norm(c[i] - c[(i + 1) % 4]) for i in range(4)]
        return float(min(max(sides[0], sides[2]), max(sides[1], sides[3])))

    @property
    def vertical(self) -> bool:
        """Whether the line runs along the columns (text drawn at 90 or 270 degrees)."""
        x0, y0, x1, y1 = self.box
        return (y1 - y0) >= 1.5 * (x1 - x0)


_LOCAL = threading.local()


def engine(threads: int = 1) -> Any:
    """One RapidOCR pipeline per thread and thread count (ONNX sessions are not shared
    across threads here), built on first use from the models inside the wheel."""
    key = f"engine-{threads}"
    found = getattr(_LOCAL, key, None)
    if found is None:
        rapidocr: Any = require("rapidocr", "ocr", "Burned-in text detection")
        require("onnxruntime", "ocr", "Burned-in text detection")
        found = rapidocr.RapidOCR(
            params={
                "Global.log_level": "error",
                "EngineConfig.onnxruntime.intra_op_num_threads": threads,
                "EngineConfig.onnxruntime.inter_op_num_threads": 1,
                "Det.limit_side_len": MIN_SIDE,
            }
        )
        setattr(_LOCAL, key, found)
    return found


def as_rgb8(image: np.ndarray) -> np.ndarray:
    """A contiguous (rows, cols, 3) uint8 page: grey pages repeated, other depths stretched
    between their 0.1 and 99.9 percentiles (CT numbers, 16-bit ultrasound)."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        values = array.astype(np.float32)
        lo, hi = np.percentile(values, [0.1, 99.9])
        scaled = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
        array = np.asarray(np.clip(scaled, 0, 1) * 255, dtype=np.uint8)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return np.ascontiguousarray(array[..., :3])


TEXT_SCORE = 0.5
"""Recogniser confidence below which a read is texture, not text (RapidOCR's own floor)."""

CONFIDENT = 0.9
"""A read this confident is final; a line read less surely is read again on the other pages
that found it, and the best read wins ("IHC" read "OHC" at 0.72 on the image, "IHC" on its
colour page)."""

SAME_LINE = 0.5
"""Two detected boxes are one line when their intersection over union is at least this (the
same line found on two pages moves by a pixel or two; a word inside a whole line, or a line
inside a box drawn around texture, stays a line of its own)."""


def _bgr(page: np.ndarray) -> np.ndarray:
    """RapidOCR takes OpenCV's BGR order."""
    return np.ascontiguousarray(as_rgb8(page)[..., ::-1])


def detect_boxes(page: np.ndarray, *, threads: int = 1) -> list[np.ndarray]:
    """The detector's text boxes on one page (BGR uint8), each its four corners (x, y)."""
    result = engine(threads)(page, use_det=True, use_cls=False, use_rec=False)
    boxes = getattr(result, "boxes", None)
    return [] if boxes is None else [np.asarray(b, np.float32) for b in boxes]


def recognise(page: np.ndarray, corners: np.ndarray, *, threads: int = 1) -> tuple[str, float]:
    """What the recogniser reads in one box of a page (BGR uint8): the box cut out and turned
    upright as RapidOCR's own pipeline does (lines twice as tall as wide a quarter turn, the
    0/180 degree classifier for the rest), and its confidence."""
    from rapidocr.utils.process_img import get_rotate_crop_image

    crop = get_rotate_crop_image(page, corners.astype(np.float32))
    result = engine(threads)(crop, use_det=False, use_cls=True, use_rec=True)
    texts = getattr(result, "txts", None) or ("",)
    scores = getattr(result, "scores", None) or (0.0,)
    return str(texts[0]), float(scores[0])


def _hull(corners: np.ndarray) -> tuple[float, float, float, float]:
    return (
        float(corners[:, 0].min()),
        float(corners[:, 1].min()),
        float(corners[:, 0].max()),
        float(corners[:, 1].max()),
    )


def _box_area(box: tuple[float, float, float, float]) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    both = w * h
    return both / (_box_area(a) + _box_area(b) - both)


@dataclass
class _Found:
    corners: np.ndarray
    pages: list[int]

    @property
    def hull(self) -> tuple[float, float, float, float]:
        return _hull(self.corners)


def read_pages(pages: list[np.ndarray], *, threads: int = 1) -> list[OcrLine]:
    """Every text line the detector finds on any of ``pages`` (views of one image: the image
    itself, a smoothed or colour page, same size), read once each.

    Detection runs on every page; boxes that are one line on several pages (:data:`SAME_LINE`)
    become the larger of them, and each line is read on the first page that found it, or on
    the others that found it when that read is not :data:`CONFIDENT`. Reading each line once instead
    of once per page halves the recogniser's time on images with many lines (radiographs
    carry a dozen)."""
    views = [_bgr(page) for page in pages]
    found: list[_Found] = []
    for index, view in enumerate(views):
        for corners in detect_boxes(view, threads=threads):
            hull = _hull(corners)
            for item in found:
                if _iou(hull, item.hull) >= SAME_LINE:
                    if _box_area(hull) > _box_area(item.hull):
                        item.corners = corners
                    item.pages.append(index)
                    break
            else:
                found.append(_Found(corners, [index]))
    lines = []
    for item in found:
        best = ("", 0.0)
        for index in item.pages:
            text, score = recognise(views[index], item.corners, threads=threads)
            if text.strip() and score > best[1]:
                best = (text, score)
            if best[1] >= CONFIDENT:
                break
        if best[1] >= TEXT_SCORE:
            points = tuple((float(x), float(y)) for x, y in item.corners)
            lines.append(OcrLine(points, *best))
    return lines


def read_text_lines(image: np.ndarray, *, threads: int = 1) -> list[OcrLine]:
    """Every text line the detector finds in ``image`` (grey or RGB, any depth), with what
    the recogniser reads there (reads below :data:`TEXT_SCORE` are dropped: mostly texture)."""
    return read_pages([image], threads=threads)
