"""The server's routes, one module-level ``APIRouter`` per feature (after vLLM's
``entrypoints/openai/*/api_router.py``): each router reads the HTTP request, runs the logic of
``chat`` / ``analyze`` / ``speech`` in the model gate and shapes the response; no pipeline logic
lives here. A router reaches the server through ``medlens.serve.state`` and never imports the
app factory; ``create_app`` calls ``attach_routers``. (Imported by ``create_app`` only, so
FastAPI is imported at module level: it resolves annotations here.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from medlens.serve.routes import analyze, chat, operations, page, speech

if TYPE_CHECKING:
    from fastapi import FastAPI

ROUTERS = (operations.router, chat.router, analyze.router, speech.router, page.router)
"""In the order their paths appear in ``/openapi.json``."""


def attach_routers(app: FastAPI) -> None:
    """Include every router, and the page's static files, in ``app``."""
    for router in ROUTERS:
        app.include_router(router)
    page.mount_static(app)
