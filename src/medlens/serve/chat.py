"""``/v1/chat/completions``: OpenAI chat requests in, ``pipeline.ask`` answers out.

The images of the user messages (data URLs only: the server fetches nothing) are the study;
the last user message's text is the question; a system message becomes the system prompt.
Earlier turns are not part of a medlens question: their count is logged, never their text.
Streaming sends the finished answer as server-sent events in OpenAI's chunk format, so
streaming clients work; the model itself is not token-streamed.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from medlens.errors import ConfigError
from medlens.serve.protocol import (
    ChatChoice,
    ChatChunkChoice,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatResponseMessage,
    DeltaMessage,
    ImageContentPart,
    TextContentPart,
    Usage,
)
from medlens.serve.uploads import UNZIP_FACTOR, Upload, load_upload, private_dir
from medlens.types import Answer, GenerationOptions

if TYPE_CHECKING:
    from medlens.backends.base import Backend
    from medlens.pipeline import Result
    from medlens.serve.config import ServeConfig

log = logging.getLogger("medlens.serve")

USED_FIELDS = {
    "messages",
    "model",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "seed",
    "stop",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "kind",
    "choices",
}


STRUCTURED_KEYS = (
    "kind",
    "answer",
    "abstained",
    "abstain_reason",
    "parsed",
    "choice",
    "rationale",
    "sections",
    "boxes",
    "confidence",
    "deidentification",
    "views",
    "model_label",
    "model_note",
)


@dataclass(frozen=True)
class ChatInput:
    question: str
    images: tuple[Upload, ...]
    system_prompt: str | None
    earlier_turns: int


def decode_data_url(url: str) -> Upload:
    """``data:<mime>;base64,<payload>`` → bytes; anything else is refused with a reason."""
    if not url.startswith("data:"):
        raise ConfigError(
            "Images must be sent as data URLs (data:image/png;base64,...): this server does "
            "not fetch remote URLs, so studies never pass through a third party."
        )
    header, sep, payload = url.partition(",")
    if not sep or not header.endswith(";base64"):
        raise ConfigError("An image data URL must be base64-encoded: data:<type>;base64,<data>.")
    try:
        return Upload(base64.b64decode(payload, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"An image data URL does not hold valid base64 ({exc}).") from exc


def parse_messages(request: ChatCompletionRequest) -> ChatInput:
    """Split the conversation into question, images and system prompt."""
    images: list[Upload] = []
    system: list[str] = []
    user_texts: list[str] = []
    for message in request.messages:
        parts = message.content
        texts: list[str] = []
        if isinstance(parts, str):
            texts.append(parts)
        elif parts is not None:
            for part in parts:
                if isinstance(part, TextContentPart):
                    texts.append(part.text)
                elif isinstance(part, ImageContentPart) and message.role == "user":
                    images.append(decode_data_url(part.image_url.url))
        if message.role in ("system", "developer"):
            system.extend(texts)
        elif message.role == "user":
            user_texts.append("\n".join(texts))
    if not user_texts or not user_texts[-1].strip():
        raise ConfigError("The last user message has no question text. Add a text part.")
    if not images:
        raise ConfigError(
            "No image in the user messages. Attach the study as an image_url content part "
            "with a data URL (PNG, JPEG or DICOM bytes, base64-encoded)."
        )
    return ChatInput(
        question=user_texts[-1].strip(),
        images=tuple(images),
        system_prompt="\n".join(system) or None,
        earlier_turns=len(request.messages) - 1 - len(system),
    )


def generation_options(request: ChatCompletionRequest) -> GenerationOptions:
    stop = (request.stop,) if isinstance(request.stop, str) else tuple(request.stop or ())
    values: dict[str, Any] = {
        "max_new_tokens": request.max_completion_tokens or request.max_tokens or 256,
        "temperature": request.temperature or 0.0,
        "top_p": request.top_p or 1.0,
        "seed": request.seed,
        "stop": stop,
    }
    return GenerationOptions(**values)


def ignored_fields(request: ChatCompletionRequest) -> list[str]:
    """Names of the request fields medlens does not act on (for the log; never values)."""
    sent = set(request.model_fields_set) | set(request.model_extra or {})
    return sorted(sent - USED_FIELDS)


def ask_chat(config: ServeConfig, backend: Backend, request: ChatCompletionRequest) -> Result:
    """Run the pipeline on a chat request (in the gate's worker thread)."""
    from medlens import pipeline

    chat = parse_messages(request)
    if chat.earlier_turns:
        log.info("chat: %d earlier turn(s) not used by the question", chat.earlier_turns)
    with private_dir() as workdir:
        studies = [
            load_upload(
                image,
                workdir,
                max_pixels=config.max_pixels,
                max_bytes=UNZIP_FACTOR * config.max_upload_bytes,
            )
            for image in chat.images
        ]
        kind = request.kind or ("choice" if request.choices else None)
        return pipeline.ask(
            studies if len(studies) > 1 else studies[0],
            chat.question,
            backend=backend,
            calibration=config.calibration,
            abstain_threshold=config.abstain_threshold,
            kind=kind,
            candidates=tuple(request.choices or ()),
            deidentify=True,
            options=generation_options(request),
            candidate_scoring=config.candidate_scoring,  # also for the guessed kind
            system_prompt=chat.system_prompt,
        )


def answer_content(answer: Answer) -> str:
    """The assistant message: the parsed answer, or the abstention said as such."""
    if answer.abstained:
        return f"[abstained] {answer.abstain_reason or 'confidence too low to answer'}"
    if not answer.parsed:
        return answer.raw
    lines = [answer.text or ""]
    lines.extend(f"{name.capitalize()}: {text}" for name, text in answer.sections.items())
    if answer.rationale:
        lines.append(f"Rationale: {answer.rationale}")
    return "\n".join(line for line in lines if line)


def _usage(result: Result) -> Usage:
    generation = result.generation
    prompt, completion = generation.prompt_tokens, len(generation.tokens)
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


def _structured(result: Result) -> dict[str, Any]:
    record = result.to_json()
    return {key: record[key] for key in STRUCTURED_KEYS}


def to_response(result: Result, model: str) -> ChatCompletionResponse:
    finish = "length" if result.generation.finish_reason == "length" else "stop"
    return ChatCompletionResponse(
        model=model,
        choices=[
            ChatChoice(
                message=ChatResponseMessage(content=answer_content(result.answer)),
                finish_reason=finish,
            )
        ],
        usage=_usage(result),
        medlens=_structured(result),
    )


def stream_events(result: Result, model: str, include_usage: bool) -> Iterator[str]:
    """Server-sent events in OpenAI's chunk format, ending with ``data: [DONE]``."""
    response = to_response(result, model)
    created = int(time.time())

    def event(choice: ChatChunkChoice | None, **extra: Any) -> str:
        chunk = ChatCompletionChunk(
            id=response.id,
            created=created,
            model=model,
            choices=[choice] if choice else [],
            **extra,
        )
        return f"data: {chunk.model_dump_json(exclude_none=True)}\n\n"

    yield event(ChatChunkChoice(delta=DeltaMessage(role="assistant", content="")))
    content = response.choices[0].message.content or ""
    for piece in _pieces(content):
        yield event(ChatChunkChoice(delta=DeltaMessage(content=piece)))
    yield event(
        ChatChunkChoice(delta=DeltaMessage(), finish_reason=response.choices[0].finish_reason),
        medlens=response.medlens,
    )
    if include_usage:
        yield event(None, usage=response.usage)
    yield "data: [DONE]\n\n"


def _pieces(text: str, size: int = 16) -> Iterator[str]:
    """Word-aligned pieces of about ``size`` characters; joined, they give ``text`` back."""
    piece = ""
    for i, word in enumerate(text.split(" ")):
        piece += (" " if i else "") + word
        if len(piece) >= size:
            yield piece
            piece = ""
    if piece:
        yield piece
