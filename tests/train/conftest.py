"""Fixtures of the training tests: synthetic studies with known answers, tiny models."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("trl")
pytest.importorskip("peft")

from medlens.bench.samples import Sample


def write_studies(folder: Path) -> list[Sample]:
    """Eight 64x64 greyscale images, a bright square on the left or right; per image a
    closed, an open and a grounding question whose answers are the truth."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for i in range(8):
        left = i % 2 == 0
        pixels = np.full((64, 64), 30, dtype=np.uint8)
        x0 = 6 if left else 38
        pixels[20:40, x0 : x0 + 20] = 220
        path = folder / f"image-{i}.png"
        Image.fromarray(pixels).save(path)
        meta = {"image_id": path.name, "boxes": [{"label": "square", "box": [x0, 20, x0 + 20, 40]}]}
        common = {"benchmark": "synthetic", "split": "train", "images": (str(path),)}
        samples += [
            Sample(
                id=f"{i}-closed",
                question="Is the square on the left?",
                answers=("yes" if left else "no",),
                kind="closed",
                metadata=meta,
                **common,  # type: ignore[arg-type]
            ),
            Sample(
                id=f"{i}-open",
                question="Which side is the square on?",
                answers=("left" if left else "right",),
                kind="open",
                metadata=meta,
                **common,  # type: ignore[arg-type]
            ),
            Sample(
                id=f"{i}-box",
                question="Locate the square in this image.",
                answers=("square",),
                kind="grounding",
                metadata=meta,
                **common,  # type: ignore[arg-type]
            ),
        ]
    return samples


@pytest.fixture(scope="session")
def synthetic_samples(tmp_path_factory: pytest.TempPathFactory) -> list[Sample]:
    return write_studies(tmp_path_factory.mktemp("train-studies"))


@pytest.fixture(scope="session")
def synthetic_data(synthetic_samples: list[Sample]):  # type: ignore[no-untyped-def]
    from medlens.train.data import from_samples

    return from_samples(synthetic_samples)


@pytest.fixture(scope="session")
def tiny_qwen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight tiny Qwen2.5-VL folder (the tests' tiny model of that family)."""
    from medlens.testing.tiny import build_tiny_model

    return build_tiny_model("qwen2_5_vl", tmp_path_factory.mktemp("tiny-qwen") / "model")
