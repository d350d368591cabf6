"""``/v1/models`` and ``/v1/chat/completions``: the OpenAI-compatible API."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from medlens.serve import chat
from medlens.serve.protocol import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    ModelCard,
    ModelList,
)
from medlens.serve.routes.forms import ERRORS
from medlens.serve.state import request_started, server_state

router = APIRouter(tags=["openai"])


@router.get("/v1/models", responses={401: ERRORS[401]})
async def models(request: Request) -> ModelList:
    return ModelList(data=[ModelCard(id=server_state(request).config.model_name)])


@router.post(
    "/v1/chat/completions",
    response_model=ChatCompletionResponse,
    responses={k: v for k, v in ERRORS.items() if k != 415} | {404: ERRORS[400]},
)
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
    """OpenAI chat completions; images as data URLs; ``stream`` gives server-sent events."""
    state = server_state(request)
    name = state.config.model_name
    if body.model and body.model not in state.config.model_names:
        return JSONResponse(
            {
                "error": {
                    "message": f"The model '{body.model}' does not exist here. "
                    f"Available: {', '.join(state.config.model_names)}.",
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
        lambda: chat.ask_chat(state.config, backend, body), request_started(request)
    )
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(
            chat.stream_events(result, name, include_usage), media_type="text/event-stream"
        )
    return chat.to_response(result, name)
