"""``/healthz``, ``/readyz`` and ``/metrics``: what an orchestrator and Prometheus ask."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from medlens.serve.routes.forms import ERRORS
from medlens.serve.state import server_state

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up (says nothing about the model)."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: ERRORS[503]})
async def readyz(request: Request) -> dict[str, str]:
    """200 once the model is loaded and requests can be served."""
    state = server_state(request)
    state.model.get()
    return {"status": "ready", "model": state.config.model_name}


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition format."""
    body, content_type = server_state(request).metrics.render()
    return Response(body, media_type=content_type)
