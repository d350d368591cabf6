"""DPO preference pairs built by medlens: chosen = the gold answer, rejected = a wrong one.

Two builders, both asking the model being tuned through a medlens backend (so its answers
are read by the task parser and judged by a scoring protocol, as in ``medlens eval``):

- ``own_wrong_pairs``: the model's own wrong answer on a training row (on-policy negatives,
  as in self-rewarding / RLAIF-V style pipelines);
- ``lesion_noised_pairs``: MMedPO's noised-lesion negatives (Zhu et al. 2024, "MMedPO:
  Aligning Medical Vision-Language Models with Clinical-Aware Multimodal Preference
  Optimization", arXiv 2412.06141): the model answers with the lesion region (SLAKE boxes)
  replaced by noise, and a wrong answer it gives without seeing the lesion becomes the
  rejected answer for the clean image; a pair thus teaches it to use the region.

A pair row is ``{"prompt", "images", "chosen", "rejected", "id", "source"}``, TRL's
conversational preference format with images.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from medlens.train.data import TrainData, row_request
from medlens.train.rewards import accuracy_reward

if TYPE_CHECKING:
    from PIL import Image

    from medlens.backends.base import Backend


def _assistant(text: str) -> list[dict[str, Any]]:
    return [{"role": "assistant", "content": [{"type": "text", "text": text}]}]


def _answers(
    backend: Backend, rows: Sequence[dict[str, Any]], images: Sequence[Sequence[Any]] | None
) -> list[str]:
    requests = [
        row_request(row, images=images[i] if images is not None else ())
        for i, row in enumerate(rows)
    ]
    return [g.text.strip() for g in backend.generate(requests)]


def _pairs(
    rows: Sequence[dict[str, Any]],
    answers: Sequence[str],
    protocol: str,
    source: str,
) -> list[dict[str, Any]]:
    """Pairs for the rows whose answer is wrong (score below 1) and not empty."""
    scores = accuracy_reward(protocol)(
        [_assistant(a) for a in answers],
        answers=[r["answers"] for r in rows],
        kind=[r["kind"] for r in rows],
        candidates=[r.get("candidates") for r in rows],
        boxes=[r.get("boxes") for r in rows],
        image_size=[r.get("image_size") for r in rows],
    )
    pairs = []
    for row, answer, score in zip(rows, answers, scores):
        gold = row["completion"][0]["content"][0]["text"]
        if score is None or score >= 1.0 or not answer or answer == gold:
            continue
        pairs.append(
            {
                "id": row["id"],
                "source": source,
                "prompt": row["prompt"],
                "images": row["images"],
                "chosen": row["completion"],
                "rejected": _assistant(answer),
            }
        )
    return pairs


def _batches(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def own_wrong_pairs(
    data: TrainData, backend: Backend, *, protocol: str = "medlens", batch_size: int = 32
) -> list[dict[str, Any]]:
    """Chosen = gold, rejected = the model's own (greedy) wrong answer on the same row."""
    pairs: list[dict[str, Any]] = []
    for rows in _batches(data.rows, batch_size):
        pairs += _pairs(rows, _answers(backend, rows, None), protocol, "own-wrong")
    return pairs


def noise_boxes(image: Image.Image, boxes: Sequence[Sequence[float]], seed: int) -> Image.Image:
    """``image`` with every box filled with Gaussian noise of the image's own mean and
    spread (MMedPO's lesion noising, in pixel space)."""
    import numpy as np
    from PIL import Image as PILImage

    pixels = np.asarray(image.convert("RGB"), dtype=np.float32).copy()
    rng = np.random.default_rng(seed)
    mean, std = float(pixels.mean()), float(pixels.std()) or 1.0
    height, width = pixels.shape[:2]
    for x0, y0, x1, y1 in boxes:
        left, top = max(0, int(x0)), max(0, int(y0))
        right, bottom = min(width, int(np.ceil(x1))), min(height, int(np.ceil(y1)))
        if right > left and bottom > top:
            patch = rng.normal(mean, std, size=(bottom - top, right - left, 1))
            pixels[top:bottom, left:right] = patch
    return PILImage.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def lesion_noised_pairs(
    data: TrainData,
    backend: Backend,
    *,
    protocol: str = "medlens",
    batch_size: int = 32,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Chosen = gold, rejected = the model's wrong answer with the boxed regions noised
    out; rows without boxes (VQA-RAD) give no pair."""
    boxed = [r for r in data.rows if r.get("boxes") and r["kind"] != "grounding"]
    pairs: list[dict[str, Any]] = []
    for offset, rows in enumerate(_batches(boxed, batch_size)):
        noised = [
            [noise_boxes(im, row["boxes"], seed + offset * batch_size + i) for im in row["images"]]
            for i, row in enumerate(rows)
        ]
        pairs += _pairs(rows, _answers(backend, rows, noised), protocol, "lesion-noised")
    return pairs


BUILDERS = {"own-wrong": own_wrong_pairs, "lesion-noised": lesion_noised_pairs}
"""Pair builders by name (``medlens train dpo --pairs own-wrong,lesion-noised``)."""
