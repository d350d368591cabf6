"""Augmented training images keep the answer true: no flips, no moved boxes, a new draw
each time a row is shown, reproducible from the seed."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from medlens.errors import ConfigError
from medlens.train.augment import Augmenter
from medlens.train.data import TrainData
from medlens.train.run import Hyper


def half_lit(side: int = 96) -> Image.Image:
    """Bright left half (the patient's right on a radiograph), dark right half."""
    pixels = np.zeros((side, side, 3), np.uint8)
    pixels[:, : side // 2] = 200
    return Image.fromarray(pixels)


def dot(side: int = 96, at: tuple[int, int] = (20, 70)) -> Image.Image:
    pixels = np.full((side, side, 3), 40, np.uint8)
    x, y = at
    pixels[y - 3 : y + 4, x - 3 : x + 4] = 230
    return Image.fromarray(pixels)


def brightest(image: Image.Image) -> tuple[int, int]:
    grey = np.asarray(image.convert("L"), dtype=float)
    y, x = np.unravel_index(int(grey.argmax()), grey.shape)
    return int(x), int(y)


def test_standard_moves_images_a_little_and_never_flips_them() -> None:
    augment = Augmenter("standard", seed=3)
    image = half_lit()
    for _ in range(30):
        out = np.asarray(augment(image, geometric=True).convert("L"), dtype=float)
        assert out.shape == (96, 96)
        left, right = out[:, :40].mean(), out[:, 56:].mean()
        assert left > 100 > right + 60, (left, right)
    moved = [
        not np.array_equal(np.asarray(augment(image, geometric=True)), image) for _ in range(5)
    ]
    assert all(moved)


def test_rows_with_boxes_keep_their_geometry() -> None:
    augment = Augmenter("standard", seed=1)
    image = dot()
    draws = [augment(image, geometric=False) for _ in range(20)]
    assert {brightest(d) for d in draws} <= {(x, y) for x in range(17, 24) for y in range(67, 74)}
    assert len({np.asarray(d).tobytes() for d in draws}) > 10  # brightness/contrast did change
    geometric = {brightest(augment(image, geometric=True)) for _ in range(20)}
    assert max(abs(x - 20) + abs(y - 70) for x, y in geometric) >= 3


def test_draws_repeat_from_the_seed_and_none_changes_nothing() -> None:
    image = half_lit()
    first = np.asarray(Augmenter("standard", 7)(image, geometric=True))
    again = np.asarray(Augmenter("standard", 7)(image, geometric=True))
    other = np.asarray(Augmenter("standard", 8)(image, geometric=True))
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert Augmenter("none")(image, geometric=True) is image
    with pytest.raises(ConfigError, match="--augment must be one of none, photometric"):
        Hyper(augment="flip")


def test_the_dataset_redraws_on_each_access_and_spares_rows_with_boxes() -> None:
    image = dot()
    prompt = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "q"}]}]
    rows = [
        {"prompt": prompt, "completion": [], "images": [image], "boxes": []},
        {"prompt": prompt, "completion": [], "images": [image], "boxes": [[17, 67, 24, 74]]},
    ]
    dataset = TrainData(rows, [], [], []).dataset(("prompt",), Augmenter("standard", 0))
    open_draws = {brightest(dataset[0]["images"][0]) for _ in range(15)}
    box_draws = {brightest(dataset[1]["images"][0]) for _ in range(15)}
    assert len(open_draws) > 3
    assert box_draws <= {(x, y) for x in range(17, 24) for y in range(67, 74)}
    assert set(dataset[0]) == {"prompt", "images", "length"}
    plain = TrainData(rows, [], [], []).dataset(("prompt",))
    assert plain[0]["images"][0] is image
