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


def read_text_lines(image: np.ndarray, *, threads: int = 1) -> list[OcrLine]:
    """Every text line the detector finds in ``image`` (grey or RGB, any depth), with what
    the recogniser reads there (lines it reads below RapidOCR's score floor of 0.5 are
    dropped by it: mostly texture)."""
    page = as_rgb8(image)
    # RapidOCR takes OpenCV's BGR order, and keeps the stages asked for by the last call.
    result = engine(threads)(page[..., ::-1].copy(), use_det=True, use_cls=True, use_rec=True)
    if result.boxes is None:
        return []
    lines = []
    for corners, text, score in zip(result.boxes, result.txts, result.scores):
        points = tuple((float(x), float(y)) for x, y in np.asarray(corners, np.float64))
        lines.append(OcrLine(points, str(text), float(score)))
    return lines
