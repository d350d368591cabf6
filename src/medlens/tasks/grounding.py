"""Grounding: boxes around findings, in pixel coordinates of the first CURRENT view.

The prompt states the image size so that the model answers in the pixels it was shown; a
backend whose processor resizes images (Qwen2.5-VL) sees the size it must map back from.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from medlens.errors import ConfigError
from medlens.tasks.base import TASKS, Task
from medlens.tasks.parse import parse_boxes
from medlens.types import Answer, Request, View


class GroundingTask(Task):
    kind = "grounding"
    name = "grounding"
    version = "2"
    default_question = "Locate the abnormal findings."
    max_new_tokens = 512

    def template_fields(self, candidates: tuple[str, ...], views: Sequence[View]) -> dict[str, Any]:
        width, height = _target(views).image.size
        return {"width": width, "height": height}

    def request_metadata(self, views: Sequence[View]) -> dict[str, Any]:
        return {"image_size": tuple(_target(views).image.size), "view_index": 0}

    def parse_text(self, text: str, request: Request) -> Answer:
        result = parse_boxes(text, _image_size(request), view_index=0)
        if result.error is not None:
            return Answer(self.kind, text, parsed=False, parse_error=result.error)
        labels = ", ".join(b.label for b in result.boxes if b.label)
        return Answer(self.kind, text, parsed=True, text=labels, boxes=result.boxes)


def _target(views: Sequence[View]) -> View:
    if not views:
        raise ConfigError("A grounding question needs an image to draw boxes on.")
    return views[0]


def _image_size(request: Request) -> tuple[int, int] | None:
    size = request.metadata.get("image_size")
    if (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(isinstance(v, int) and v > 0 for v in size)
    ):
        return (size[0], size[1])
    images = request.images
    if not images:
        return None
    width, height = images[-1].size
    return (width, height)


TASKS.register("grounding", GroundingTask())
