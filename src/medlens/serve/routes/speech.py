"""``/v1/audio/transcriptions``: a spoken question to text (OpenAI's endpoint shape)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from medlens.serve.protocol import TranscriptionResponse
from medlens.serve.routes.forms import ERRORS, FILE, form_schema, read_form, required_file
from medlens.serve.state import request_started, server_state

router = APIRouter(tags=["openai"])


@router.post(
    "/v1/audio/transcriptions",
    response_model=TranscriptionResponse,
    responses=ERRORS,
    openapi_extra=form_schema(
        {"file": FILE | {"description": "WAV (PCM) audio"}, "model": {"type": "string"}},
        ["file"],
    ),
)
async def transcribe(request: Request) -> TranscriptionResponse:
    """A spoken question to text, with the offline recogniser (OpenAI's endpoint shape)."""
    state = server_state(request)
    files, _ = await read_form(request)
    audio = required_file(files, "file", "a WAV recording")
    max_seconds = state.config.max_audio_seconds

    def work() -> TranscriptionResponse:
        transcriber = state.transcriber()
        transcript = transcriber.transcribe(audio.data, max_seconds=max_seconds)
        return TranscriptionResponse(
            text=transcript.text, model=transcriber.name, duration=transcript.duration_s
        )

    return await state.run(work, request_started(request))
