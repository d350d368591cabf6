"""What the routers share: the documented error responses, and multipart forms read by hand
(so that size errors keep their 413) with their OpenAPI description."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile

from medlens.errors import ConfigError
from medlens.serve.protocol import ErrorResponse
from medlens.serve.uploads import Upload

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
FILE = {"type": "string", "format": "binary"}
MODALITY = {"type": "string", "description": "modality when the file cannot say it (NIfTI: CT)"}


def form_schema(fields: dict[str, dict[str, Any]], required: list[str]) -> dict[str, Any]:
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


async def read_form(request: Request) -> tuple[dict[str, Upload], dict[str, str]]:
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


def required_file(files: dict[str, Upload], name: str, what: str) -> Upload:
    if name not in files:
        raise ConfigError(f"No '{name}' file in the form: upload {what} as '{name}'.")
    return files[name]
