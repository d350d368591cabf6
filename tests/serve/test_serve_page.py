"""The web page in a real headless browser (Debian chromium driven by Playwright) against the
app on loopback: upload, view, ask, and see the answer and the drawn box."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.serve.conftest import BOX, png_bytes

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed"),
]
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


def pixel(page: Any, selector: str, x: float, y: float) -> list[int]:
    return list(
        page.eval_on_selector(
            selector,
            "(c, [x, y]) => Array.from(c.getContext('2d').getImageData(x, y, 1, 1).data)",
            [x, y],
        )
    )


def test_upload_ask_and_see_the_answer_with_its_box(
    serve: Callable[..., str], page: Any, tmp_path: Path
) -> None:
    study = tmp_path / "study.png"
    study.write_bytes(png_bytes())
    page.goto(serve())
    page.set_input_files("#study-file", str(study))
    page.wait_for_function("document.getElementById('current-canvas').width > 1")
    page.fill("#question", "Where is the nodule?")
    page.select_option("#kind", "grounding")
    page.click("#ask-button")
    page.wait_for_selector("#result:not([hidden])")
    assert page.text_content("#answer") == "nodule"
    assert page.is_hidden("#abstained")
    overlay = page.wait_for_selector(".model-view .box")
    assert overlay.get_attribute("data-box") == str(list(BOX)).replace(" ", "")
    assert overlay.text_content() == "nodule"
    x0, y0, x1, y1 = BOX
    red = pixel(page, ".model-view canvas", x0, (y0 + y1) / 2)  # on the drawn left edge
    inside = pixel(page, ".model-view canvas", (x0 + x1) / 2, (y0 + y1) / 2)
    assert red[0] > 200 and red[1] < 100 and red[2] < 100, red
    assert inside[0] == inside[1] == inside[2], inside  # the image itself is grey


def test_abstention_is_shown_as_such(serve: Callable[..., str], page: Any, tmp_path: Path) -> None:
    study = tmp_path / "study.png"
    study.write_bytes(png_bytes())
    page.goto(serve(abstain_threshold=0.95))
    page.set_input_files("#study-file", str(study))
    page.fill("#question", "Is there a nodule?")
    page.select_option("#kind", "closed")
    page.click("#ask-button")
    page.wait_for_selector("#abstained:not([hidden])")
    assert "abstained" in page.text_content("#answer")


def test_volume_slices_ct_windows_zoom_and_prior(
    serve: Callable[..., str], page: Any, tmp_path: Path
) -> None:
    pytest.importorskip("nibabel")
    from medlens.testing.studies import write_ct_nifti

    volume = Path(write_ct_nifti(tmp_path / "ct.nii.gz", slices=7, size=48))
    prior = tmp_path / "prior.png"
    prior.write_bytes(png_bytes(seed=3))
    page.goto(serve())
    page.select_option("#modality", "CT")  # NIfTI does not record the modality
    page.set_input_files("#study-file", str(volume))
    page.wait_for_selector("#current-slice:not([hidden])")
    assert page.get_attribute("#current-slice", "max") == "6"
    assert "slice 4 / 7" in page.text_content("#current-slice-label")
    page.fill("#current-slice", "0")
    page.dispatch_event("#current-slice", "input")
    assert "slice 1 / 7" in page.text_content("#current-slice-label")
    windows = page.eval_on_selector_all("#windows button", "bs => bs.map(b => b.dataset.window)")
    assert {"lung", "bone", "soft-tissue"} <= set(windows)
    page.fill("#current-slice", "3")
    page.dispatch_event("#current-slice", "input")
    before = page.eval_on_selector("#current-canvas", "c => c.toDataURL()")
    page.click("#windows button[data-window='lung']")
    page.wait_for_selector("#windows button.active[data-window='lung']")
    page.wait_for_function(
        "(before) => document.getElementById('current-canvas').toDataURL() !== before", arg=before
    )
    page.click("#zoom-in")
    assert page.eval_on_selector("#current-canvas", "c => c.width") == 60  # 48 × 1.25
    page.set_input_files("#prior-file", str(prior))
    page.wait_for_selector("#prior-viewer:not([hidden])")
    page.wait_for_function("document.getElementById('prior-canvas').width > 1")
