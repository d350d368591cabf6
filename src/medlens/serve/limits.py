"""Protection against overload: per-key rate limits, a bounded queue in front of the model,
a deadline per request, and a cap on request bodies.

Overload must fail fast and honestly (the "load shedding" of Google's SRE book, ch. 21): a
request that cannot start within its deadline gets 503 with ``Retry-After`` at once instead
of piling up, and a model call past the deadline gets 504. A call that timed out keeps its
slot until its thread really ends, so timed-out work cannot pile up threads behind the queue.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from medlens.serve.errors import APIError

T = TypeVar("T")


class RateLimiter:
    """A token bucket per client (RFC 2697's single-rate idea): ``rpm`` requests per minute on
    average, bursts up to ``burst`` (default: a minute's worth, at least 1)."""

    def __init__(self, rpm: float, burst: float | None = None) -> None:
        self.rate = rpm / 60.0
        self.capacity = max(1.0, burst if burst is not None else rpm)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, client: str, now: float | None = None) -> None:
        """Take one token for ``client`` or raise 429 saying when to come back."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(client, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens < 1.0:
                wait = math.ceil((1.0 - tokens) / self.rate)
                self._buckets[client] = (tokens, now)
                raise APIError(
                    f"Rate limit exceeded: this key may make {self.rate * 60:g} requests per "
                    f"minute. Retry in {wait} s.",
                    429,
                    "rate_limit_error",
                    {"Retry-After": str(wait)},
                )
            self._buckets[client] = (tokens - 1.0, now)


class Gate:
    """At most ``concurrency`` model calls at once, at most ``queue_size`` waiting.

    ``run(fn, deadline)`` waits for a slot until ``deadline`` (503 past it, or at once when
    the queue is full), then runs ``fn`` in a worker thread until ``deadline`` (504 past it).
    It also sheds what cannot finish in time: with ``service_s`` (a moving average of recent
    call durations), a request whose expected queueing plus service time would pass its
    deadline gets 503 at once, and one that gets a slot too late to finish is not started,
    so the model's time goes to requests that can still be answered.
    """

    SMOOTHING = 0.2

    def __init__(self, concurrency: int, queue_size: int) -> None:
        self.concurrency = concurrency
        self.queue_size = queue_size
        self.waiting = 0
        self.running = 0
        self.service_s = 0.0
        self._slots = asyncio.Semaphore(concurrency)
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="medlens-model")

    def _busy(self, why: str) -> APIError:
        return APIError(
            f"The server is busy ({why}: {self.running} running, {self.waiting} waiting). "
            "Retry in a few seconds, or start the server with a larger --queue-size.",
            503,
            "server_error",
            {"Retry-After": str(max(1, math.ceil(self.service_s * (self.waiting + 1))))},
        )

    def _expected_s(self) -> float:
        """Queueing plus service time a new request can expect (0 before any call ended)."""
        ahead = self.waiting + max(0, self.running - self.concurrency + 1)
        return self.service_s * (1 + ahead / self.concurrency)

    def _timed(self, fn: Callable[[], T]) -> Callable[[], T]:
        def call() -> T:
            started = time.monotonic()
            try:
                return fn()
            finally:
                elapsed = time.monotonic() - started
                self.service_s += (
                    self.SMOOTHING * (elapsed - self.service_s) if self.service_s else elapsed
                )

        return call

    async def run(self, fn: Callable[[], T], deadline: float) -> T:
        if self.waiting >= self.queue_size and self._slots.locked():
            raise self._busy("queue full")
        if time.monotonic() + self._expected_s() > deadline:
            raise self._busy("it could not be answered within the time-out")
        self.waiting += 1
        try:
            await asyncio.wait_for(self._slots.acquire(), max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            raise self._busy("no model slot freed before the request's time-out") from None
        finally:
            self.waiting -= 1
        if time.monotonic() + self.service_s > deadline:
            self._slots.release()
            raise self._busy("too little time left to answer before the time-out")
        self.running += 1
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool, self._timed(fn))

        def release(_: Any) -> None:
            self.running -= 1
            self._slots.release()

        future.add_done_callback(release)
        remaining = deadline - time.monotonic()
        try:
            return await asyncio.wait_for(asyncio.shield(future), max(0.0, remaining))
        except asyncio.TimeoutError:
            raise APIError(
                "The model did not answer within the server's time-out. Ask a simpler "
                "question, send a smaller study, or raise --timeout-s.",
                504,
                "timeout_error",
            ) from None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


class BodyLimit:
    """ASGI middleware refusing request bodies over ``max_bytes`` with 413, both from the
    declared Content-Length (before reading anything) and while streaming chunked bodies, so
    an oversized upload is never spooled whole."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _error(self) -> APIError:
        return APIError(
            f"The request body is larger than this server accepts ({self.max_bytes / 1e6:.1f} "
            "MB). Send a smaller study (one series, or a zip of it), or start the server with "
            "a larger --max-upload-mb.",
            413,
        )

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await send_error(send, self._error())
            return
        seen = 0

        async def limited_receive() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise self._error()
            return message

        await self.app(scope, limited_receive, send)


def error_body(message: str, type_: str, status: int) -> bytes:
    """OpenAI's error JSON."""
    import json

    error = {"message": message, "type": type_, "param": None, "code": status}
    return json.dumps({"error": error}).encode()


async def send_error(send: Callable[[Any], Awaitable[None]], error: APIError) -> None:
    """Answer with ``error`` straight from ASGI middleware (before any route runs)."""
    headers = [(b"content-type", b"application/json")]
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send(
        {"type": "http.response.body", "body": error_body(str(error), error.type, error.status)}
    )
