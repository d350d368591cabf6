"""deidentify(study): headers, pixels, metadata and prior, with audit records."""

from __future__ import annotations

import dataclasses

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from medlens.errors import PrivacyError
from medlens.privacy import DeidPolicy, deidentify, require_deidentified
from medlens.testing.phi import PHI, synthetic_image
from medlens.types import RedactionSummary, Study


def _ct_study(burned: bool | None = False, modality: str = "CT") -> Study:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    pixels = ds.pixel_array.astype(np.float32)[None] - 1024
    del ds.PixelData
    return Study(
        pixels=pixels,
        modality=modality,
        source_format="dicom",
        headers=(ds,),
        metadata={
            "StudyDescription": "CT chest for Margaret Okonkwo",
            "PatientName": "X^Y",
            "KVP": 120.0,
        },
        burned_in_annotation=burned,
    )


def test_headers_metadata_and_prior_are_deidentified(policy: DeidPolicy) -> None:
    prior = _ct_study()
    study = dataclasses.replace(_ct_study(), prior=prior)
    out = deidentify(study, policy=policy)
    assert (
        out is not study and out.deidentified and out.prior is not None and out.prior.deidentified
    )
    assert not study.deidentified and study.headers[0].PatientName == prior.headers[0].PatientName
    header = out.headers[0]
    assert header.PatientIdentityRemoved == "YES" and "PixelData" not in header
    assert out.metadata == {"KVP": 120.0}  # free-text descriptor removed (Basic Profile)
    assert np.array_equal(out.pixels, study.pixels)  # BurnedInAnnotation NO: pixels untouched
    actions = [r.action for r in out.audit]
    assert actions == ["header-deid", "pixel-redaction", "text-scrub"]
    assert out.audit[1].details["searched"] is False
    assert out.audit[2].details == {"metadata_keys_dropped": 2, "metadata_spans_scrubbed": 0}
    assert out.prior.headers[0].StudyDate == header.StudyDate  # same patient, same shift


def test_metadata_follows_the_profile_of_its_attribute(policy: DeidPolicy) -> None:
    study = dataclasses.replace(
        _ct_study(),
        metadata={
            "StudyDescription": "CT chest for Margaret Okonkwo",
            "BodyPartExamined": "CHEST",
            "ViewPosition": "PA",
            "ContrastBolusAgent": "Omnipaque, given by Ines Oyelaran",
            "KVP": 120.0,
        },
    )
    assert deidentify(study, policy=policy).metadata == {
        "BodyPartExamined": "CHEST",
        "ViewPosition": "PA",
        "KVP": 120.0,
    }
    cleaning = DeidPolicy(options=("clean-descriptors",), project_key=b"k")
    kept = deidentify(study, policy=cleaning).metadata
    assert kept["StudyDescription"] == "CT chest for [NAME]"
    nifti = Study(pixels=np.zeros((1, 4, 4)), source_format="nifti", metadata={"description": "x"})
    assert "description" not in deidentify(nifti, policy=policy).metadata


@pytest.mark.slow
def test_burned_in_annotation_yes_redacts_pixels(phi: PHI, policy: DeidPolicy) -> None:
    image = synthetic_image(phi, np.random.default_rng(7), shape=(256, 384))
    study = dataclasses.replace(
        _ct_study(burned=True, modality="US"), pixels=image.pixels[None].astype(np.uint8)
    )
    out = deidentify(study, policy=policy)
    record = out.audit[1]
    assert record.action == "pixel-redaction" and record.details["searched"] is True
    assert record.details["reason"] == "burned-in-annotation" and record.details["regions"] > 0
    assert out.burned_in_annotation is False and out.headers[0].BurnedInAnnotation == "NO"
    codes = {i.CodeValue for i in out.headers[0].DeidentificationMethodCodeSequence}
    assert "113101" in codes  # Clean Pixel Data Option
    ink = np.any([t.mask for t in image.texts], axis=0)
    covered = (out.pixels[0] != study.pixels[0]) | (out.pixels[0] == out.pixels[0].min())
    assert covered[ink].mean() > 0.9
    summary = out.redaction
    assert summary is not None and summary.searched and summary.regions == record.details["regions"]
    changed = (out.pixels[0] != study.pixels[0]).mean()
    assert changed <= summary.redacted_share <= changed + 0.05  # boxes, some on black already
    assert out.summary()["redaction"]["text"] == summary.describe()
    assert f"{summary.regions} regions, " in summary.describe()


def test_ocr_never_is_recorded_and_pngs_are_searched_by_default(policy: DeidPolicy) -> None:
    never = DeidPolicy(ocr="never", project_key=b"k")
    out = deidentify(_ct_study(burned=True), policy=never)
    assert [r.action for r in out.audit][:3] == ["header-deid", "pixel-redaction", "warning"]
    png = Study(pixels=np.zeros((1, 32, 32), np.uint8), source_format="png")
    out = deidentify(png, policy=policy)
    assert out.audit[0].details["reason"] == "image-source" and out.audit[0].details["regions"] == 0
    assert out.redaction == RedactionSummary(searched=True)
    assert out.redaction.describe() == "0 regions, 0.0 % of the image redacted"
    unsearched = deidentify(_ct_study(burned=True), policy=never).redaction
    assert unsearched is not None and not unsearched.searched
    assert unsearched.describe() == "pixels not searched for burned-in text"


def test_a_box_over_the_body_or_a_large_redaction_needs_review() -> None:
    from medlens.privacy.pixels import TextRegion, body_overlap, body_region

    yy, xx = np.mgrid[0:200, 0:300]
    image = np.where((yy - 110) ** 2 / 80**2 + (xx - 150) ** 2 / 100**2 < 1, 140, 8)
    image = image.astype(np.uint8)
    body = body_region(image)
    assert body[110, 150] and not body[5, 5] and 0.35 < body.mean() < 0.5
    corner = TextRegion(2, 2, 60, 14, 0, 90.0, 6)
    centre = TextRegion(120, 100, 180, 114, 0, 90.0, 6)
    assert not body_overlap(image, [corner]) and body_overlap(image, [corner, centre])
    assert not body_region(np.full((50, 50), 30, np.uint8)).any()  # a flat field has no body
    summary = RedactionSummary(True, 3, 0.12, 1, True, ("area", "body"))
    assert summary.describe() == (
        "3 regions, 12.0 % of the image redacted, 1 clinical label kept (needs review: area, body)"
    )


def test_remote_destinations_need_a_deidentified_study(policy: DeidPolicy) -> None:
    study = _ct_study()
    with pytest.raises(PrivacyError, match="was not de-identified"):
        require_deidentified(study)
    require_deidentified(deidentify(study, policy=policy))
    half = dataclasses.replace(deidentify(study, policy=policy), prior=study)
    with pytest.raises(PrivacyError, match="prior study"):
        require_deidentified(half)
