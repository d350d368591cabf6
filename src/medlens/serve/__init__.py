"""``medlens serve``: the pipeline behind an HTTP API and a web page.

- ``/v1/chat/completions`` and ``/v1/models``: OpenAI-compatible, so any OpenAI client can use
  medlens as a model (images as data URLs; ``stream=true`` gives server-sent events);
- ``/v1/analyze``: an uploaded study (DICOM, zip of a series, NIfTI, PNG/JPEG; optional prior)
  and a question → the structured answer with calibrated confidence, abstention and the
  de-identification summary; ``/v1/render`` and ``/v1/audio/transcriptions`` serve the page;
- ``/healthz``, ``/readyz``, ``/metrics`` (Prometheus), ``/openapi.json``; the page at ``/``.

>>> from medlens.serve import ServeConfig, create_app  # doctest: +SKIP
>>> app = create_app(ServeConfig(model="Qwen/Qwen2.5-VL-3B-Instruct"))  # doctest: +SKIP

Layout after vLLM's ``entrypoints/openai``: ``protocol`` (pydantic models), ``chat`` /
``analyze`` / ``speech`` (logic), ``state`` (what the routes share), ``routes/`` (one
module-level ``APIRouter`` per feature), ``app`` (the factory and the protections).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from medlens.serve.config import ServeConfig

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["ServeConfig", "create_app"]


def create_app(config: ServeConfig) -> FastAPI:
    """Build the app (imports FastAPI only now; see ``medlens.serve.app.create_app``)."""
    from medlens.errors import require

    require("fastapi", "serve", "medlens serve")
    from medlens.serve.app import create_app as build

    return build(config)
