"""Grounding is scored in the frame the model was asked in. A recipe's ``max_size`` or the
backend's ``view_size`` can render the view smaller than the image its gold boxes are given
in; the prompt states the view's size, so the answer comes in view pixels."""

from __future__ import annotations

import numpy as np

from medlens import pipeline
from medlens.bench.protocols import get_protocol
from medlens.bench.samples import Sample
from medlens.bench.scoring import sample_as_asked
from medlens.types import Study

QUESTION = "Locate the square in this image."


def square_study() -> Study:
    pixels = np.zeros((1, 200, 400), np.uint8)
    pixels[0, 40:80, 100:200] = 255
    return Study(pixels, modality="OT")


def grounding_sample() -> Sample:
    return Sample(
        id="square",
        benchmark="test",
        split="test",
        question=QUESTION,
        answers=("square",),
        kind="grounding",
        images=(),
        metadata={"boxes": [{"label": "square", "box": [100, 40, 200, 80]}]},
    )


def prompt_text(prepared: pipeline.Prepared) -> str:
    return " ".join(
        part.text for m in prepared.request.messages for part in m.content if hasattr(part, "text")
    )


def test_the_view_size_caps_the_view_and_the_frame_the_prompt_states() -> None:
    prepared = pipeline.prepare(square_study(), QUESTION, kind="grounding", view_size=100)
    assert prepared.views[0].image.size == (100, 50)
    assert "100 pixels wide and 50 pixels high" in prompt_text(prepared)
    full = pipeline.prepare(square_study(), QUESTION, kind="grounding", view_size=2048)
    assert full.views[0].image.size == (400, 200)
    # Answers without coordinates keep the recipe's view, as upstream harnesses send it.
    closed = pipeline.prepare(square_study(), "Is there a square?", kind="closed", view_size=100)
    assert closed.views[0].image.size == (400, 200)


def test_gold_boxes_move_into_the_frame_the_model_was_shown() -> None:
    sample = grounding_sample()
    shrunk = pipeline.prepare(square_study(), QUESTION, kind="grounding", view_size=100)
    asked = sample_as_asked(sample, shrunk)
    assert asked.metadata["boxes"] == [{"label": "square", "box": [25.0, 10.0, 50.0, 20.0]}]
    answer = '[{"label": "square", "box_2d": [25, 10, 50, 20]}]'
    protocol = get_protocol("medlens")
    assert protocol.score(asked, answer).outcome == "correct"
    # Against the boxes of the full-size image, the same right answer has IoU 1/16.
    assert protocol.score(sample, answer).outcome == "wrong"
    unshrunk = pipeline.prepare(square_study(), QUESTION, kind="grounding")
    assert sample_as_asked(sample, unshrunk) is sample
