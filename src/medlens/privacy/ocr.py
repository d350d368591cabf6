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

import contextlib
import contextvars
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medlens.errors import require
from medlens.types import box_iou

OCR_MODELS = "PP-OCRv6-small (det, rec) + PP-OCRv2 mobile cls, RapidOCR 3"
"""What reads the pixels (with :func:`readers`, part of every cache key)."""

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
    read: bool = True
    """False for a line the reading budget (:class:`ReadingBudget`) left unread (``text``
    empty): redact it unread."""
    pages: tuple[int, ...] = ()
    """The pages (:func:`read_pages`) the recogniser read it on."""
    small: bool = False
    """Found at twice the detector's scale (:func:`small_text_boxes`), where its box ends
    with its glyphs: looking along it for more (:func:`extend_line`) is not needed, and on
    7-px glyphs it is slow (strips scaled 6 times up to the recogniser's 48 px: 0.1 CPU-s a
    look, up to six per line)."""

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


REC_HEIGHT = 48
"""The recogniser's input height (PP-OCR's): every line crop is scaled to it."""

REC_MIN_WIDTH = 160
"""The recogniser's input is :data:`REC_HEIGHT` px tall and as wide as the line (RapidOCR
pads it to 320, PaddleOCR's default, at least): padding to 160 instead halves its time on
short lines (the cost is linear in the width: 32 ms at 320, 17 at 160 on one core), a fifth
of it on the lines of the benchmark's images (96 crops of every background kind and
pydicom's two ultrasound screens, 3.3 to 2.6 CPU-s), and changed no decision there (10 reads
differ, "GerardoGibert" for "Gerardo Gibert" and the like)."""

TESSERACT_SHARE = 0.5
"""What a tesseract read of a line crop costs against a PP-OCR read of the same crop: about
half (6 vs 12 ms for a short label, 42 vs 75 for a name line, on one core)."""


@dataclass
class ReadingBudget:
    """Recogniser passes one image may take: a PP-OCR read of a line counts its input width
    (:data:`REC_HEIGHT` px tall) in :data:`REC_MIN_WIDTH` columns, at least one pass; a
    tesseract read :data:`TESSERACT_SHARE` of that. Counted in work, not seconds, so that an
    image gets the same regions on any machine under any load: the CPU-seconds budget this
    replaced let detection eat into it (1.2-1.7 of an ordinary screen's 2 s), ran out on a
    slower CI machine and redacted the labels of ordinary screens. A pass's time is linear
    in its width, so the budget bounds the time as well."""

    passes: float
    spent: float = 0.0

    @property
    def exhausted(self) -> bool:
        return self.spent >= self.passes


_BUDGET: contextvars.ContextVar[ReadingBudget | None] = contextvars.ContextVar(
    "medlens_reading_budget", default=None
)


@contextlib.contextmanager
def reading_budget(passes: float) -> Iterator[ReadingBudget]:
    """The budget every recogniser call of this block (in this thread) spends."""
    budget = ReadingBudget(passes)
    token = _BUDGET.set(budget)
    try:
        yield budget
    finally:
        _BUDGET.reset(token)


def _spend(crop: np.ndarray, share: float = 1.0) -> None:
    """Charge the block's budget (:func:`reading_budget`), if any, for reading ``crop``."""
    budget = _BUDGET.get()
    if budget is not None:
        rows, cols = crop.shape[:2]
        budget.spent += share * max(1.0, REC_HEIGHT * cols / max(1, rows) / REC_MIN_WIDTH)


_LOCAL = threading.local()


def engine(threads: int = 1) -> Any:
    """One RapidOCR pipeline per thread and thread count (ONNX sessions are not shared
    across threads here), built on first use from the models inside the wheel, all three
    loaded then (RapidOCR loads each on its first call, ~4 CPU-s: a cost per process, which
    benchmarks keep apart from the first image's)."""
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
                "Rec.rec_img_shape": [3, REC_HEIGHT, REC_MIN_WIDTH],
            }
        )
        blank = np.zeros((48, 96, 3), np.uint8)
        found(blank, use_det=True, use_cls=False, use_rec=False)
        found(blank, use_det=False, use_cls=True, use_rec=True)
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


def bgr_page(page: np.ndarray) -> np.ndarray:
    """``page`` (grey or RGB, any depth) as RapidOCR reads it: 8-bit, OpenCV's BGR order."""
    return np.ascontiguousarray(as_rgb8(page)[..., ::-1])


@dataclass(frozen=True)
class Detection:
    """What the detector makes of one page: its text boxes, and the text probability it
    gives every pixel (lines too small for its scale show there faintly, under its box
    threshold: :func:`small_text_boxes`)."""

    boxes: list[np.ndarray]
    """Each box's four corners (x, y) in page pixels."""
    scores: np.ndarray
    """DBNet's probability of text per page pixel (float32, the page's rows and columns)."""
    scale: float
    """How much larger than the page the detector saw it (RapidOCR's sizing)."""


