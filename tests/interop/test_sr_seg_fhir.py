"""Answers out as DICOM SR (TID 1500), SEG and FHIR, read back by highdicom and validated by
fhir.resources: the same boxes, slices, text and codes that were written."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

hd = pytest.importorskip("highdicom")
pytest.importorskip("fhir.resources")
pydicom = pytest.importorskip("pydicom")

from highdicom.sr import ValueTypeValues
from highdicom.sr.utils import find_content_items
from pydicom.sr.codedict import codes

from medlens import pipeline
from medlens.backends.scripted import ScriptedBackend
from medlens.errors import ConfigError
from medlens.interop.fhir import build_fhir, validate
from medlens.interop.provenance import Provenance
from medlens.interop.seg import build_seg
from medlens.interop.sr import build_sr, place_box
from medlens.study import load_study
from medlens.study.recipes import apply_recipe
from medlens.study.views import voxel_to_view
from medlens.testing.studies import lesion_location, write_ct_series
from medlens.types import Box

SLICES, SIZE = 12, 64
CT_3SLICE = Path("dicom-series/dcmqi-ct-3slice/data/segmentations")


@pytest.fixture(scope="module")
def ct(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ct_series(tmp_path_factory.mktemp("ct") / "ct", slices=SLICES, size=SIZE)


def lesion_box(view: object, half: float = 6.0) -> tuple[Box, int]:
    """A box around the synthetic nodule in the montage tile of its slice (view pixels)."""
    lesion = lesion_location(slices=SLICES, size=SIZE)
    k = round(lesion.voxel[2])
    region = next(r for r in view.regions if r.label.startswith(f"axial {k + 1}/"))  # type: ignore[attr-defined]
    x, y = voxel_to_view(region, lesion.voxel)
    return Box(x - half, y - half, x + half, y + half, label="nodule in the right lung"), k


def texts(ds: object) -> dict[str, str]:
    items = find_content_items(ds, value_type=ValueTypeValues.TEXT, recursive=True)  # type: ignore[arg-type]
    return {i.ConceptNameCodeSequence[0].CodeMeaning: i.TextValue for i in items}


def dciodvfy_errors(path: Path) -> list[str]:
    """The error lines of dicom3tools' IOD checker (warnings are not errors)."""
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy not installed (Debian dicom3tools)")
    out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, check=False)
    return [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")]


def test_closed_answer_sr_round_trip(ct: Path, tmp_path: Path) -> None:
    backend = ScriptedBackend(answers={"Is there a nodule in the right lung?": "Yes."},
                              logprobs={"Is there a nodule in the right lung?": {"yes": -0.2, "no": -1.9}})  # fmt: skip
    result = pipeline.ask(str(ct), "Is there a nodule in the right lung?", backend=backend)
    assert result.answer.confidence is not None
    source = load_study(ct)
    path = tmp_path / "sr.dcm"
    build_sr(result).save_as(path, enforce_file_format=True)
    sr = hd.sr.srread(path)
    assert isinstance(sr, hd.sr.Comprehensive3DSR)
    assert sr.SeriesInstanceUID not in {h.SeriesInstanceUID for h in source.headers}
    assert sr.PreliminaryFlag == "PRELIMINARY" and sr.VerificationFlag == "UNVERIFIED"
    # de-identified run: the SR carries the study the model saw, never the source identifiers
    seen = result.prepared.studies[0]
    assert (
        sr.StudyInstanceUID
        == seen.headers[0].StudyInstanceUID
        != source.headers[0].StudyInstanceUID
    )
    assert sr.PatientIdentityRemoved == "YES" and "DEMO" not in str(sr.PatientName)
    evidence = {
        item.ReferencedSOPInstanceUID
        for study in sr.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for item in series.ReferencedSOPSequence
    }
    assert evidence == {h.SOPInstanceUID for h in seen.headers}
    (group,) = sr.content.get_image_measurement_groups()
    assert group.finding_type == codes.SCT.Nodule
    (site,) = group.finding_sites
    assert site.value == codes.SCT.Lung
    assert site.laterality == codes.SCT.Right
    (evaluation,) = [
        e for e in group.get_qualitative_evaluations() if e.name == codes.DCM.PresenceOfProperty
    ]
    assert evaluation.value == codes.SCT.Present
    (measurement,) = group.get_measurements()
    assert measurement.value == pytest.approx(result.answer.confidence.value)
    assert "uncalibrated" in measurement.name.meaning
    written = texts(sr)
    assert written["Question asked of the model"] == "Is there a nodule in the right lung?"
    assert written["Model answer (free text)"] == "yes"
    assert written["Kind of model"].startswith("scripted answers")
    assert written["Identifiers used in this report"].startswith("de-identified")
    assert "recipe=montage@1" in [
        i.TextValue
        for i in find_content_items(sr, value_type=ValueTypeValues.TEXT, recursive=True)
        if i.ConceptNameCodeSequence[0].CodeMeaning == "Algorithm Parameters"
    ]
    assert dciodvfy_errors(path) == []


def test_boxes_land_on_the_right_slice_and_pixels(ct: Path, tmp_path: Path) -> None:
    study = load_study(ct)
    views = apply_recipe(pipeline.protect(study), "montage")
    box, k = lesion_box(views[0])
    reply = (
        f'[{{"label": "{box.label}", "bbox_2d": [{box.x0:.1f}, {box.y0:.1f}, {box.x1:.1f}, '
        f'{box.y1:.1f}]}}, {{"label": "heart", "bbox_2d": [300, 200, 340, 240]}}]'
    )
    backend = ScriptedBackend(answers=[reply])
    result = pipeline.ask(str(ct), "Outline the nodule", backend=backend, kind="grounding")
    assert len(result.answer.boxes) == 2
    seen = result.prepared.studies[0]
    path = tmp_path / "sr.dcm"
    build_sr(result).save_as(path, enforce_file_format=True)
    sr = hd.sr.srread(path)
    groups = sr.content.get_planar_roi_measurement_groups()
    assert len(groups) == 2
    nodule = next(g for g in groups if g.finding_type == codes.SCT.Nodule)
    roi = nodule.roi
    assert roi.graphic_type == hd.sr.GraphicTypeValues.POLYLINE
    points = roi.value
    assert np.array_equal(points[0], points[-1]) and len(points) == 5  # closed rectangle
    (image,) = roi.ContentSequence[0].ReferencedSOPSequence
    assert image.ReferencedSOPInstanceUID == seen.headers[k].SOPInstanceUID
    lesion = lesion_location(slices=SLICES, size=SIZE)
    centre = points[:4].mean(axis=0)
    assert centre == pytest.approx((lesion.voxel[0] + 0.5, lesion.voxel[1] + 0.5), abs=0.3)
    # the same box, read back, is what the placement wrote
    placed = place_box(seen, result.prepared.views, result.answer.boxes[0], 0)
    assert np.allclose(points, placed.polyline)
    heart = next(g for g in groups if g.finding_type == codes.SCT.Heart)
    assert heart.roi.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID in {
        h.SOPInstanceUID for h in seen.headers
    }
    assert dciodvfy_errors(path) == []


def test_box_on_a_sagittal_plane_is_a_3d_polygon(ct: Path) -> None:
    study = pipeline.protect(load_study(ct))
    views = apply_recipe(study, "slices", plane="sagittal", count=1)
    width, height = views[0].image.size
    box = Box(width * 0.3, height * 0.3, width * 0.6, height * 0.6, label="mass")
    placed = place_box(study, views, box, 0)
    assert placed.polyline is None and placed.polygon_mm is not None
    polygon = placed.polygon_mm
    assert np.array_equal(polygon[0], polygon[-1])
    assert np.ptp(polygon[:, 0]) == pytest.approx(0.0, abs=1e-6)  # a sagittal plane: one x
    assert np.ptp(polygon[:, 2]) > 5.0  # spanning slices (z) ...
    assert np.ptp(polygon[:, 1]) > 5.0  # ... and rows (y)


def test_projection_box_is_listed_not_placed(ct: Path) -> None:
    from medlens.study.views import mip_view

    study = pipeline.protect(load_study(ct))
    placed = place_box(study, (mip_view(study),), Box(10, 10, 20, 20, label="nodule"), 0)
    assert placed.header is None and "projection" in placed.note


def test_non_dicom_study_gets_fhir_but_no_sr(tmp_path: Path) -> None:
    from PIL import Image

    png = tmp_path / "chest.png"
    Image.fromarray(np.full((64, 64), 128, dtype=np.uint8)).save(png)
    backend = ScriptedBackend(answers=["No."])
    result = pipeline.ask(str(png), "Is there a pneumothorax?", backend=backend)
    with pytest.raises(ConfigError, match="no DICOM headers"):
        build_sr(result)
    bundle = build_fhir(result)
    (observation,) = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"
    ]
    assert observation["code"]["coding"][0]["code"] == codes.SCT.Pneumothorax.value
    assert observation["valueCodeableConcept"]["coding"][0]["code"] == codes.SCT.Absent.value


