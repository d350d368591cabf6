"""The web page at ``/`` and its static files."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parents[1] / "static"

router = APIRouter()


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    return FileResponse(STATIC / "index.html")


def mount_static(app: FastAPI) -> None:
    """Serve ``static/`` under ``/static`` (a mount is the app's, not a router's)."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