def detect_boxes(page: np.ndarray, *, threads: int = 1) -> Detection:
    """The detector on one page (BGR uint8) as RapidOCR's own ``use_det`` call runs it (the
    page sized within its bounds: short side at least :data:`MIN_SIDE`, long side at most
    2000; a short or very wide page padded above and below), keeping the probability map
    that call throws away."""
    from rapidocr.utils.process_img import (
        apply_vertical_padding,
        map_boxes_to_original,
        resize_image_within_bounds,
    )

    eng = engine(threads)
    rows, cols = page.shape[:2]
    sized, ratio_h, ratio_w = resize_image_within_bounds(page, eng.min_side_len, eng.max_side_len)
    record: dict[str, Any] = {"preprocess": {"ratio_h": ratio_h, "ratio_w": ratio_w}}
    padded, record = apply_vertical_padding(sized, record, eng.width_height_ratio, eng.min_height)
    tensor = eng.text_det.get_preprocess()(padded)
    if tensor is None:
        return Detection([], np.zeros((rows, cols), np.float32), 1.0)
    scores = eng.text_det.session(tensor)
    found, _ = eng.text_det.postprocess_op(scores, padded.shape[:2])
    boxes: list[np.ndarray] = (
        list(map_boxes_to_original(np.asarray(found, np.float32), record, rows, cols))
        if len(found)
        else []
    )
    top = record["padding_1"]["top"]
    full = _resized(scores[0, 0], padded.shape[:2])[top : top + sized.shape[0]]
    scale = tensor.shape[2] / padded.shape[0] * sized.shape[0] / rows
    return Detection(boxes, _resized(full, (rows, cols)), scale)


def _resized(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``array`` stretched to ``shape`` (rows, cols), bilinearly."""
    import cv2

    return np.asarray(cv2.resize(array, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR))


def recognise(page: np.ndarray, corners: np.ndarray, *, threads: int = 1) -> tuple[str, float]:
    """What the recogniser reads in one box of a page (BGR uint8): the box cut out and turned
    upright as RapidOCR's own pipeline does (lines twice as tall as wide a quarter turn, the
    0/180 degree classifier for the rest), and its confidence."""
    from rapidocr.utils.process_img import get_rotate_crop_image

    crop = get_rotate_crop_image(page, corners.astype(np.float32))
    _spend(crop)
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


JOIN_GAP = 0.5
"""Two boxes in one row (or, for text turned a quarter, one column) are pieces of one line
when the gap between them is at most this share of the line's height: the detector splits
a line at hyphens and wide spaces, most of all when it runs down a column ("2008", "07-",
"2", "8" of a date drawn at 270 degrees, each piece read as a number and kept as clinical)."""


@dataclass
class _Found:
    corners: np.ndarray
    pages: list[int]
    parts: list[_Found] = field(default_factory=list)
    """The pieces a joined line was made of, read one by one if the whole reads as nothing."""
    seen: list[np.ndarray] = field(default_factory=list)
    """Every box of this line, one per page that found it (:func:`_settle` picks one)."""
    small: bool = False
    """Found only by :func:`small_text_boxes`: kept on a :data:`CONFIDENT` read alone."""

    @property
    def hull(self) -> tuple[float, float, float, float]:
        return _hull(self.corners)

    @property
    def floor(self) -> float:
        """The recogniser's confidence from which a read of this line is text."""
        return CONFIDENT if self.small else TEXT_SCORE


def _inside(
    inner: tuple[float, float, float, float], outer: tuple[float, float, float, float]
) -> float:
    """The share of box ``inner`` that lies in box ``outer``."""
    w = min(inner[2], outer[2]) - max(inner[0], outer[0])
    h = min(inner[3], outer[3]) - max(inner[1], outer[1])
    return max(0.0, w) * max(0.0, h) / max(1e-6, _box_area(inner))


def _add(found: list[_Found], corners: np.ndarray, page: int, *, small: bool = False) -> None:
    """A box found on ``page`` added to ``found``: to the line it is one with
    (:data:`SAME_LINE`) or as a new line."""
    hull = _hull(corners)
    for item in found:
        if box_iou(hull, item.hull) >= SAME_LINE:
            item.seen.append(corners)
            item.pages.append(page)
            return
    found.append(_Found(corners, [page], seen=[corners], small=small))


def _settle(found: list[_Found]) -> None:
    """Each line's box: the largest of those the pages found for it (a page that sees a line
    to its end), but one that takes in half of another line found on its own that is not
    a piece of this one (:func:`_pieces_of_one_line`: those are joined after). The smoothed
    page blurs a gap of a few pixels away and gave a label and the name beside it one box
    ("SL 5.0mm" and "Marisa Tello", 10 and 26 px glyphs 40 px apart), which the image's
    own box for the name matched: redacted as the name, the label went with it."""
    for item in found:
        own = [_hull(corners) for corners in item.seen]
        alone = [
            other.hull
            for other in found
            if other is not item and not any(_pieces_of_one_line(other.hull, o) for o in own)
        ]
        apart = [
            corners
            for corners in item.seen
            if not any(_inside(other, _hull(corners)) >= 0.5 for other in alone)
        ]
        item.corners = max(apart or item.seen, key=lambda c: _box_area(_hull(c)))


