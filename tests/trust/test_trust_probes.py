"""Sanity and robustness probes on real images, question shifts, and paired scoring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medlens.errors import ConfigError, DataError, UnknownNameError
from medlens.trust.pairs import pair_accuracy
from medlens.trust.probes import (
    PROBES,
    SEVERITIES,
    make_probe,
    make_question_shift,
    parse_probe,
    probe_name,
)
from medlens.types import View, ViewRegion

REGION = ViewRegion(
    0, 0, 64, 48, ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (0.0, 0.0, 0.0))
)


def _view(seed: int = 0, mode: str = "L") -> View:
    rng = np.random.default_rng(seed)
    # A smooth gradient with a bright square: structure that blur and JPEG visibly change.
    y, x = np.mgrid[0:48, 0:64]
    pixels = (x * 3 + y).astype(np.uint8)
    pixels[10:30, 20:40] = 250
    pixels = np.clip(pixels + rng.integers(0, 3, pixels.shape), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, mode="L").convert(mode)
    return View(image=image, label="axial 1", regions=(REGION,), recipe="xray@1")


def _px(view: View) -> np.ndarray:
    return np.asarray(view.image).astype(float)


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_every_probe_keeps_size_mode_and_provenance(mode: str) -> None:
    view = _view(mode=mode)
    pool = [_view(seed=1, mode=mode).image]
    for name in PROBES.names():
        extra = {"pool": pool} if name == "swap" else {}
        out = make_probe(name, **extra)(view)
        assert out.image.size == view.image.size and out.image.mode == mode, name
        assert (out.label, out.recipe, out.regions) == (view.label, view.recipe, view.regions)
        assert not np.array_equal(_px(out), _px(view)), f"{name} did not change the image"


def test_sanity_probes_replace_the_content() -> None:
    view = _view()
    assert _px(make_probe("blank")(view)).max() == 0
    noise = _px(make_probe("noise-image")(view))
    assert abs(np.corrcoef(noise.ravel(), _px(view).ravel())[0, 1]) < 0.1
    other = _view(seed=5)
    swapped = make_probe("swap", pool=[view.image, other.image])(view)
    assert np.array_equal(_px(swapped), _px(other))  # never the view's own image
    with pytest.raises(ConfigError, match="pool"):
        make_probe("swap", pool=[])


def test_random_probes_are_reproducible_and_severity_monotone() -> None:
    view = _view()
    a = make_probe("gaussian-noise:sigma=20")(view)
    b = make_probe("gaussian-noise:sigma=20")(view)
    assert np.array_equal(_px(a), _px(b))
    errors = []
    for level in SEVERITIES["gaussian-noise"]:
        out = make_probe(probe_name("gaussian-noise", dict(level)))(view)
        errors.append(float(np.abs(_px(out) - _px(view)).mean()))
    assert errors == sorted(errors) and errors[0] > 1
    blurs = [np.abs(_px(make_probe(f"blur:radius={r}")(view)) - _px(view)).mean() for r in (1, 4)]
    assert blurs[0] < blurs[1]


def test_degradations_do_what_they_say() -> None:
    view = _view()
    low = _px(make_probe("contrast:factor=0.25")(view))
    assert low.std() < _px(view).std() * 0.4
    q10 = _px(make_probe("jpeg:quality=10")(view))
    q90 = _px(make_probe("jpeg:quality=90")(view))
    assert np.abs(q10 - _px(view)).mean() > np.abs(q90 - _px(view)).mean()
    small = _px(make_probe("resolution:scale=0.25")(view))
    assert np.abs(np.diff(small, axis=1)).mean() < np.abs(np.diff(_px(view), axis=1)).mean()
    turned = _px(make_probe("rotation:degrees=90")(view))
    assert turned[0, 0] == 0  # the corner is now outside the rotated image


def test_on_a_real_vqa_rad_image(shared_data: Path) -> None:
    path = min((shared_data / "vqa-rad" / "VQA_RAD Image Folder").glob("*.jpg"))
    image = Image.open(path).convert("L")
    view = View(image=image, label="image", regions=(REGION,))
    out = make_probe("jpeg:quality=5")(make_probe("blur:radius=2")(view))
    assert out.image.size == image.size
    assert 0 < np.abs(_px(out) - np.asarray(image, dtype=float)).mean() < 40


def test_probe_specs() -> None:
    assert parse_probe("jpeg:quality=10") == ("jpeg", {"quality": 10})
    assert parse_probe("Blur:radius=1.5, seed=2") == ("blur", {"radius": 1.5, "seed": 2})
    assert probe_name("blur", {"radius": 1.5}) == "blur:radius=1.5"
    with pytest.raises(ConfigError, match="key=value"):
        parse_probe("blur:2")
    with pytest.raises(UnknownNameError, match="Did you mean 'blur'"):
        make_probe("blurr")


def test_typos_are_seeded_and_bounded() -> None:
    q = "Is there evidence of pneumothorax in the right hemithorax?"
    shift = make_question_shift("typos:rate=0.5,seed=3")
    assert shift(q) == shift(q)
    assert shift(q) != q
    assert make_question_shift("typos:rate=0.0")(q) == q
    assert make_question_shift("typos:rate=0.5,seed=4")(q) != shift(q)
    # Short words ("is", "of", "in") are never touched.
    assert all(w in shift(q).split() for w in ("Is", "of", "in"))


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Is there a fracture?", "Does the image show any fracture?"),
        ("Are there pleural effusions?", "Does the image show any pleural effusions?"),
        ("How many kidneys are shown?", "Can you count how many kidneys are shown?"),
        ("Where is the lesion?", "In which location is the lesion?"),
        ("Which organ is abnormal?", "What organ is abnormal?"),
        ("Was contrast given", "Looking at the image, was contrast given"),
    ],
)
def test_paraphrase_templates(question: str, expected: str) -> None:
    assert make_question_shift("paraphrase")(question) == expected


def test_pair_accuracy_counts_classes() -> None:
    ids = ["p1", "p1", "p2", "p2", "p3", "p3", "p4"]
    outcomes = ["correct", "correct", "correct", "wrong", "unparseable", "correct", "correct"]
    chosen = ["A", "B", "A", "A", None, "B", "A"]
    s = pair_accuracy(ids, outcomes, chosen)
    assert (s.pairs, s.incomplete, s.unanswered_pairs) == (3, 1, 1)
    assert s.pair_accuracy == pytest.approx(1 / 3)
    assert s.confusion == pytest.approx(1 / 3)  # p2 chose A twice; p3's None is not a choice
    with pytest.raises(DataError, match="more than twice"):
        pair_accuracy(["x", "x", "x"], ["correct"] * 3, ["A"] * 3)
