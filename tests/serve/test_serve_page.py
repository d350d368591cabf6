"""The web page in a real headless browser (Debian chromium driven by Playwright) against the
app on loopback: upload, view, ask, and see the answer and the drawn box."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CHROMIUM
from tests.serve.conftest import BOX, png_bytes

pytest.importorskip("playwright.sync_api")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed"),
]


def pixel(page: Any, selector: str, x: float, y: float) -> list[int]:
    return list(
        page.eval_on_selector(
            selector,
            "(c, [x, y]) => Array.from(c.getContext('2d').getImageData(x, y, 1, 1).data)",
            [x, y],
        )
    )


def ask_where(page: Any, url: str, study: Path) -> None:
    """Open the page, upload ``study``, wait for its slices, ask the grounding question."""
    page.goto(url)
    page.set_input_files("#study-file", str(study))
    page.wait_for_function("document.getElementById('current-canvas').width > 1")
    page.fill("#question", "Where is the nodule?")
    page.select_option("#kind", "grounding")
    page.click("#ask-button")


def test_upload_ask_and_see_the_answer_with_its_box(
    serve: Callable[..., str], page: Any, tmp_path: Path
) -> None:
    study = tmp_path / "study.png"
    study.write_bytes(png_bytes())
    ask_where(page, serve(), study)
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
    # a PNG has no DICOM images for an SR to reference: FHIR only
    assert page.is_hidden("#download-sr") and page.is_visible("#download-fhir")


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
    page.click("#zoom-reset")  # 1:1, then one step in
    page.click("#zoom-in")
    assert page.eval_on_selector("#current-canvas", "c => c.width") == 60  # 48 × 1.25
    page.click("#zoom-fit")
    assert page.eval_on_selector("#current-canvas", "c => c.width") > 48 * 4  # fit scales up
    page.set_input_files("#prior-file", str(prior))
    page.wait_for_selector("#prior-viewer:not([hidden])")
    page.wait_for_function("document.getElementById('prior-canvas').width > 1")


def png_file(path: Path, width: int, height: int, seed: int = 0) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((height, width)) * 255).astype("uint8")).save(path)
    return path


def fits(page: Any) -> dict[str, float]:
    """Where the canvas, its frame, the answer and the window are, in CSS pixels."""
    return dict(
        page.evaluate(
            """() => {
        const box = (id) => document.getElementById(id).getBoundingClientRect();
        const canvas = box('current-canvas'), frame = box('current-canvas').width
            && document.getElementById('current-canvas').parentElement.getBoundingClientRect();
        const result = box('result');
        return {canvas_w: canvas.width, canvas_h: canvas.height, canvas_right: canvas.right,
                canvas_bottom: canvas.bottom, frame_w: frame.width, frame_h: frame.height,
                frame_right: frame.right, frame_bottom: frame.bottom,
                result_top: result.top, result_left: result.left, result_bottom: result.bottom,
                page_h: document.documentElement.scrollHeight,
                page_w: document.documentElement.scrollWidth,
                window_h: window.innerHeight, window_w: window.innerWidth};
    }"""
        )
    )


@pytest.mark.parametrize(("width", "height"), [(128, 128), (1024, 1291)])
def test_the_image_fits_the_viewer_and_the_answer_is_beside_it(
    serve: Callable[..., str], page: Any, tmp_path: Path, width: int, height: int
) -> None:
    """A 128 px CT is scaled up to the viewer, a 1024×1291 radiograph scaled down, and the
    answer appears on screen beside the image, not below the fold."""
    study = png_file(tmp_path / "study.png", width, height)
    page.goto(serve())
    page.set_input_files("#study-file", str(study))
    page.wait_for_function("document.getElementById('current-canvas').width > 1")
    assert page.text_content("#zoom-level") == "fit"
    page.fill("#question", "Is there a nodule?")
    page.click("#ask-button")
    page.wait_for_selector("#result:not([hidden])")
    at = fits(page)
    assert at["canvas_w"] <= at["frame_w"] + 1 and at["canvas_h"] <= at["frame_h"] + 1, at
    limiting = min(at["frame_w"] / width, at["frame_h"] / height)
    assert abs(at["canvas_w"] - width * limiting) <= 2, at  # fills the viewer, aspect kept
    if width == 128:
        assert at["canvas_w"] >= 3 * 128, at  # not 100 % in a corner
    assert at["page_h"] <= at["window_h"] and at["page_w"] <= at["window_w"], at  # no overflow
    assert at["result_left"] >= at["frame_right"], at  # beside the image
    assert at["result_top"] < at["window_h"] / 2, at  # above the fold
    assert page.text_content("#answer") == "yes"


def test_every_answer_names_its_model_label_and_deidentification(
    serve: Callable[..., str], page: Any, tmp_path: Path
) -> None:
    """Beside the answer: the model, whether it is a baseline, a demonstration model or the
    user's, and "N regions, X % of the image redacted" as the server computed it (here for
    an image with a patient's name and ids burned in)."""
    import httpx
    import numpy as np
    from PIL import Image

    from medlens.backends.baseline import PriorBackend
    from medlens.testing.phi import make_phi, synthetic_image

    rng = np.random.default_rng(7)
    burned = synthetic_image(make_phi(rng), rng, shape=(256, 384))
    study = tmp_path / "burned.png"
    Image.fromarray(burned.pixels.astype("uint8")).save(study)
    url = serve()
    page.goto(url)
    page.set_input_files("#study-file", str(study))
    page.fill("#question", "Is there a nodule?")
    page.click("#ask-button")
    page.wait_for_selector("#result:not([hidden])")
    assert page.text_content("#model-name") == "scripted"
    assert page.text_content("#model-label") == "user model"
    shown = page.text_content("#deid-summary")
    response = httpx.post(
        f"{url}/v1/analyze",
        files={"file": ("burned.png", study.read_bytes())},
        data={"question": "Is there a nodule?"},
        timeout=60,
    )
    redaction = response.json()["study"]["redaction"]
    assert redaction["regions"] > 0, redaction
    assert shown == f"De-identification: {redaction['text']}"
    assert f"{redaction['regions']} region" in shown and "% of the image redacted" in shown

    page.goto(serve(backend=PriorBackend()))
    page.set_input_files("#study-file", str(study))
    page.fill("#question", "Is there a nodule?")
    page.click("#ask-button")
    page.wait_for_selector("#result:not([hidden])")
    assert page.text_content("#model-label") == "baseline"
    assert "without looking at the image" in page.text_content("#model-label-note")


