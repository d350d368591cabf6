"""``create_app(config) -> FastAPI``: the medlens server, its state and its protections.

Request path, outermost first: ``BodyLimit`` (413 on oversized bodies, before reading them)
→ ``Guard`` (request id, API key → 401, rate limit → 429, metrics, one log line without
content) → CORS (only when origins are configured) → routes, whose model work goes through
the ``Gate`` (503 when the queue is full, 504 past the time-out). The routes are module-level
``APIRouter``s (``medlens.serve.routes``) that this factory includes; it defines none itself.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from medlens.errors import MedlensError
from medlens.serve.config import ServeConfig
from medlens.serve.errors import APIError, status_for
from medlens.serve.limits import ASGIApp, BodyLimit, error_body, send_error
from medlens.serve.metrics import REJECT_REASONS
from medlens.serve.state import ServerState, log

if TYPE_CHECKING:
    from fastapi import FastAPI

MULTIPART_OVERHEAD = 1 << 20
"""Room for form fields and multipart boundaries beside the study bytes."""


class Guard:
    """ASGI middleware: request id, API key and rate limit for ``/v1``, metrics and a log
    line with id, route, status, sizes and time (never bodies, names or query strings)."""

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app = app
        self.state = state

    def _client(self, scope: MutableMapping[str, Any]) -> str:
        """The key id the request authenticates with (``anonymous:<address>`` without auth)."""
        headers = dict(scope.get("headers") or [])
        keys = self.state.keys
        if keys is None:
            client = scope.get("client") or ("local", 0)
            return f"anonymous:{client[0]}"
        auth = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, token = auth.partition(" ")
        record = keys.verify(token.strip()) if scheme.lower() == "bearer" else None
        if record is None:
            raise APIError(
                "Missing or invalid API key. Send 'Authorization: Bearer <key>'; an "
                "administrator creates keys with `medlens serve --add-key NAME`.",
                401,
                "authentication_error",
                {"WWW-Authenticate": "Bearer"},
            )
        return f"key:{record.id}"

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        request_id = uuid.uuid4().hex[:16]
        scope.setdefault("state", {})
        scope["state"]["request_id"] = request_id
        scope["state"]["started"] = started
        status = 500
        sizes = {"in": 0, "out": 0}

        async def counting_receive() -> Any:
            message = await receive()
            sizes["in"] += len(message.get("body", b""))
            return message

        async def tagged_send(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            elif message["type"] == "http.response.body":
                sizes["out"] += len(message.get("body", b""))
            await send(message)

        try:
            if scope["path"].startswith("/v1/") and scope.get("method") != "OPTIONS":
                client = self._client(scope)
                if self.state.limiter is not None:
                    self.state.limiter.check(client)
            await self.app(scope, counting_receive, tagged_send)
        except APIError as exc:
            await send_error(tagged_send, exc)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            elapsed = time.monotonic() - started
            metrics = self.state.metrics
            metrics.requests.labels(route, str(status)).inc()
            metrics.latency.labels(route).observe(elapsed)
            metrics.upload_bytes.observe(sizes["in"])
            if status in REJECT_REASONS:
                metrics.rejected.labels(REJECT_REASONS[status]).inc()
            log.info(
                "request id=%s method=%s route=%s status=%d in=%dB out=%dB ms=%.1f",
                request_id,
                scope.get("method"),
                route,
                status,
                sizes["in"],
                sizes["out"],
                elapsed * 1000,
            )


def _error_response(status: int, message: str, type_: str, headers: dict[str, str]) -> Any:
    from fastapi.responses import Response

    return Response(
        error_body(message, type_, status),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def create_app(config: ServeConfig) -> FastAPI:
    """The FastAPI app serving ``config``'s model: API, page, health and metrics."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.middleware.cors import CORSMiddleware
    from starlette.exceptions import HTTPException

    import medlens
    from medlens.serve.routes import attach_routers

    config.validate()
    state = ServerState(config)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state.model.start()
        try:
            yield
        finally:
            state.gate.close()
            state.model.close()

    app = FastAPI(
        title="medlens",
        version=medlens.__version__,
        summary="Medical vision-language models behind an OpenAI-compatible API.",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI loads scripts from a CDN; /openapi.json is the schema
        redoc_url=None,
    )
    app.state.medlens = state

    @app.exception_handler(MedlensError)
    async def medlens_error(_: Request, exc: MedlensError) -> Any:
        status, type_ = status_for(exc)
        headers = exc.headers if isinstance(exc, APIError) else {}
        return _error_response(status, str(exc), type_, headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> Any:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}"
            for e in exc.errors()
        )
        return _error_response(400, f"Invalid request: {problems}", "invalid_request_error", {})

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> Any:
        cause = exc.__cause__
        if isinstance(cause, MedlensError):  # raised while FastAPI read the body
            return await medlens_error(_, cause)
        type_ = "invalid_request_error" if exc.status_code < 500 else "server_error"
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404:
            message = "Not found. The API lives under /v1 (see /openapi.json); the page is at /."
        return _error_response(exc.status_code, message, type_, dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> Any:
        request_id = request.scope.get("state", {}).get("request_id", "?")
        log.error("request id=%s failed: %s", request_id, type(exc).__name__, exc_info=exc)
        message = f"Internal error (request id {request_id}); the server log has the details."
        return _error_response(500, message, "server_error", {})

    attach_routers(app)
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(Guard, state=state)
    app.add_middleware(BodyLimit, max_bytes=config.max_upload_bytes + MULTIPART_OVERHEAD)
    return app
