"""HTTP status and OpenAI error type for every error the server returns.

``APIError`` carries a status chosen by the server itself (401, 413, 429, 503, 504);
``MedlensError`` raised by the library maps by class, so a bad upload is a 4xx with the
library's own what/why/what-to-do message, never a 500 with a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping

from medlens.errors import (
    BackendError,
    CalibrationError,
    ConfigError,
    DataError,
    ImageTooLargeError,
    MedlensError,
    MissingDependencyError,
    PrivacyError,
    StudyError,
    UnsupportedFormatError,
)


class APIError(MedlensError):
    """An error with an HTTP status decided by the server (auth, limits, overload)."""

    def __init__(
        self,
        message: str,
        status: int,
        type_: str = "invalid_request_error",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.headers = dict(headers or {})


# First match wins: subclasses before their parents.
_STATUS: tuple[tuple[type[MedlensError], int, str], ...] = (
    (ImageTooLargeError, 413, "invalid_request_error"),
    (UnsupportedFormatError, 415, "invalid_request_error"),
    (StudyError, 400, "invalid_request_error"),
    (MissingDependencyError, 501, "server_error"),
    (ConfigError, 400, "invalid_request_error"),
    (PrivacyError, 403, "invalid_request_error"),
    (CalibrationError, 409, "invalid_request_error"),
    (DataError, 400, "invalid_request_error"),
    (BackendError, 502, "server_error"),
)


def status_for(exc: MedlensError) -> tuple[int, str]:
    """The HTTP status and OpenAI error type for ``exc``."""
    if isinstance(exc, APIError):
        return exc.status, exc.type
    for cls, status, type_ in _STATUS:
        if isinstance(exc, cls):
            return status, type_
    return 400, "invalid_request_error"
