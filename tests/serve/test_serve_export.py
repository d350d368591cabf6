"""``/v1/analyze`` with ``export=sr,fhir`` over real HTTP: the SR it returns reads back with
highdicom to the question, answer and box that the JSON answer holds, on the de-identified
image; the FHIR Bundle validates; bad export requests are one 400 before the model runs."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable

import httpx
import numpy as np
import pytest

hd = pytest.importorskip("highdicom")
pytest.importorskip("fhir.resources")
pydicom = pytest.importorskip("pydicom")

from highdicom.sr import ValueTypeValues
from highdicom.sr.utils import find_content_items

from medlens.backends.scripted import ScriptedBackend
from medlens.interop.fhir import validate
from medlens.testing.studies import FAKE_PATIENT, write_xray_dicom
from tests.serve.conftest import BOX, png_bytes

SIZE = 256


@pytest.fixture(scope="module")
def xray(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = write_xray_dicom(tmp_path_factory.mktemp("dx") / "dx.dcm", size=SIZE)
    return path.read_bytes()


def analyze(url: str, study: bytes, **form: str) -> httpx.Response:
    # generous: the first export imports highdicom and fhir.resources on a loaded CI machine
    return httpx.post(f"{url}/v1/analyze", files={"file": ("x", study)}, data=form, timeout=300)


def sr_texts(sr: object) -> dict[str, str]:
    items = find_content_items(sr, value_type=ValueTypeValues.TEXT, recursive=True)  # type: ignore[arg-type]
    return {i.ConceptNameCodeSequence[0].CodeMeaning: i.TextValue for i in items}


def test_grounding_answer_as_sr_and_fhir(serve: Callable[..., str], xray: bytes) -> None:
    response = analyze(
        serve(), xray, question="Where is the nodule?", kind="grounding", export="sr,fhir"
    )
    assert response.status_code == 200, response.text
    body = response.json()
    export = body["export"]
    assert export["deidentified"] is True and export["identifiers"].startswith("de-identified")
    assert export["role"] == "scripted answers" and export["notes"] == []
    source = pydicom.dcmread(io.BytesIO(xray))
    # the SR, read back as highdicom reads a file from a PACS
    sr_file = export["sr"]
    assert sr_file["filename"] == "sr.dcm" and sr_file["media_type"] == "application/dicom"
    sr = hd.sr.srread(io.BytesIO(base64.b64decode(sr_file["data"])))
    assert isinstance(sr, hd.sr.Comprehensive3DSR)
    assert sr.SeriesInstanceUID == sr_file["series_instance_uid"]
    assert sr.SOPInstanceUID == sr_file["sop_instance_uid"]
    texts = sr_texts(sr)
    assert texts["Question asked of the model"] == "Where is the nodule?" == body["question"]
    assert texts["Model answer (free text)"] == body["answer"] == "nodule"
    assert texts["Identifiers used in this report"].startswith("de-identified")
    # the identifiers are the de-identified study's, never the upload's
    assert sr.PatientIdentityRemoved == "YES"
    assert str(sr.PatientName) != FAKE_PATIENT["PatientName"]
    assert sr.StudyInstanceUID != source.StudyInstanceUID
    (evidence,) = [
        item.ReferencedSOPInstanceUID
        for study in sr.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for item in series.ReferencedSOPSequence
    ]
    assert evidence != source.SOPInstanceUID
    # the box the JSON answer drew, as a closed polyline in the image's own pixels
    (box,) = body["boxes"]
    assert (box["x0"], box["y0"], box["x1"], box["y1"]) == BOX
    (group,) = sr.content.get_planar_roi_measurement_groups()
    assert group.roi.graphic_type == hd.sr.GraphicTypeValues.POLYLINE
    (image,) = group.roi.ContentSequence[0].ReferencedSOPSequence
    assert image.ReferencedSOPInstanceUID == evidence
    view = body["views"][0]
    scale = np.array([source.Columns / view["width"], source.Rows / view["height"]])
    points = np.asarray(group.roi.value)
    assert np.array_equal(points[0], points[-1]) and len(points) == 5
    expected = np.array([[BOX[0], BOX[1]], [BOX[2], BOX[3]]]) * scale
    assert np.allclose([points.min(axis=0), points.max(axis=0)], expected, atol=0.5)
    # the FHIR Bundle: valid R5, linking the same (de-identified) study
    fhir = export["fhir"]
    assert fhir["filename"] == "fhir-r5.json" and fhir["version"] == "R5"
    bundle = fhir["resource"]
    assert validate(bundle, "R5") == bundle
    (report,) = [
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "DiagnosticReport"
    ]
    assert report["status"] == "preliminary" and "Model answer: nodule" in report["conclusion"]
    (imaging,) = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "ImagingStudy"
    ]
    assert imaging["identifier"][0]["value"] == f"urn:oid:{sr.StudyInstanceUID}"
    assert FAKE_PATIENT["PatientID"] not in response.text


def test_fhir_only_and_r4b_for_an_image(serve: Callable[..., str]) -> None:
    response = analyze(serve(), png_bytes(), question="Is there a nodule?", export="fhir",
                       fhir_version="r4b")  # fmt: skip
    assert response.status_code == 200, response.text
    export = response.json()["export"]
    assert export["sr"] is None and export["fhir"]["version"] == "R4B"
    assert validate(export["fhir"]["resource"], "R4B") == export["fhir"]["resource"]
    assert analyze(serve(), png_bytes(), question="Is there a nodule?").json()["export"] is None


def test_bad_export_requests_are_one_400_before_the_model_runs(
    serve: Callable[..., str], xray: bytes
) -> None:
    asked: list[str] = []

    def reply(request: object) -> str:
        asked.append("asked")
        return "yes"

    url = serve(backend=ScriptedBackend(answers=reply))
    for form, message in (
        ({"export": "sr,pdf"}, "Unknown export 'pdf': an answer is exported as sr and/or fhir"),
        ({"export": "fhir", "fhir_version": "R3"}, "Unknown fhir_version 'R3'. Use one of: R5"),
    ):
        response = analyze(url, xray, question="Is there a nodule?", **form)
        assert response.status_code == 400, response.text
        assert message in response.json()["error"]["message"]
    not_dicom = analyze(url, png_bytes(), question="Is there a nodule?", export="sr")
    assert not_dicom.status_code == 400
    assert "no DICOM headers" in not_dicom.json()["error"]["message"]
    assert "export FHIR only" in not_dicom.json()["error"]["message"]
    assert asked == []
    assert analyze(url, xray, question="Is there a nodule?", export="SR").status_code == 200
    assert asked == ["asked"]


def test_render_says_what_an_answer_can_be_exported_as(
    serve: Callable[..., str], xray: bytes
) -> None:
    url = serve()
    for data, exports in ((xray, ["sr", "fhir"]), (png_bytes(), ["fhir"])):
        stack = httpx.post(f"{url}/v1/render", files={"file": ("x", data)}, timeout=30).json()
        assert stack["exports"] == exports
