"""Shared fixtures. Tests needing ../shared/data skip with a reason where it is absent."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.bench.judge_server import JudgeServer, _JudgeHandler

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
"""Debian's chromium, which the page tests drive through Playwright (``browser``, ``page``)."""
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def shared_data_dir() -> Path:
    return Path(os.environ.get("MEDLENS_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real datasets of ../shared/data (VQA-RAD, SLAKE, DICOM series)."""
    path = shared_data_dir()
    if not (path / "README.md").exists():
        pytest.skip(f"real data not found at {path} (set MEDLENS_SHARED_DATA)")
    return path


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep run stores, caches and profiles of tests out of the user's ~/.medlens."""
    monkeypatch.setenv("MEDLENS_HOME", str(tmp_path_factory.mktemp("medlens-home")))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless chromium through Playwright (the server page and the HTML report); skips
    where either is missing."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


@pytest.fixture
def judge_server() -> Iterator[JudgeServer]:
    """A real loopback OpenAI-compatible judge (medevalkit-judge tests of eval and score)."""
    server = JudgeServer(("127.0.0.1", 0), _JudgeHandler)
    server.prompts = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
