"""Thin routers: read the HTTP request, run the logic of ``chat``/``analyze``/``speech`` in the
model gate, and shape the response. No pipeline logic lives here. (Imported by
``create_app`` only, so FastAPI is imported at module level: it resolves annotations here.)"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import UploadFile

from medlens.errors import ConfigError
from medlens.serve.protocol import (
    AnalyzeResponse,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ErrorResponse,
    ModelCard,
    ModelList,
    SliceStack,
    TranscriptionResponse,
)
from medlens.serve.uploads import Upload

if TYPE_CHECKING:
    from medlens.serve.app import ServerState

STATIC = Path(__file__).parent / "static"
KINDS = ("closed", "open", "choice", "report", "grounding")
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": why}
    for code, why in {
        400: "invalid request (message says what to change)",
        401: "missing or invalid API key",
        413: "upload or image larger than the server accepts",
        415: "not a DICOM, NIfTI, PNG, JPEG or TIFF study",
        429: "rate limit exceeded (Retry-After says when to retry)",
        503: "queue full or model loading (Retry-After)",
        504: "the model did not answer within the time-out",
    }.items()
}


def _state(request: Request) -> ServerState:
    return cast("ServerState", request.app.state.medlens)


def _started(request: Request) -> float:
    return float(request.scope.get("state", {}).get("started", time.monotonic()))


def _form_schema(fields: dict[str, dict[str, Any]], required: list[str]) -> dict[str, Any]:
    """OpenAPI for a multipart body read by hand (so that size errors keep their 413)."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", "properties": fields, "required": required}
                }
            },
        }
    }


FILE = {"type": "string", "format": "binary"}
MODALITY = {"type": "string", "description": "modality when the file cannot say it (NIfTI: CT)"}


async def _form(request: Request) -> tuple[dict[str, Upload], dict[str, str]]:
    """Files and text fields of a multipart body (file names are dropped on reading)."""
    form = await request.form(max_files=4, max_fields=20)
    files: dict[str, Upload] = {}
    fields: dict[str, str] = {}
    try:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read()
                if data:
                    files[name] = Upload(data)
            else:
                fields[name] = value
    finally:
        await form.close()
    return files, fields


def _required_file(files: dict[str, Upload], name: str, what: str) -> Upload:
    if name not in files:
        raise ConfigError(f"No '{name}' file in the form: upload {what} as '{name}'.")
    return files[name]


def install(app: FastAPI) -> None:
    """Add every route of the server to ``app``."""
    from medlens.serve import analyze, chat

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """The process is up (says nothing about the model)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], responses={503: ERRORS[503]})
    async def readyz(request: Request) -> dict[str, str]:
        """200 once the model is loaded and requests can be served."""
        state = _state(request)
        state.model.get()
        return {"status": "ready", "model": state.config.model_name}

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def metrics(request: Request) -> Response:
        """Prometheus text exposition format."""
        body, content_type = _state(request).metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/v1/models", tags=["openai"], responses={401: ERRORS[401]})
    async def models(request: Request) -> ModelList:
        return ModelList(data=[ModelCard(id=_state(request).config.model_name)])

    @app.post(
        "/v1/chat/completions",
        tags=["openai"],
        response_model=ChatCompletionResponse,
        responses={k: v for k, v in ERRORS.items() if k != 415} | {404: ERRORS[400]},
    )
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
        """OpenAI chat completions; images as data URLs; ``stream`` gives server-sent events."""
        state = _state(request)
        name = state.config.model_name
        if body.model and body.model != name:
            return JSONResponse(
                {
                    "error": {
                        "message": f"The model '{body.model}' does not exist here. "
                        f"Available: {name}.",
                        "type": "invalid_request_error",
                        "param": "model",
                        "code": 404,
                    }
                },
                status_code=404,
            )
        ignored = chat.ignored_fields(body)
        if ignored:
            chat.log.info("chat: ignored fields %s", ", ".join(ignored))
        backend = state.model.get()
        result = await state.run(
            lambda: chat.ask_chat(state.config, backend, body), _started(request)
        )
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return StreamingResponse(
                chat.stream_events(result, name, include_usage), media_type="text/event-stream"
            )
        return chat.to_response(result, name)

    analyze_fields: dict[str, dict[str, Any]] = {
        "file": FILE | {"description": "DICOM file, zip of a DICOM series, NIfTI, PNG/JPEG"},
        "prior": FILE | {"description": "optional earlier study for comparison"},
        "question": {"type": "string"},
        "kind": {"type": "string", "enum": list(KINDS), "description": "answer format"},
        "choices": {"type": "string", "description": "multiple-choice options, '|'-separated"},
        "recipe": {"type": "string", "description": "preprocessing recipe name"},
        "modality": MODALITY,
    }

    @app.post(
        "/v1/analyze",
        tags=["medlens"],
        response_model=AnalyzeResponse,
        responses=ERRORS,
        openapi_extra=_form_schema(analyze_fields, ["file", "question"]),
    )
    async def analyze_study(request: Request) -> AnalyzeResponse:
        """Ask a question about an uploaded study: the structured, calibrated answer."""
        state = _state(request)
        files, fields = await _form(request)
        current = _required_file(files, "file", "the study")
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
            _started(request),
        )
        return analyze.to_response(result, state.config.model_name)

    @app.post(
        "/v1/render",
        tags=["medlens"],
        response_model=SliceStack,
        responses=ERRORS,
        openapi_extra=_form_schema(
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
        state = _state(request)
        files, fields = await _form(request)
        upload = _required_file(files, "file", "the study")
        window = fields.get("window") or None
        modality = fields.get("modality") or None
        return await state.run(
            lambda: analyze.render_stack(state.config, upload, window, modality),
            _started(request),
        )

    @app.post(
        "/v1/audio/transcriptions",
        tags=["openai"],
        response_model=TranscriptionResponse,
        responses=ERRORS,
        openapi_extra=_form_schema(
            {"file": FILE | {"description": "WAV (PCM) audio"}, "model": {"type": "string"}},
            ["file"],
        ),
    )
    async def transcribe(request: Request) -> TranscriptionResponse:
        """A spoken question to text, with the offline recogniser (OpenAI's endpoint shape)."""
        state = _state(request)
        files, _ = await _form(request)
        audio = _required_file(files, "file", "a WAV recording")
        max_seconds = state.config.max_audio_seconds

        def work() -> TranscriptionResponse:
            transcriber = state.transcriber()
            transcript = transcriber.transcribe(audio.data, max_seconds=max_seconds)
            return TranscriptionResponse(
                text=transcript.text, model=transcriber.name, duration=transcript.duration_s
            )

        return await state.run(work, _started(request))

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