def _shape(hull: tuple[float, float, float, float]) -> str:
    """Which way a box runs: "row" when at least 1.5 times as wide as tall, "column" for the
    converse (text turned a quarter), "square" for one or two glyphs."""
    width, height = hull[2] - hull[0], hull[3] - hull[1]
    return "row" if width >= 1.5 * height else "column" if height >= 1.5 * width else "square"


def _pieces_of_one_line(
    a: tuple[float, float, float, float], b: tuple[float, float, float, float]
) -> bool:
    """Whether boxes ``a`` and ``b`` continue each other along a row or a column: of one
    height (across the line: within 1.5 times), overlapping across the line by 70 % of the
    smaller, and at most :data:`JOIN_GAP` line heights apart along it (a glyph's width of
    overlap at most). A row joins rows and glyphs, a column columns and glyphs; two stacked
    rows (name above MRN) or two side-by-side columns never join."""
    shapes = {_shape(a), _shape(b)}
    for axis, shape in ((0, "row"), (1, "column")):
        if shape not in shapes or not shapes <= {shape, "square"}:
            continue
        across = 1 - axis
        size_a, size_b = a[across + 2] - a[across], b[across + 2] - b[across]
        shared = min(a[across + 2], b[across + 2]) - max(a[across], b[across])
        gap = max(a[axis], b[axis]) - min(a[axis + 2], b[axis + 2])
        height = max(size_a, size_b)
        if (
            max(size_a, size_b) <= 1.5 * min(size_a, size_b)
            and shared >= 0.7 * min(size_a, size_b)
            and -height <= gap <= JOIN_GAP * height
        ):
            return True
    return False


def _join_pieces(found: list[_Found]) -> list[_Found]:
    """Lines split by the detector made whole (:func:`_pieces_of_one_line`), as the
    axis-aligned box around their pieces, until no two join."""
    joined = list(found)
    merged = True
    while merged:
        merged = False
        for i, a in enumerate(joined):
            for j in range(i + 1, len(joined)):
                b = joined[j]
                if _pieces_of_one_line(a.hull, b.hull):
                    x0, y0 = min(a.hull[0], b.hull[0]), min(a.hull[1], b.hull[1])
                    x1, y1 = max(a.hull[2], b.hull[2]), max(a.hull[3], b.hull[3])
                    corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)
                    parts = (a.parts or [a]) + (b.parts or [b])
                    pages = sorted(set(a.pages + b.pages))
                    joined[i] = _Found(corners, pages, parts, small=a.small and b.small)
                    del joined[j]
                    merged = True
                    break
            if merged:
                break
    return joined


def _read(item: _Found, views: list[np.ndarray], threads: int) -> OcrLine:
    """The best read of a line on the pages that found it: the first that is
    :data:`CONFIDENT`, else the most confident."""
    text, score, tried = "", 0.0, []
    for index in item.pages:
        tried.append(index)
        read, confidence = recognise(views[index], item.corners, threads=threads)
        if read.strip() and confidence > score:
            text, score = read, confidence
        if score >= CONFIDENT:
            break
    return _line(item.corners, text, score, pages=tuple(tried), small=item.small)


def _line(
    corners: np.ndarray,
    text: str,
    score: float,
    read: bool = True,
    pages: tuple[int, ...] = (),
    small: bool = False,
) -> OcrLine:
    corner_list = tuple((float(x), float(y)) for x, y in corners)
    return OcrLine(corner_list, text, score, read, pages, small)


FAINT = 0.01
"""Detector probability from which a pixel may belong to a line too small for its scale:
a 7-px accession line on a speckle sector's edge peaks at 0.107, under the box threshold
(0.3), and stays at 0.01-0.05 along its length; 90 % of a page is under 0.004."""

FAINT_PEAK = 0.05
"""A faint region (:data:`FAINT`) is looked at again only where it reaches this."""

SMALL_TEXT_SHARE = 0.05
"""The share of a page that :func:`small_text_boxes` detects again at twice the scale, at
most: the detector's time grows with its pixels, so this bounds the pass to a fifth of one
page's detection (the faintest regions are left out first)."""

SMALL_TEXT_MARGIN = 16
"""Detector pixels around a faint region that its second look takes in: the line's ends
fade out of :data:`FAINT` a glyph or two early."""

SMALL_TEXT_HEIGHT = 16
"""Detector pixels a box of the second look may be across, at most: it is there for glyphs
of 7-10 px (the accession line's box: 12); a taller box found at twice the scale is
texture the detector rightly left alone at its own (Doppler flow read as a 120-px "line")."""


