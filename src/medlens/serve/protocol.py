"""Pydantic models of the HTTP API, with OpenAI's field names and order.

Following vLLM's ``entrypoints/openai/protocol.py``: chat requests accept the fields OpenAI
clients send; fields medlens does not use are accepted and their *names* (never values) logged.
Errors are OpenAI error JSON: ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class ErrorInfo(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: int


class ErrorResponse(BaseModel):
    error: ErrorInfo


# --------------------------------------------------------------------------------------------
# /v1/models
# --------------------------------------------------------------------------------------------


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(default_factory=lambda: int(time.time()))
    owned_by: str = "medlens"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# --------------------------------------------------------------------------------------------
# /v1/chat/completions
# --------------------------------------------------------------------------------------------


class ImageURL(BaseModel):
    url: str
    """A ``data:image/png;base64,...`` URL (remote URLs are refused: the server fetches nothing)."""
    detail: str | None = None


class TextContentPart(BaseModel):
    type: Literal["text"]
    text: str


class ImageContentPart(BaseModel):
    type: Literal["image_url"]
    image_url: ImageURL


ContentPart = TextContentPart | ImageContentPart


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat request. medlens extensions: ``kind`` (answer format) and ``choices``
    (multiple-choice options) — an OpenAI client passes them through ``extra_body``."""

    model_config = ConfigDict(extra="allow")

    messages: list[ChatMessage] = Field(min_length=1)
    model: str | None = None
    frequency_penalty: float | None = None
    logprobs: bool | None = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    n: int | None = Field(default=1, ge=1, le=1)
    presence_penalty: float | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    user: str | None = None
    kind: Literal["closed", "open", "choice", "report", "grounding"] | None = None
    choices: list[str] | None = None


class ChatResponseMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None = None


class ChatChoice(BaseModel):
    index: int = 0
    message: ChatResponseMessage
    logprobs: Any | None = None
    finish_reason: str | None = "stop"


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ChatCompletionResponse(BaseModel):
    """OpenAI's response plus ``medlens``: the structured result (confidence, boxes,
    abstention, de-identification summary) that plain OpenAI clients simply ignore."""

    id: str = Field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[ChatChoice]
    usage: Usage = Field(default_factory=Usage)
    medlens: dict[str, Any] | None = None


class DeltaMessage(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatChunkChoice(BaseModel):
    index: int = 0
    delta: DeltaMessage
    logprobs: Any | None = None
    finish_reason: str | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None
    medlens: dict[str, Any] | None = None


# --------------------------------------------------------------------------------------------
# /v1/analyze and the viewer
# --------------------------------------------------------------------------------------------


class BoxOut(BaseModel):
    """A box in the pixels of view ``view_index`` (``views[view_index]``)."""

    x0: float
    y0: float
    x1: float
    y1: float
    label: str = ""
    view_index: int = 0
    score: float | None = None


class ConfidenceOut(BaseModel):
    value: float
    method: str
    calibrated: bool
    profile: str | None = None
    candidates: dict[str, float] = Field(default_factory=dict)


class ViewOut(BaseModel):
    label: str
    width: int
    height: int
    image: str
    """PNG data URL of the de-identified image the model saw."""


class DicomFile(BaseModel):
    """A DICOM object for download: its Part 10 bytes in base64, under a fixed file name."""

    filename: str
    media_type: Literal["application/dicom"] = "application/dicom"
    data: str
    """Base64 of the file (``sr.dcm``): a Comprehensive 3D SR, TID 1500."""
    series_instance_uid: str
    sop_instance_uid: str


class FhirDocument(BaseModel):
    """A FHIR Bundle (DiagnosticReport, Observations, ImagingStudy, Device, Patient)."""

    filename: str
    version: Literal["R5", "R4B"]
    resource: dict[str, Any]


class ExportOut(BaseModel):
    """The answer as hospital systems take it (``export=sr,fhir``), built by
    ``medlens.interop.export`` as ``medlens ask --export`` builds it."""

    identifiers: str
    """The identifier choice the outputs carry, in words (also written inside each)."""
    deidentified: bool
    """True: the de-identified study's identifiers (the server always de-identifies)."""
    role: str
    sr: DicomFile | None = None
    fhir: FhirDocument | None = None
    notes: list[str] = Field(default_factory=list)


class AnalyzeResponse(BaseModel):
    """The structured answer to one question about one uploaded study."""

    id: str
    model: str
    model_label: str = ""
    """Who answered: "baseline" (answers without a model), "demonstration model" (shipped by
    medlens, not for clinical use) or "user model"."""
    model_note: str = ""
    """What a shipped demonstration model is, in one sentence (empty for other models)."""
    question: str
    kind: str
    answer: str | None
    """The answer text, or None when the model abstained or the text could not be parsed."""
    choice: str | None = None
    rationale: str | None = None
    sections: dict[str, str] = Field(default_factory=dict)
    boxes: list[BoxOut] = Field(default_factory=list)
    confidence: ConfidenceOut | None = None
    abstained: bool = False
    abstain_reason: str | None = None
    parsed: bool = True
    parse_error: str | None = None
    raw: str = ""
    deidentification: list[dict[str, Any]] = Field(default_factory=list)
    study: dict[str, Any] = Field(default_factory=dict)
    views: list[ViewOut] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)
    export: ExportOut | None = None
    """DICOM SR and/or FHIR of the answer, when the request asked for them (``export``)."""


class SliceStack(BaseModel):
    """A study rendered for people: every slice (or an even sample) as PNG data URLs."""

    modality: str
    window: str | None
    windows: list[str]
    """Window presets that make sense for this study (CT: lung, soft-tissue, bone, brain...)."""
    num_slices: int
    slice_indices: list[int]
    width: int
    height: int
    slices: list[str]
    deidentification: list[dict[str, Any]] = Field(default_factory=list)
    exports: list[str] = Field(default_factory=list)
    """What an answer about this study can be exported as here (``export``): "sr" for a
    DICOM study, "fhir", each when ``medlens[pacs]`` is installed."""


class TranscriptionResponse(BaseModel):
    """OpenAI's ``/v1/audio/transcriptions`` JSON response."""

    text: str
    model: str | None = None
    duration: float | None = None
