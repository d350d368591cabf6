"""``/v1/analyze`` (a question about an uploaded study) and ``/v1/render`` (its slices for the
page's viewer)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request

from medlens.errors import ConfigError
from medlens.interop.export import parse_outputs
from medlens.serve import analyze
from medlens.serve.protocol import AnalyzeResponse, ExportOut, SliceStack
from medlens.serve.routes.forms import ERRORS, FILE, MODALITY, form_schema, read_form, required_file
from medlens.serve.state import request_started, server_state

if TYPE_CHECKING:
    from medlens.pipeline import Result

router = APIRouter(tags=["medlens"])

KINDS = ("closed", "open", "choice", "report", "grounding")
FHIR_VERSIONS = ("R5", "R4B")
ANALYZE_FIELDS: dict[str, dict[str, Any]] = {
    "file": FILE | {"description": "DICOM file, zip of a DICOM series, NIfTI, PNG/JPEG"},
    "prior": FILE | {"description": "optional earlier study for comparison"},
    "question": {"type": "string"},
    "kind": {"type": "string", "enum": list(KINDS), "description": "answer format"},
    "choices": {"type": "string", "description": "multiple-choice options, '|'-separated"},
    "recipe": {"type": "string", "description": "preprocessing recipe name"},
    "modality": MODALITY,
    "export": {
        "type": "string",
        "description": "also return the answer as 'sr' (DICOM SR, base64; DICOM studies "
        "only) and/or 'fhir' (a FHIR DiagnosticReport Bundle), comma-separated: 'sr,fhir'",
    },
    "fhir_version": {"type": "string", "enum": list(FHIR_VERSIONS), "default": "R5"},
}


@router.post(
    "/v1/analyze",
    response_model=AnalyzeResponse,
    responses=ERRORS,
    openapi_extra=form_schema(ANALYZE_FIELDS, ["file", "question"]),
)
async def analyze_study(request: Request) -> AnalyzeResponse:
    """Ask a question about an uploaded study: the structured, calibrated answer, and with
    ``export=sr,fhir`` the same answer as a DICOM SR (TID 1500) and a FHIR DiagnosticReport,
    carrying the de-identified study's identifiers (the choice is recorded in each)."""
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
    outputs = parse_outputs(fields.get("export", ""))
    fhir_version = (fields.get("fhir_version") or "R5").upper()
    if fhir_version not in FHIR_VERSIONS:
        raise ConfigError(
            f"Unknown fhir_version '{fields['fhir_version']}'. Use one of: "
            f"{', '.join(FHIR_VERSIONS)}."
        )
    backend = state.model.get()

    def answer() -> tuple[Result, ExportOut | None]:
        result = analyze.ask_uploaded(
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
            outputs=outputs,
        )
        exported = analyze.export_result(result, outputs, fhir_version) if outputs else None
        return result, exported

    result, exported = await state.run(answer, request_started(request))
    return analyze.to_response(result, state.config.model_name, exported)


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