FAINT_STEP = 5.0
"""How much higher the level a faint region too large for the second look
(:data:`SMALL_TEXT_SHARE`) is split at (:func:`_regions`), up to the detector's own box
threshold: on a Doppler screen the flow's faint map joined everything into one region 4-15
times that share, and the 5-8 px coloured lines in it, scoring 0.97 there, were never
looked at again."""

BOX_LEVEL = 0.3
"""The detector's own threshold (RapidOCR's ``Det.thresh``), where splitting stops."""


def _regions(
    weak: np.ndarray,
    level: float,
    largest: float,
    margin: int,
    at: tuple[int, int] = (0, 0),
    shape: tuple[int, int] | None = None,
) -> list[tuple[float, tuple[int, int, int, int]]]:
    """The regions of ``weak`` (a window of a page's map whose top-left is ``at``, of a page
    of ``shape``) at ``level`` and above that peak at :data:`FAINT_PEAK`, each as its peak and
    its box in page pixels grown by ``margin``; a box larger than ``largest`` is split at
    :data:`FAINT_STEP` times the level."""
    from scipy import ndimage as ndi

    rows, cols = shape or weak.shape
    regions, _ = ndi.label(ndi.binary_dilation(weak >= level, iterations=2))
    out: list[tuple[float, tuple[int, int, int, int]]] = []
    for number, (ys, xs) in enumerate(ndi.find_objects(regions), start=1):
        inside = regions[ys, xs] == number
        peak = float(weak[ys, xs][inside].max())
        if peak < FAINT_PEAK:
            continue
        top, left = at[0] + ys.start, at[1] + xs.start
        box = (
            max(0, left - margin),
            max(0, top - margin),
            min(cols, at[1] + xs.stop + margin),
            min(rows, at[0] + ys.stop + margin),
        )
        if (box[2] - box[0]) * (box[3] - box[1]) > largest and level * FAINT_STEP < BOX_LEVEL:
            alone = np.where(inside, weak[ys, xs], 0)
            out += _regions(alone, level * FAINT_STEP, largest, margin, (top, left), (rows, cols))
        else:
            out.append((peak, box))
    return out


def _windows(
    scores: np.ndarray,
    taken: Sequence[tuple[float, float, float, float]],
    scale: float,
    largest: float,
) -> list[tuple[float, tuple[int, int, int, int]]]:
    """The faint regions of ``scores`` away from the boxes ``taken`` (:func:`_regions`, each
    at most ``largest`` pixels where splitting allows), each as its peak and its box grown
    by :data:`SMALL_TEXT_MARGIN`; regions whose boxes meet are one (a line's two ends, faint
    apart, would each give half of it) while that keeps them within ``largest``. Only what
    is thin counts: the map less its opening by a square twice :data:`SMALL_TEXT_HEIGHT`
    across (a line in any direction stays, a broad region such as a Doppler screen's colour
    flow goes). With the split and the top-hat, 7-9 px yellow and cyan PHI on Doppler
    screens: 43 of 47 strings unreadable, 39 before (benchmarks/deid_small_colour.py,
    12 images)."""
    from scipy import ndimage as ndi

    broad = max(3, round(2 * SMALL_TEXT_HEIGHT / scale))
    weak = scores - ndi.grey_opening(scores, size=(broad, broad))
    pad = max(2, round(4 / scale))
    for x0, y0, x1, y1 in taken:
        top, left = max(0, int(y0) - pad), max(0, int(x0) - pad)
        weak[top : int(y1) + pad + 1, left : int(x1) + pad + 1] = 0
    windows: list[tuple[float, tuple[int, int, int, int]]] = []
    for peak, box in _regions(weak, FAINT, largest, round(SMALL_TEXT_MARGIN / scale)):
        for other in [w for w in windows if box_iou(box, w[1]) > 0]:
            joined = _union(box, other[1])
            if (joined[2] - joined[0]) * (joined[3] - joined[1]) <= largest:
                windows.remove(other)
                peak, box = max(peak, other[0]), joined
        windows.append((peak, box))
    return sorted(windows, key=lambda w: -w[0])


