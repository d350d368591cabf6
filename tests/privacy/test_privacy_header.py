"""PS3.15 Annex E header de-identification on generated and real DICOM files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from medlens.errors import ConfigError, UnknownNameError
from medlens.privacy import DeidPolicy, deidentify_dataset
from medlens.privacy.policy import load_project_key
from medlens.testing.phi import PHI, synthetic_dataset

TABLE = "dicomanonymizer.dicom_anonymization_databases.dicomfields_2026c"


def _table_actions() -> dict[int, str]:
    """Table E.1-1 straight from the package, independent of medlens.privacy.profile."""
    import importlib

    fields = importlib.import_module(TABLE)
    expected = {}
    for group, action in (
        ("D_TAGS", "D"),
        ("Z_TAGS", "Z"),
        ("X_TAGS", "X"),
        ("U_TAGS", "U"),
        ("Z_D_TAGS", "D"),
        ("X_Z_TAGS", "Z"),
        ("X_D_TAGS", "D"),
        ("X_Z_D_TAGS", "D"),
    ):
        for entry in getattr(fields, group):
            if len(entry) == 2:
                expected[(entry[0] << 16) | entry[1]] = action
    return expected


def test_every_table_attribute_gets_its_basic_profile_action(phi: PHI) -> None:
    ds, _ = synthetic_dataset(phi, np.random.default_rng(0))
    out, record = deidentify_dataset(ds, DeidPolicy(options=(), project_key=b"k"))
    expected = _table_actions()
    checked = 0
    for tag, action in expected.items():
        if tag not in ds or ds[tag].VR == "SQ":
            continue
        original = str(ds[tag].value)
        checked += 1
        if action == "X":
            assert tag not in out, f"{ds[tag].keyword} should be removed"
        elif action == "Z":
            assert tag in out and out[tag].value in (None, "", b""), ds[tag].keyword
        elif action == "D":
            assert tag in out and str(out[tag].value) not in ("", original), ds[tag].keyword
        elif action == "U":
            assert str(out[tag].value).startswith("2.25."), ds[tag].keyword
            assert str(out[tag].value) != original
    assert checked > 400  # the synthetic dataset fills the table, not a sample of it
    assert record.action == "header-deid"
    # The audit names attributes, never values.
    assert phi.family not in repr(record.details) and phi.patient_id not in repr(record.details)


def test_no_filled_phi_value_survives_anywhere(
    phi: PHI, policy: DeidPolicy, tmp_path: Path
) -> None:
    ds, filled = synthetic_dataset(phi, np.random.default_rng(1))
    out, _ = deidentify_dataset(ds, policy)
    path = tmp_path / "out.dcm"
    out.save_as(path)
    blob = path.read_bytes()
    survived = [
        f"{tag:08X}" for tag, value in filled.items() if tag in out and value in str(out[tag].value)
    ]
    assert survived == []
    assert phi.family.encode() not in blob and phi.given.encode() not in blob
    assert phi.patient_id.encode() not in blob and phi.ssn.encode() not in blob


def test_private_tags_and_overlays_removed_unless_safe_private(phi: PHI) -> None:
    ds, _ = synthetic_dataset(phi, np.random.default_rng(2))
    ds.add_new(0x60003000, "OW", b"\x00\x01" * 8)
    out, record = deidentify_dataset(ds, DeidPolicy(project_key=b"k"))
    assert not any(e.tag.is_private for e in out)
    assert not any(0x6000 <= e.tag.group <= 0x60FF for e in out)
    assert record.details["private_removed"] == 3
    kept, _ = deidentify_dataset(ds, DeidPolicy(options=("retain-safe-private",), project_key=b"k"))
    private = [e for e in kept if e.tag.is_private]
    assert [e.VR for e in private] == ["DS"]  # numeric kept, names/SSN gone


def test_uids_map_consistently_across_files_and_runs() -> None:
    a = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    b = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    b.SOPInstanceUID = "1.2.3.4.5.6.7.8"
    out_a, _ = deidentify_dataset(a, DeidPolicy(project_key=b"k1"))
    out_b, _ = deidentify_dataset(b, DeidPolicy(project_key=b"k1"))
    again, _ = deidentify_dataset(a, DeidPolicy(project_key=b"k1"))
    other, _ = deidentify_dataset(a, DeidPolicy(project_key=b"k2"))
    assert out_a.StudyInstanceUID == out_b.StudyInstanceUID == again.StudyInstanceUID
    assert out_a.SeriesInstanceUID == out_b.SeriesInstanceUID
    assert out_a.SOPInstanceUID != out_b.SOPInstanceUID
    assert out_a.StudyInstanceUID != a.StudyInstanceUID
    assert other.StudyInstanceUID != out_a.StudyInstanceUID
    assert out_a.file_meta.MediaStorageSOPInstanceUID == out_a.SOPInstanceUID
    assert out_a.SOPClassUID == a.SOPClassUID  # well-known UIDs are not identifying


def test_dates_shift_per_patient_and_keep_intervals(policy: DeidPolicy) -> None:
    first = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    later = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    first.StudyDate, later.StudyDate = "20200101", "20200315"
    out_first, _ = deidentify_dataset(first, policy)
    out_later, _ = deidentify_dataset(later, policy)
    import datetime as dt

    def day(value: str) -> dt.date:
        return dt.datetime.strptime(value, "%Y%m%d").date()

    assert out_first.StudyDate != "20200101"
    assert day(out_later.StudyDate) - day(out_first.StudyDate) == dt.timedelta(days=74)
    assert out_first.LongitudinalTemporalInformationModified == "MODIFIED"
    stranger = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    stranger.PatientID, stranger.StudyDate = "someone-else", "20200101"
    out_stranger, _ = deidentify_dataset(stranger, policy)
    assert out_stranger.StudyDate != out_first.StudyDate


def test_method_is_recorded_with_cid_7050_codes(policy: DeidPolicy) -> None:
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    out, _ = deidentify_dataset(ds, policy)
    assert out.PatientIdentityRemoved == "YES"
    codes = {item.CodeValue for item in out.DeidentificationMethodCodeSequence}
    assert codes == {"113100", "113107"}  # basic profile, modified dates
    assert "DICOM PS3.15 E.1 Basic Profile" in out.DeidentificationMethod


def test_options_keep_what_they_name(phi: PHI) -> None:
    ds, _ = synthetic_dataset(phi, np.random.default_rng(3))
    ds.PatientAge, ds.PatientSex, ds.StationName = "095Y", "F", "CT-ROOM-7"
    options = (
        "retain-device-identity",
        "retain-patient-characteristics",
        "retain-uids",
        "retain-longitudinal-full-dates",
    )
    out, _ = deidentify_dataset(ds, DeidPolicy(options=options, project_key=b"k"))
    assert out.StationName == "CT-ROOM-7" and out.DeviceSerialNumber == ds.DeviceSerialNumber
    assert out.PatientSex == "F" and out.PatientAge == "090Y"  # HIPAA: ages over 89 pooled
    assert out.StudyInstanceUID == ds.StudyInstanceUID and out.StudyDate == ds.StudyDate
    assert out.LongitudinalTemporalInformationModified == "UNMODIFIED"
    assert "PatientName" not in out or str(out.PatientName) != str(ds.PatientName)
    basic, _ = deidentify_dataset(ds, DeidPolicy(options=(), project_key=b"k"))
    assert "StationName" not in basic or basic.StationName != "CT-ROOM-7"
    assert "PatientAge" not in basic


def test_default_profile_removes_descriptors_with_unlabelled_foreign_names(
    phi: PHI, policy: DeidPolicy
) -> None:
    ds, _ = synthetic_dataset(phi, np.random.default_rng(4))
    # Names no gazetteer or label rule knows: only removal is safe (PS3.15 Table E.1-1: X).
    ds.StudyDescription = "TC TORACE Wojciechowska Zbigniewa"
    ds.ImageComments = "kontrola Przybyszewski"
    out, record = deidentify_dataset(ds, policy)
    for keyword in ("StudyDescription", "SeriesDescription", "ImageComments"):
        assert keyword not in out, keyword
        assert keyword in record.details["X_attributes"]
    assert "clean-descriptors" not in policy.options
    assert out.Modality == ds.Modality  # coded facts stay


def test_clean_descriptors_keeps_clinical_words_and_drops_names(phi: PHI) -> None:
    ds, _ = synthetic_dataset(phi, np.random.default_rng(4))
    cleaning = DeidPolicy.from_names(["retain-longitudinal-modified-dates", "clean-descriptors"])
    out, _ = deidentify_dataset(ds, cleaning)
    assert out.StudyDescription.startswith("CT CHEST") and phi.family not in out.StudyDescription
    assert phi.accession not in out.SeriesDescription


def test_unknown_option_suggests_the_right_name() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'retain-device-identity'"):
        DeidPolicy(options=("retain-device-identiy",), project_key=b"k")
    with pytest.raises(ConfigError, match="dates are either kept or shifted"):
        DeidPolicy(
            options=("retain-longitudinal-full-dates", "retain-longitudinal-modified-dates"),
            project_key=b"k",
        )
    assert DeidPolicy(options=("Retain Device Identity Option",), project_key=b"k").options == (
        "retain-device-identity",
    )


def test_project_key_is_created_owner_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDLENS_PROJECT_KEY", raising=False)
    key = load_project_key()
    path = Path(os.environ["MEDLENS_HOME"]) / "project.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_project_key() == key and len(key) == 64
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_project_key()
    monkeypatch.setenv("MEDLENS_PROJECT_KEY", "from-env")
    assert DeidPolicy().project_key == b"from-env"


@pytest.mark.parametrize(
    "name",
    [
        "CT_small.dcm",
        "MR_small.dcm",
        "rtplan.dcm",
        "rtstruct.dcm",
        "rtdose.dcm",
        "test-SR.dcm",
        "waveform_ecg.dcm",
        "JPEG2000.dcm",
        "examples_overlay.dcm",
        "nested_priv_SQ.dcm",
    ],
)
def test_real_test_files_lose_their_identity(name: str, policy: DeidPolicy, tmp_path: Path) -> None:
    ds = pydicom.dcmread(get_testdata_file(name), force=True)
    out, _ = deidentify_dataset(ds, policy)
    kept = {str(ds.get("Manufacturer", ""))}  # equipment facts the profile keeps
    out.save_as(tmp_path / "x.dcm")
    blob = (tmp_path / "x.dcm").read_bytes()
    for keyword in ("PatientName", "PatientID", "ReferringPhysicianName", "InstitutionName"):
        value = str(ds.get(keyword, "") or "").strip()
        if len(value) >= 4 and keyword != "PatientID" and not any(value in k for k in kept):
            assert value.encode() not in blob, keyword
    if "PatientID" in ds and ds.PatientID:
        assert out.PatientID != ds.PatientID
    assert not any(e.tag.is_private for e in out.iterall())
    assert pydicom.dcmread(tmp_path / "x.dcm", force=True).PatientIdentityRemoved == "YES"


@pytest.mark.data
def test_real_ct_series_stays_linked(shared_data: Path, policy: DeidPolicy) -> None:
    folder = shared_data / "dicom-series/dcmqi-ct-3slice/data/segmentations/ct-3slice"
    slices = [pydicom.dcmread(folder / f"0{i}.dcm") for i in (1, 2, 3)]
    outs = [deidentify_dataset(ds, policy)[0] for ds in slices]
    assert len({o.StudyInstanceUID for o in outs}) == 1
    assert len({o.SeriesInstanceUID for o in outs}) == 1
    assert len({o.SOPInstanceUID for o in outs}) == 3
    assert outs[0].StudyInstanceUID != slices[0].StudyInstanceUID
    assert len({o.PatientID for o in outs}) == 1
