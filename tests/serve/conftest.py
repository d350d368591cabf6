"""Fixtures for the server tests: a real uvicorn server on a loopback port per test."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from medlens.backends.scripted import ScriptedBackend
from medlens.serve import ServeConfig, create_app
from medlens.serve.live import serve_in_thread
from medlens.types import Request

BOX = (40, 30, 90, 70)


def scripted_reply(request: Request) -> str:
    """Answers a grounding question with one box, anything else with "yes"."""
    if request.kind == "grounding":
        x0, y0, x1, y1 = BOX
        return f'[{{"label": "nodule", "box_2d": [{x0}, {y0}, {x1}, {y1}]}}]'
    return "yes"


def scripted_logprobs(request: Request) -> dict[str, float]:
    """Candidate log-likelihoods for closed questions: P(yes) = 1 / (1 + e^-2.3) = 0.909."""
    return {"yes": -0.1, "no": -2.4} if request.kind == "closed" else {}


def scripted_backend() -> ScriptedBackend:
    return ScriptedBackend(answers=scripted_reply, logprobs=scripted_logprobs)


def slow_backend(delay_s: float) -> ScriptedBackend:
    def reply(request: Request) -> str:
        time.sleep(delay_s)
        return "yes"

    return ScriptedBackend(answers=reply)


def png_bytes(size: tuple[int, int] = (128, 128), seed: int = 0) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = (rng.random((size[1], size[0])) * 200).astype("uint8")
    pixels[30:70, 40:90] = 255  # a bright "finding" where the scripted box goes
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def png() -> bytes:
    return png_bytes()


@pytest.fixture
def serve() -> Iterator[Callable[..., str]]:
    """``serve(**config) -> base URL``: start an app with a scripted backend by default."""
    with ExitStack() as stack:

        def start(**overrides: Any) -> str:
            config = ServeConfig(backend=scripted_backend())
            return stack.enter_context(serve_in_thread(create_app(replace(config, **overrides))))

        yield start
