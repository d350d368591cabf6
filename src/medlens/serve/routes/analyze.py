"""``/v1/analyze`` (a question about an uploaded study) and ``/v1/render`` (its slices for the
page's viewer)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from medlens.errors import ConfigError
from medlens.serve import analyze
from medlens.serve.protocol import AnalyzeResponse, SliceStack
from medlens.serve.routes.forms import ERRORS, FILE, MODALITY, form_schema, read_form, required_file
from medlens.serve.state import request_started, server_state

router = APIRouter(tags=["medlens"])

KINDS = ("closed", "open", "choice", "report", "grounding")
ANALYZE_FIELDS: dict[str, dict[str, Any]] = {
    "file": FILE | {"description": "DICOM file, zip of a DICOM series, NIfTI, PNG/JPEG"},
    "prior": FILE | {"description": "optional earlier study for comparison"},
    "question": {"type": "string"},
    "kind": {"type": "string", "enum": list(KINDS), "description": "answer format"},
    "choices": {"type": "string", "description": "multiple-choice options, '|'-separated"},
    "recipe": {"type": "string", "description": "preprocessing recipe name"},
    "modality": MODALITY,
}


@router.post(
    "/v1/analyze",
    response_model=AnalyzeResponse,
    responses=ERRORS,
    openapi_extra=form_schema(ANALYZE_FIELDS, ["file", "question"]),
)
async def analyze_study(request: Request) -> AnalyzeResponse:
    """Ask a question about an uploaded study: the structured, calibrated answer."""
    state = server_state(request)
    files, fields = await read_form(request)
    current = required_file(files, "file", "the study")
    question = fields.get("question", "").strip()
    if not question:
        raise ConfigError("The form has no 'question': add the question to ask.")
    kind = fields.get("kind") or None
    if kind is not None and kind not in KINDS:
        raise ConfigError(f"Unknown kind '{kind}'. Use one of: {', '.join(KINDS)}.")
    choices = [c.strip() for c in fields.get("choices", "").split("|") if c.strip()]
    backend = state.model.get()
    result = await state.run(
        lambda: analyze.ask_uploaded(
            state.config,
            backend,
            current,
            question,
            prior=files.get("prior"),
            kind=kind,  # type: ignore[arg-type]
            choices=choices,
            recipe=fields.get("recipe") or None,
            modality=fields.get("modality") or None,
            request_id=request.scope["state"]["request_id"],
        ),
        request_started(request),
    )
    return analyze.to_response(result, state.config.model_name)


@router.post(
    "/v1/render",
    response_model=SliceStack,
    responses=ERRORS,
    openapi_extra=form_schema(
        {
            "file": FILE,
            "window": {"type": "string", "description": "CT window preset"},
            "modality": MODALITY,
        },
        ["file"],
    ),
)
async def render(request: Request) -> SliceStack:
    """The de-identified study as PNG slices for the viewer (CT with a window preset)."""
    state = server_state(request)
    files, fields = await read_form(request)
    upload = required_file(files, "file", "the study")
    window = fields.get("window") or None
    modality = fields.get("modality") or None
    return await state.run(
        lambda: analyze.render_stack(state.config, upload, window, modality),
        request_started(request),
    )
