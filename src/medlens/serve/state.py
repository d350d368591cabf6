"""What the routes share (``ServerState``: configuration, model, gate, keys, metrics) and the
one-line accessors a route uses to reach it on ``request.app.state``, as vLLM's routers do.
It sits below the routes and the app factory, so that neither imports the other."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

from medlens.errors import MedlensError
from medlens.serve.auth import KeyStore
from medlens.serve.config import ServeConfig
from medlens.serve.errors import APIError
from medlens.serve.limits import Gate, RateLimiter
from medlens.serve.metrics import Metrics

if TYPE_CHECKING:
    from medlens.backends.base import Backend
    from medlens.serve.speech import Transcriber

log = logging.getLogger("medlens.serve")
T = TypeVar("T")


class ModelHolder:
    """The backend, loaded in a background thread so that ``/healthz`` answers at once and
    ``/readyz`` says when the model can take requests."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.backend: Backend | None = config.backend
        self.error: str | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.backend is not None:
            return
        self._thread = threading.Thread(target=self._load, name="medlens-load", daemon=True)
        self._thread.start()

    def _load(self) -> None:
        from medlens.backends.base import load_backend

        try:
            self.backend = load_backend(
                self.config.model, self.config.backend_name, **dict(self.config.backend_options)
            )
        except MedlensError as exc:
            self.error = str(exc)
            log.error("model failed to load: %s", exc)

    def get(self) -> Backend:
        if self.backend is not None:
            return self.backend
        message = (
            f"The model failed to load: {self.error}"
            if self.error
            else "The model is still loading; retry when /readyz answers 200."
        )
        raise APIError(message, 503, "server_error", {"Retry-After": "5"})

    def close(self) -> None:
        if self.backend is not None and self.config.backend is None:
            self.backend.close()


@dataclass
class ServerState:
    """What the routes share: configuration, model, gate, keys and metrics."""

    config: ServeConfig
    metrics: Metrics = field(default_factory=Metrics)
    model: ModelHolder = field(init=False)
    gate: Gate = field(init=False)
    keys: KeyStore | None = field(init=False)
    limiter: RateLimiter | None = field(init=False)
    _transcriber: Transcriber | None = field(init=False, default=None)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        config = self.config
        self.model = ModelHolder(config)
        self.gate = Gate(config.max_concurrency, config.queue_size)
        self.keys = KeyStore(config.api_key_file) if config.api_key_file else None
        rpm = config.rate_limit_rpm
        self.limiter = RateLimiter(rpm) if rpm else None
        self._transcriber = config.transcriber
        self.metrics.waiting.set_function(lambda: self.gate.waiting)
        self.metrics.running.set_function(lambda: self.gate.running)
        self.metrics.ready.set_function(lambda: float(self.model.backend is not None))

    async def run(self, fn: Callable[[], T], started: float) -> T:
        """Run blocking model work through the gate, within the request's time-out."""
        return await self.gate.run(fn, started + self.config.timeout_s)

    def transcriber(self) -> Transcriber:
        with self._lock:
            if self._transcriber is None:
                from medlens.serve.speech import load_transcriber

                self._transcriber = load_transcriber(self.config.whisper_path)
            return self._transcriber


def server_state(request: Any) -> ServerState:
    """The state of the app serving ``request`` (a FastAPI ``Request``)."""
    return cast("ServerState", request.app.state.medlens)


def request_started(request: Any) -> float:
    """When the ``Guard`` middleware saw the request (its time-out counts from there)."""
    return float(request.scope.get("state", {}).get("started", time.monotonic()))