def _union(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def small_text_boxes(
    view: np.ndarray,
    scores: np.ndarray,
    taken: Sequence[tuple[float, float, float, float]],
    *,
    scale: float = 1.0,
    threads: int = 1,
) -> list[np.ndarray]:
    """Boxes of lines too small for the detector at its scale (``scale``: how much larger
    than the page it saw it), found by detecting again at twice that scale, only where its
    probability map ``scores`` (the most of the page's views) shows a faint region
    (:func:`_windows`) away from the boxes ``taken``: the strongest regions first, within
    :data:`SMALL_TEXT_SHARE` of the page, boxes at most :data:`SMALL_TEXT_HEIGHT` across.
    PP-OCR's detector was trained on text some 10-40 px tall; twice the scale over the
    whole image finds a 7-px line (score 0.987) but costs 1.2-2.5 CPU-s per 1024x768 image,
    more than the whole pipeline's 2-s target."""
    import cv2

    rows, cols = scores.shape
    left = SMALL_TEXT_SHARE * rows * cols
    det = engine(threads).text_det
    pre = det.get_preprocess()
    out: list[np.ndarray] = []
    for _, (x0, y0, x1, y1) in _windows(scores, taken, scale, left):
        if (x1 - x0) * (y1 - y0) > left:
            continue
        left -= (x1 - x0) * (y1 - y0)
        size = [max(32, round(2 * scale * side / 32) * 32) for side in (x1 - x0, y1 - y0)]
        crop = cv2.resize(view[y0:y1, x0:x1], size, interpolation=cv2.INTER_CUBIC)
        tensor = pre.permute(pre.normalize(crop))[None].astype(np.float32)
        boxes, _ = det.postprocess_op(det.session(tensor), (y1 - y0, x1 - x0))
        out += [
            np.asarray(box, np.float32) + np.array([x0, y0], np.float32)
            for box in boxes
            if _frame(np.asarray(box))[4] * scale <= SMALL_TEXT_HEIGHT
        ]
    return out


def read_pages(
    pages: list[np.ndarray],
    *,
    threads: int = 1,
    budget: ReadingBudget | None = None,
    tallest: float | None = None,
) -> list[OcrLine]:
    """Every text line the detector finds on any of ``pages`` (views of one image: the image
    itself, a smoothed or colour page, same size), read once each while ``budget`` (the
    block's :func:`reading_budget`) lasts.

    Detection runs on every page, and again at twice the scale where the pages' probability
    maps show a line too faint to box (:func:`small_text_boxes`, on the image itself); boxes
    that are one line on several pages (:data:`SAME_LINE`) become the larger of them unless
    it takes in another line (:func:`_settle`), pieces of one line are joined
    (:data:`JOIN_GAP`; a joined line that reads as nothing is read piece by piece), and each
    line is read on the first page that found it, or on the others that found it when that
    read is not :data:`CONFIDENT`. A box more than ``tallest`` pixels across (short side) is
    texture or anatomy, never a line: it is not read, and it hides nothing from the second
    look (the colour page of a Doppler screen boxed its whole flow region, 535x471 px, and
    the 5-8 px lines under it were never looked at again).
    Reading each line once instead of once per page halves the recogniser's time on images
    with many lines (radiographs carry a dozen). Detection is bounded by the image's size;
    reading grows with its lines, so once the budget is spent the lines not yet read come
    back unread (``read=False``) for the caller to redact as they are."""
    views = [bgr_page(page) for page in pages]
    found: list[_Found] = []
    faint: np.ndarray | None = None
    scale = 1.0
    for index, view in enumerate(views):
        detection = detect_boxes(view, threads=threads)
        for corners in detection.boxes:
            if tallest is None or _frame(corners)[4] <= tallest:
                _add(found, corners, index)
        faint = detection.scores if faint is None else np.maximum(faint, detection.scores)
        scale = detection.scale
    _settle(found)
    if faint is not None:
        taken = [item.hull for item in found]
        for corners in small_text_boxes(views[0], faint, taken, scale=scale, threads=threads):
            _add(found, corners, 0, small=True)
    lines = []
    for item in _join_pieces(found):
        if budget is not None and budget.exhausted:
            lines.append(_line(item.corners, "", 0.0, read=False))
            continue
        line = _read(item, views, threads)
        if line.score >= item.floor:
            lines.append(line)
            continue
        for part in item.parts:
            read = _read(part, views, threads)
            if read.score >= part.floor:
                lines.append(read)
    return lines


def read_text_lines(image: np.ndarray, *, threads: int = 1) -> list[OcrLine]:
    """Every text line the detector finds in ``image`` (grey or RGB, any depth), with what
    the recogniser reads there (reads below :data:`TEXT_SCORE` are dropped: mostly texture)."""
    return read_pages([image], threads=threads)


EXTEND = 3.0
"""How far past each end of a line to redact, in line heights, the recogniser looks for
more of it: the detector's box ends early where the line runs onto a background of nearly
the ink's grey ("RAMOS^S" boxed, "OPHIA" ten grey levels above the lung beside it), and
often a glyph early ("MRN 037562" boxed of "MRN 0375629")."""

TURN_SCORE = 0.9
"""The classifier's confidence above which RapidOCR turns a line by 180 degrees (its
``Cls.cls_thresh``)."""

CHAR_GAP = 1.2
"""Glyphs farther apart than this many line heights are not of the same line (a word space
is well under one)."""


def _frame(corners: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """A line's centre, its reading axis (along its long side), the axis across it, its
    length and its height."""
    c = np.asarray(corners, np.float64)
    along, across = c[1] - c[0], c[3] - c[0]
    if np.linalg.norm(across) > np.linalg.norm(along):
        along, across = across, along
    length, height = float(np.linalg.norm(along)), float(np.linalg.norm(across))
    unit = along / max(length, 1e-6)
    normal = np.array([-unit[1], unit[0]])
    return c.mean(axis=0), unit, normal, length, height


def _strip(
    page: np.ndarray,
    centre: np.ndarray,
    unit: np.ndarray,
    normal: np.ndarray,
    size: tuple[int, int],
) -> np.ndarray:
    """The page cut along ``unit`` (x) and ``normal`` (y) around ``centre``: (rows, cols) =
    ``size``; beyond the page's edge its last pixels repeat."""
    import cv2

    rows, cols = size
    origin = centre - unit * cols / 2 - normal * rows / 2
    inverse = np.array(
        [[unit[0], normal[0], origin[0]], [unit[1], normal[1], origin[1]]], np.float64
    )
    return np.asarray(
        cv2.warpAffine(
            page,
            inverse,
            (cols, rows),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
    )


def _words(
    strip: np.ndarray, own: tuple[int, int], threads: int
) -> list[tuple[str, list[tuple[float, float]]]]:
    """The words the recogniser reads along ``strip``, each with where (x in the strip's
    columns) it reads each of its glyphs and its confidence; the strip turned upright first
    as the 0/180 degree classifier turns the line's ``own`` columns (on the whole strip,
    mostly background, it guesses)."""
    eng = engine(threads)
    line = np.ascontiguousarray(strip[:, own[0] : own[1]])
    turned = getattr(eng(line, use_det=False, use_cls=True, use_rec=False), "cls_res", None)
    label, score = turned[0] if turned else ("0", 0.0)
    flipped = "180" in str(label) and float(score) > TURN_SCORE
    upright = np.ascontiguousarray(strip[::-1, ::-1]) if flipped else strip
    _spend(upright)
    result = eng(upright, use_det=False, use_cls=False, use_rec=True, return_word_box=True)
    found = getattr(result, "word_results", None) or ()
    if not found or not found[0] or not found[0].line_txt_len:
        return []
    info = found[0]
    confs = iter(info.confs or ())
    width = strip.shape[1]
    out = []
    for chars, cols in zip(info.words or (), info.word_cols):
        glyphs = []
        for col, conf in zip(cols, confs):
            x = (col + 0.5) / info.line_txt_len * width
            glyphs.append((width - x if flipped else x, float(conf)))
        out.append(("".join(chars), glyphs))
    return out


def _glyphs(strip: np.ndarray, own: tuple[int, int], threads: int) -> list[tuple[float, float]]:
    """Where along ``strip`` (x in its columns) the recogniser reads each glyph, with its
    confidence (:func:`_words`)."""
    return [glyph for _, glyphs in _words(strip, own, threads) for glyph in glyphs]


def word_spans(
    page: np.ndarray, line: OcrLine, *, threads: int = 1
) -> list[tuple[str, float, float]]:
    """The words of ``line`` as the recogniser reads them on ``page`` (as :func:`bgr_page`
    makes it), in reading order, each with its first and last glyph's place along the line's
    axis (image pixels from its centre, :func:`_frame`): where a line boxed with a label
    beside it may be cut (:func:`part`)."""
    centre, unit, normal, length, height = _frame(np.asarray(line.corners))
    cols = max(2, int(np.ceil(length)))
    strip = _strip(page, centre, unit, normal, (max(2, int(np.ceil(height))), cols))
    return [
        (text, min(x for x, _ in glyphs) - cols / 2, max(x for x, _ in glyphs) - cols / 2)
        for text, glyphs in _words(strip, (0, cols), threads)
        if glyphs
    ]


def blank_run(page: np.ndarray, line: OcrLine, begin: float, finish: float) -> float:
    """The widest run of columns without ink across ``line`` on ``page`` between ``begin``
    and ``finish`` along its axis (image pixels from its centre, as :func:`word_spans`):
    the blank between two of its words. Ink is where the grey differs from the line's
    median by half its 98th percentile difference or more, in the middle half of its height
    (the detector's padding above and below is left out)."""
    centre, unit, normal, length, height = _frame(np.asarray(line.corners))
    cols = max(2, int(np.ceil(length)))
    strip = _strip(page, centre, unit, normal, (max(4, int(np.ceil(height))), cols))
    grey = np.asarray(strip, np.float32).reshape(strip.shape[0], cols, -1).mean(axis=-1)
    middle = grey[grey.shape[0] // 4 : -(grey.shape[0] // 4) or None]
    away = np.abs(middle - np.median(middle))
    inked = (away >= 0.5 * max(1.0, float(np.percentile(away, 98)))).any(axis=0)
    lo, hi = (max(0, min(cols, round(v + cols / 2))) for v in sorted((begin, finish)))
    widest = run = 0
    for ink in inked[lo:hi]:
        run = 0 if ink else run + 1
        widest = max(widest, run)
    return float(widest)


def _span(
    centre: np.ndarray,
    unit: np.ndarray,
    normal: np.ndarray,
    height: float,
    begin: float,
    finish: float,
) -> np.ndarray:
    """The corners of the rectangle ``height`` across from ``begin`` to ``finish`` along
    ``unit`` (from ``centre``)."""
    half = normal * height / 2
    a, b = centre + unit * begin, centre + unit * finish
    return np.array([a - half, b - half, b + half, a + half])


def part(line: OcrLine, begin: float, finish: float, text: str) -> OcrLine:
    """The piece of ``line`` from ``begin`` to ``finish`` along its axis (image pixels from
    its centre), read as ``text``."""
    centre, unit, normal, _, height = _frame(np.asarray(line.corners))
    corners = _span(centre, unit, normal, height, begin, finish)
    return _line(corners, text, line.score, line.read, line.pages)


TESSERACT_CONFIDENT = 0.7
"""Tesseract's word confidence (0-1, every word of the line) from which its read counts."""


def _tessdata() -> str | None:
    """Tesseract's English language data: ``$TESSDATA_PREFIX``, else where Debian and other
    distributions install it; None when there is none."""
    import glob
    from pathlib import Path

    from medlens.config import env

    folders = [env("TESSDATA_PREFIX") or ""]
    folders += sorted(glob.glob("/usr/share/tesseract-ocr/*/tessdata"), reverse=True)
    folders += ["/usr/share/tessdata", "/usr/local/share/tessdata"]
    found = [f for f in folders if f and Path(f, "eng.traineddata").is_file()]
    return found[0].rstrip("/") + "/" if found else None


def second_reader() -> Any | None:
    """Tesseract (tesserocr's in-process libtesseract, one line per call: page segmentation
    mode 7), one per thread, or None without tesserocr or English language data: then the
    lines it would have read stay redacted (never less redaction without it). An engine of
    its own lineage (LSTM, trained on rendered documents) errs on other glyphs than PP-OCR's
    recogniser ("THI" read "IHI" by PP-OCR and "THI" by tesseract)."""
    found = getattr(_LOCAL, "tesseract", False)
    if found is False:
        found = None
        path = _tessdata()
        try:
            import tesserocr
        except ImportError:
            path = None
        if path is not None:
            found = tesserocr.PyTessBaseAPI(path=path, lang="eng", psm=tesserocr.PSM.SINGLE_LINE)
        _LOCAL.tesseract = found
    return found


def readers() -> str:
    """The readers a decision here rests on, for cache keys: :data:`OCR_MODELS` and
    tesseract's version, or that there is none (:func:`second_reader`)."""
    reader = second_reader()
    return f"{OCR_MODELS}; tesseract {reader.Version() if reader is not None else 'none'}"


def _tesseract_read(reader: Any, crop: np.ndarray) -> tuple[str, float]:
    """What tesseract reads in an upright line crop (BGR uint8): grey, padded by half its
    height with its own edge, scaled to about 96 px tall (tesseract reads best at capital
    heights of 20-40 px); the text and the lowest word confidence (0-1)."""
    import cv2
    from PIL import Image

    _spend(crop, TESSERACT_SHARE)
    grey = np.asarray(crop, np.float32).mean(axis=-1).astype(np.uint8)
    pad = max(2, grey.shape[0] // 2)
    grey = np.pad(grey, pad, mode="edge")
    scale = float(np.clip(96 / max(1, grey.shape[0] - 2 * pad), 1.0, 6.0))
    size = (round(grey.shape[1] * scale), round(grey.shape[0] * scale))
    reader.SetImage(Image.fromarray(cv2.resize(grey, size, interpolation=cv2.INTER_CUBIC)))
    text = str(reader.GetUTF8Text()).strip()
    confidences = list(reader.AllWordConfidences())
    return text, (min(confidences) / 100 if confidences and text else 0.0)


def second_reads(
    views: Sequence[np.ndarray],
    line: OcrLine,
    grown: OcrLine | None = None,
    *,
    threads: int = 1,
) -> Iterator[OcrLine]:
    """Confident reads of a short line other than its first, each with the box it was read
    in, one at a time and the cheapest first (the caller stops at the one it needs):
    PP-OCR's recogniser on every page (``views``, as :func:`bgr_page` makes them) over
    ``grown`` (the line looked along for more of it, :func:`extend_line`) where that found
    half a line height more, tesseract (:func:`second_reader`) on every page over the larger
    box, then PP-OCR over the line's own box on the pages it was not read on yet. A read
    counts at :data:`CONFIDENT` (PP-OCR) or :data:`TESSERACT_CONFIDENT` (tesseract); what
    the caller makes of them is its own rule
    (:func:`medlens.privacy.labels.second_reading`)."""
    from rapidocr.utils.process_img import get_rotate_crop_image

    own = np.asarray(line.corners, np.float32)
    larger = own
    if (
        grown is not None
        and _frame(np.asarray(grown.corners))[3] >= _frame(own)[3] + line.height / 2
    ):
        larger = np.asarray(grown.corners, np.float32)
        for view in views:
            text, score = recognise(view, larger, threads=threads)
            if score >= CONFIDENT:
                yield _line(larger, text, score)
    reader = second_reader()
    for view in views if reader is not None else ():
        text, score = _tesseract_read(reader, get_rotate_crop_image(view, larger))
        if score >= TESSERACT_CONFIDENT:
            yield _line(larger, text, score)
    for index, view in enumerate(views):
        if index not in line.pages:
            text, score = recognise(view, own, threads=threads)
            if score >= CONFIDENT:
                yield _line(own, text, score)


def stretch(line: OcrLine, by: float = EXTEND) -> OcrLine:
    """``line`` longer by ``by`` line heights at each end, unread: where the reading budget
    left no pass to look for more of it, the conservative guess."""
    centre, unit, normal, length, height = _frame(np.asarray(line.corners))
    reach = length / 2 + by * height
    corners = _span(centre, unit, normal, height, -reach, reach)
    return _line(corners, line.text, line.score, line.read)


def _room(
    line: np.ndarray, others: Sequence[OcrLine], shape: tuple[int, ...]
) -> tuple[float, float]:
    """How far (image pixels) ``line`` (corners) may grow before and after its own span
    along its axis: :data:`EXTEND` heights, less where the image ends or another line in
    its band begins (that line is decided on its own)."""
    centre, unit, normal, length, height = _frame(line)
    room = [EXTEND * height, EXTEND * height]
    for side, sign in ((0, -1.0), (1, 1.0)):
        end = centre + sign * unit * length / 2
        for axis, size in ((0, shape[1]), (1, shape[0])):
            step = sign * unit[axis]
            if abs(step) > 1e-6:
                limit = (size - 1 - end[axis]) / step if step > 0 else -end[axis] / step
                room[side] = min(room[side], max(0.0, float(limit)))
    for other in others:
        c = np.asarray(other.corners, np.float64) - centre
        along, across = c @ unit, c @ normal
        band = min(across.max(), height / 2) - max(across.min(), -height / 2)
        if band < 0.5 * min(height, float(across.max() - across.min())):
            continue
        if along.min() >= length / 2 - 1:
            room[1] = min(room[1], float(along.min()) - length / 2)
        elif along.max() <= -length / 2 + 1:
            room[0] = min(room[0], -length / 2 - float(along.max()))
    return max(0.0, room[0]), max(0.0, room[1])


def extend_line(
    page: np.ndarray, line: OcrLine, others: Sequence[OcrLine] = (), *, threads: int = 1
) -> OcrLine:
    """``line`` grown along its axis over the glyphs the recogniser reads next to it on
    ``page`` (as :func:`bgr_page` makes it): a strip reaching :data:`EXTEND` line heights
    past each end (up to the image's edge or the next of ``others`` in its band,
    :func:`_room`) is read once (a line longer than twice that: a strip over each end, so
    a caption across the screen is not read whole again), and glyphs of confidence
    :data:`TEXT_SCORE` or more that follow the line's own without a gap of
    :data:`CHAR_GAP` heights join it, half a height of margin past the last. A line that
    grew to a strip's end (not the image's or another line's) is read again from there
    (twice at most). The text stays the line's own: the decision is made on it."""
    corners = np.asarray(line.corners, np.float64)
    for _ in range(3):
        centre, unit, normal, length, height = _frame(corners)
        before, after = _room(corners, others, page.shape)
        if max(before, after) < height / 2:
            break  # nothing but the image's edge or other lines next to it
        start, end, near = -length / 2, length / 2, EXTEND * height  # along the axis
        windows = (
            [(start - before, end + after)]
            if length <= 2 * near
            else [(start - before, start + near), (end - near, end + after)]
        )
        rows = max(2, int(np.ceil(height)))
        glyphs: list[float] = []
        for a, b in windows:
            strip = _strip(page, centre + unit * (a + b) / 2, unit, normal, (rows, int(b - a)))
            own = (int(max(start, a) - a), int(np.ceil(min(end, b) - a)))
            glyphs += [a + x for x, conf in _glyphs(strip, own, threads) if conf >= TEXT_SCORE]
        own_glyphs = [x for x in glyphs if start <= x <= end]
        if not own_glyphs:
            break
        first, last = min(own_glyphs), max(own_glyphs)
        for x in sorted((x for x in glyphs if x < first), reverse=True):
            if first - x > CHAR_GAP * height:
                break
            first = x
        for x in sorted(x for x in glyphs if x > last):
            if x - last > CHAR_GAP * height:
                break
            last = x
        begin = max(start - before, min(start, first - height / 2))
        finish = min(end + after, max(end, last + height / 2))
        if begin >= start and finish <= end:
            break
        corners = _span(centre, unit, normal, height, begin, finish)
        full = near - 1
        if not (
            (begin < start and begin <= start - before + height and before >= full)
            or (finish > end and finish >= end + after - height and after >= full)
        ):
            break  # no end grew to a strip end it could have passed: the line ends here
    return _line(corners, line.text, line.score, line.read)
