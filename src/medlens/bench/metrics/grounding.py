"""Grounding metrics: box IoU and average precision at IoU 0.5 (PASCAL VOC / COCO AP50).

Boxes are ``(x0, y0, x1, y1)`` in image pixels. SLAKE's ``detection.json`` stores
``[x, y, w, h]``; its loader converts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from medlens.types import box_iou

Box = tuple[float, float, float, float]
_NUM = r"-?\d+(?:\.\d+)?"
_BOX = re.compile(rf"[\[\(]\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*[\]\)]")


def parse_boxes(text: str) -> list[Box]:
    """Every ``[x0, y0, x1, y1]`` (or parenthesised) quadruple in ``text``.

    >>> parse_boxes("The nodule is at [10, 20, 30.5, 40] and (1,2,3,4).")
    [(10.0, 20.0, 30.5, 40.0), (1.0, 2.0, 3.0, 4.0)]
    """
    return [tuple(float(v) for v in m) for m in _BOX.findall(text)]  # type: ignore[misc]


def average_precision(
    predictions: Sequence[tuple[str, float, Box]],
    ground_truth: Sequence[tuple[str, Box]],
    threshold: float = 0.5,
) -> float:
    """AP at an IoU threshold for one class: ``predictions`` are (image id, score, box),
    ``ground_truth`` (image id, box). Greedy matching by descending score, each ground-truth
    box matched once; all-point interpolated precision (VOC 2010+, COCO).

    >>> average_precision([("a", 0.9, (0, 0, 10, 10)), ("b", 0.8, (0, 0, 1, 1))],
    ...                   [("a", (0, 0, 10, 10)), ("b", (5, 5, 9, 9))])
    0.5
    """
    if not ground_truth:
        return 0.0
    unmatched: dict[str, list[Box]] = {}
    for image, box in ground_truth:
        unmatched.setdefault(image, []).append(box)
    hits: list[bool] = []
    for image, _score, box in sorted(predictions, key=lambda p: -p[1]):
        candidates = unmatched.get(image, [])
        best = max(range(len(candidates)), key=lambda i: box_iou(box, candidates[i]), default=None)
        if best is not None and box_iou(box, candidates[best]) >= threshold:
            candidates.pop(best)
            hits.append(True)
        else:
            hits.append(False)
    tp = 0
    points: list[tuple[float, float]] = []
    for k, hit in enumerate(hits, start=1):
        tp += hit
        points.append((tp / len(ground_truth), tp / k))
    ap, prev_recall = 0.0, 0.0
    for i, (recall, _precision) in enumerate(points):
        best_precision = max(p for _, p in points[i:])
        ap += (recall - prev_recall) * best_precision
        prev_recall = recall
    return ap