@pytest.mark.parametrize("version", ["R5", "R4B"])
def test_fhir_bundle_validates_and_links_the_study(ct: Path, version: str) -> None:
    study = load_study(ct)
    views = apply_recipe(pipeline.protect(study), "montage")
    box, k = lesion_box(views[0])
    backend = ScriptedBackend(
        answers=lambda r: (
            "Yes."
            if r.kind == "closed"
            else f'[{{"label": "nodule", "bbox_2d": [{box.x0}, {box.y0}, {box.x1}, {box.y1}]}}]'
        )
    )
    closed = pipeline.ask(str(ct), "Is there a nodule in the right lung?", backend=backend)
    bundle = build_fhir(closed, version=version)
    assert validate(bundle, version) == bundle  # valid, and stable through the models
    resources = {e["resource"]["resourceType"]: e["resource"] for e in bundle["entry"]}
    report = resources["DiagnosticReport"]
    assert report["status"] == "preliminary"
    assert "Model answer: yes" in report["conclusion"]
    study_link = report["study"] if version == "R5" else report["imagingStudy"]
    imaging_url = next(
        e["fullUrl"] for e in bundle["entry"] if e["resource"]["resourceType"] == "ImagingStudy"
    )
    assert study_link == [{"reference": imaging_url}]
    seen = closed.prepared.studies[0]
    imaging = resources["ImagingStudy"]
    assert imaging["identifier"][0]["value"] == f"urn:oid:{seen.headers[0].StudyInstanceUID}"
    assert len(imaging["series"][0]["instance"]) == SLICES
    observation = resources["Observation"]
    assert observation["status"] == "preliminary"
    assert observation["code"]["coding"][0] == {
        "system": "http://snomed.info/sct", "code": "27925004", "display": "Nodule"
    }  # fmt: skip
    assert observation["bodySite"]["text"] == "right lung"
    assert bundle["meta"]["security"][0]["code"] == "PSEUDED"
    grounded = pipeline.ask(str(ct), "Outline the nodule", backend=backend, kind="grounding")
    boxes = build_fhir(grounded, version=version)
    selections = [
        e["resource"] for e in boxes["entry"] if e["resource"]["resourceType"] == "ImagingSelection"
    ]
    if version == "R4B":
        assert selections == []  # R4B has no ImagingSelection; the boxes live in the SR
        return
    (selection,) = selections
    (instance,) = selection["instance"]
    placed = place_box(
        grounded.prepared.studies[0], grounded.prepared.views, grounded.answer.boxes[0], 0
    )
    assert instance["uid"] == grounded.prepared.studies[0].headers[k].SOPInstanceUID
    assert instance["imageRegion2D"][0]["coordinate"] == pytest.approx(
        placed.polyline.ravel().tolist()
    )