def test_download_sr_and_fhir_of_a_dicom_answer(
    serve: Callable[..., str], page: Any, tmp_path: Path
) -> None:
    hd = pytest.importorskip("highdicom")
    pytest.importorskip("fhir.resources")
    from highdicom.sr import ValueTypeValues
    from highdicom.sr.utils import find_content_items

    from medlens.interop.fhir import validate
    from medlens.testing.studies import write_xray_dicom

    ask_where(page, serve(), write_xray_dicom(tmp_path / "study.dcm", size=256))
    page.wait_for_selector("#download-sr:not([hidden])")
    assert page.text_content("#export-identifiers").startswith("Identifiers: de-identified")
    with page.expect_download() as sr_download:
        page.click("#download-sr")
    assert sr_download.value.suggested_filename == "sr.dcm"
    sr = hd.sr.srread(sr_download.value.path())
    texts = {
        i.ConceptNameCodeSequence[0].CodeMeaning: i.TextValue
        for i in find_content_items(sr, value_type=ValueTypeValues.TEXT, recursive=True)
    }
    assert texts["Model answer (free text)"] == page.text_content("#answer") == "nodule"
    (group,) = sr.content.get_planar_roi_measurement_groups()
    x0, y0, x1, y1 = BOX  # the 256-pixel image is shown to the model at its own size
    points = group.roi.value
    assert [points.min(axis=0).tolist(), points.max(axis=0).tolist()] == [[x0, y0], [x1, y1]]
    with page.expect_download() as fhir_download:
        page.click("#download-fhir")
    assert fhir_download.value.suggested_filename == "fhir-r5.json"
    bundle = json.loads(Path(fhir_download.value.path()).read_text())
    assert validate(bundle, "R5") == bundle
