"""``ServeConfig``: everything ``medlens serve`` can be told, in one frozen dataclass.

The defaults protect a server started without thinking: loopback only, 1 model call at a
time with 8 waiting, 60 s per request, 64 MB uploads, 100 M pixels per study, CORS off.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medlens.errors import ConfigError

if TYPE_CHECKING:
    from medlens.backends.base import Backend
    from medlens.serve.speech import Transcriber
    from medlens.trust.calibration import CalibrationProfile

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class ServeConfig:
    """How the server runs.

    ``backend`` may be given ready-made (tests, embedding in another app); otherwise
    ``model``/``backend_name``/``backend_options`` go to ``medlens.backends.load_backend`` in a
    background thread at start-up, and ``/readyz`` answers 503 until it is loaded.
    ``api_key_file`` None means no authentication, which ``validate`` allows on loopback only.
    """

    model: str = "scripted"
    backend_name: str | None = None
    backend_options: Mapping[str, Any] = field(default_factory=dict)
    backend: Backend | None = None
    served_model_name: str | None = None
    """The id ``/v1/models`` lists and chat requests name (default: ``model``)."""
    calibration: CalibrationProfile | None = None
    abstain_threshold: float | None = None
    candidate_scoring: bool = True
    """Closed and multiple-choice questions (given or guessed) score their candidates where
    the model can, as ``medlens ask`` does; False (``--generate``) generates them."""
    api_key_file: Path | None = None
    host: str = "127.0.0.1"
    max_upload_bytes: int = 64 * 1024 * 1024
    max_pixels: int = 100_000_000
    timeout_s: float = 60.0
    """Wall-clock bound on one request's queueing plus model time (504/503 past it)."""
    max_concurrency: int = 1
    """Model calls running at once (one in-process model is not re-entrant)."""
    queue_size: int = 8
    """Requests allowed to wait for a model slot; the next one gets 503 at once."""
    rate_limit_rpm: float | None = None
    """Requests per minute per API key (per client address without auth); None: no limit."""
    cors_origins: tuple[str, ...] = ()
    transcriber: Transcriber | None = None
    """Speech recogniser for ``/v1/audio/transcriptions`` (default: pocketsphinx, built lazily)."""
    whisper_path: Path | None = None
    max_audio_seconds: float = 60.0
    max_slices: int = 512
    """Slices the viewer endpoint renders at most (the rest are sampled evenly)."""

    @property
    def model_name(self) -> str:
        return self.served_model_name or self.model

    @property
    def model_names(self) -> tuple[str, ...]:
        """Every name a request may give the model by: the served name (``--served-model``),
        the model as passed (a path or Hub id) and that path's last part, as clients of
        vLLM use the path or the alias interchangeably."""
        names = [self.model_name, self.model, self.model.rstrip("/\\")]
        names.append(names[-1].replace("\\", "/").rsplit("/", 1)[-1])
        return tuple(dict.fromkeys(n for n in names if n))

    def validate(self) -> ServeConfig:
        """Refuse combinations that would expose an unprotected server."""
        if self.api_key_file is None and self.host not in LOOPBACK_HOSTS:
            raise ConfigError(
                f"Refusing to serve on {self.host} without API keys: anyone on the network "
                "could send studies to the model. Create a key with `medlens serve --add-key "
                "NAME` and pass --api-key-file, or bind to 127.0.0.1."
            )
        for name in ("max_upload_bytes", "max_pixels", "timeout_s", "max_concurrency"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}.")
        if self.queue_size < 0:
            raise ConfigError(f"queue_size must be 0 or more, got {self.queue_size}.")
        if self.rate_limit_rpm is not None and self.rate_limit_rpm <= 0:
            raise ConfigError(
                f"rate_limit_rpm must be positive, got {self.rate_limit_rpm}; omit it for no limit."
            )
        return self