@pytest.mark.data
def test_real_liver_segmentation_round_trip(shared_data: Path, tmp_path: Path) -> None:
    """dcmqi's liver SEG (made by another tool) → mask → medlens SEG over the de-identified CT
    → read back: the same 107,098 voxels on the same slices."""
    folder = shared_data / CT_3SLICE
    reference = hd.seg.segread(folder / "liver.dcm")
    source = load_study(folder / "ct-3slice")
    mask = reference.get_pixels_by_source_instance(
        source_sop_instance_uids=[h.SOPInstanceUID for h in source.headers],
        segment_numbers=[1],
        ignore_spatial_locations=True,
    )[..., 0].astype(bool)
    assert int(mask.sum()) == 107_098
    seen = pipeline.protect(source)
    provenance = Provenance("user-model", "transformers", "user's model", "ct@1", "open@1")
    path = tmp_path / "seg.dcm"
    build_seg(seen, {"liver": mask}, provenance=provenance).save_as(path, enforce_file_format=True)
    back = hd.seg.segread(path)
    assert back.SeriesInstanceUID != reference.SeriesInstanceUID
    assert back.PatientIdentityRemoved == "YES"
    again = back.get_pixels_by_source_instance(
        source_sop_instance_uids=[h.SOPInstanceUID for h in seen.headers], segment_numbers=[1]
    )[..., 0].astype(bool)
    assert np.array_equal(again, mask)
    description = back.get_segment_description(1)
    assert description.segmented_property_type == codes.SCT.Liver
    assert description.algorithm_identification[0].AlgorithmName == "user-model"
    assert dciodvfy_errors(path) == []


def test_seg_refuses_a_mask_of_the_wrong_shape(ct: Path) -> None:
    study = pipeline.protect(load_study(ct))
    provenance = Provenance("m", "b", "user's model", "r@1", "t@1")
    with pytest.raises(ConfigError, match="must cover the study voxel for voxel"):
        build_seg(study, {"nodule": np.zeros((3, 8, 8), bool)}, provenance=provenance)
