"""Pulling studies from a real Orthanc over DICOMweb: the same Study as the files on disk,
and one clear error for each way a PACS fails."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("dicomweb_client")
pydicom = pytest.importorskip("pydicom")

from medlens.cli.main import main
from medlens.errors import (
    ConfigError,
    ImageTooLargeError,
    NoPixelDataError,
    PacsError,
)
from medlens.study import load_study
from medlens.study.readers.dicomweb import Credentials, DicomwebAddress
from medlens.testing.studies import FAKE_PATIENT, write_ct_series

from .conftest import Orthanc, free_port, stow_folder

CT_3SLICE = Path("dicom-series/dcmqi-ct-3slice/data/segmentations")


@pytest.fixture
def synthetic_ct(tmp_path: Path) -> Path:
    return write_ct_series(tmp_path / "ct", slices=12, size=64)


def _series_uid(folder: Path) -> str:
    first = next(p for p in sorted(folder.iterdir()) if p.is_file())
    return str(pydicom.dcmread(first, stop_before_pixels=True).SeriesInstanceUID)


# -- addresses and credentials ---------------------------------------------------------------


def test_address_parsing() -> None:
    address = DicomwebAddress.parse(
        "dicomwebs://pacs.example:8443/dicom-web/studies/1.2.3/series/4.5"
    )
    assert address.root == "https://pacs.example:8443/dicom-web"
    assert (address.study_uid, address.series_uid) == ("1.2.3", "4.5")
    assert address.url() == "dicomwebs://pacs.example:8443/dicom-web/studies/1.2.3/series/4.5"
    root = DicomwebAddress.parse("dicomweb://127.0.0.1:8042/dicom-web/")
    assert (root.root, root.study_uid) == ("http://127.0.0.1:8042/dicom-web", None)
    with pytest.raises(ConfigError, match="Credentials do not belong"):
        DicomwebAddress.parse("dicomweb://user:pw@127.0.0.1:8042/dicom-web/studies/1.2")
    with pytest.raises(ConfigError, match="not a study address"):
        DicomwebAddress.parse("dicomweb://127.0.0.1:8042/dicom-web/studies/abc")


def test_credentials_from_file_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("MEDLENS_PACS_AUTH_FILE", "MEDLENS_PACS_TOKEN", "MEDLENS_PACS_USER"):
        monkeypatch.delenv(name, raising=False)
    assert Credentials.resolve().kind == "none"
    monkeypatch.setenv("MEDLENS_PACS_USER", "ann")
    monkeypatch.setenv("MEDLENS_PACS_PASSWORD", "pw")
    assert Credentials.resolve().secret == ("ann", "pw")
    monkeypatch.setenv("MEDLENS_PACS_TOKEN", "tok")
    assert (Credentials.resolve().kind, Credentials.resolve().secret) == ("bearer", ("tok",))
    secret = tmp_path / "pacs.auth"
    secret.write_text("# medlens PACS credentials\nBasic ann:p:w\n")
    found = Credentials.resolve(secret)
    assert (found.kind, found.secret) == ("basic", ("ann", "p:w"))
    assert "p:w" not in repr(found)
    secret.write_text("ann:pw\n")
    with pytest.raises(ConfigError, match="must start with 'Bearer <token>'"):
        Credentials.resolve(secret)


# -- pulling ----------------------------------------------------------------------------------


def test_pulled_study_equals_the_files_on_disk(pacs: Orthanc, synthetic_ct: Path) -> None:
    (study_uid,) = stow_folder(pacs, synthetic_ct)
    on_disk = load_study(synthetic_ct)
    for address in (pacs.study(study_uid), pacs.study(study_uid, _series_uid(synthetic_ct))):
        pulled = load_study(address)
        assert np.array_equal(pulled.pixels, on_disk.pixels)
        assert np.allclose(pulled.affine, on_disk.affine)
        assert pulled.windows == on_disk.windows
        assert pulled.source_format == "dicom-series"
        assert pulled.metadata["sorted_by"] == "ImagePositionPatient"
        assert pulled.metadata["dicomweb"] == f"http://127.0.0.1:{pacs.http_port}/dicom-web"
        assert [h.SOPInstanceUID for h in pulled.headers] == [
            h.SOPInstanceUID for h in on_disk.headers
        ]


@pytest.mark.data
def test_real_ct_beside_its_segmentation(pacs: Orthanc, shared_data: Path) -> None:
    """The study holds a CT series and a SEG series: the study address picks the images."""
    folder = shared_data / CT_3SLICE
    (study_uid,) = stow_folder(pacs, folder)
    pulled = load_study(pacs.study(study_uid))
    on_disk = load_study(folder / "ct-3slice")
    assert pulled.pixels.shape == (3, 512, 512)
    assert np.array_equal(pulled.pixels, on_disk.pixels)
    seg_series = str(
        pydicom.dcmread(folder / "liver.dcm", stop_before_pixels=True).SeriesInstanceUID
    )
    with pytest.raises(NoPixelDataError, match="holds no pixel data: its 1 instance.*Segmentation"):
        load_study(pacs.study(study_uid, seg_series))


@pytest.mark.data
@pytest.mark.slow
def test_real_4d_mr_series_volume(pacs: Orthanc, shared_data: Path) -> None:
    folder = shared_data / "dicom-series/studyforrest-func-1block/dicoms"
    (study_uid,) = stow_folder(pacs, folder)
    pulled = load_study(pacs.study(study_uid), volume=5)
    on_disk = load_study(folder, volume=5)
    assert pulled.pixels.shape == (35, 80, 80)
    assert pulled.metadata["num_volumes"] == 18
    assert np.array_equal(pulled.pixels, on_disk.pixels)
    assert np.allclose(pulled.affine, on_disk.affine)


def test_pixel_cap_is_checked_before_any_pixel_moves(pacs: Orthanc, synthetic_ct: Path) -> None:
    (study_uid,) = stow_folder(pacs, synthetic_ct)
    with pytest.raises(ImageTooLargeError, match="49,152 pixels"):
        load_study(pacs.study(study_uid), max_pixels=10_000)


# -- failures ---------------------------------------------------------------------------------


def test_server_down(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(
        PacsError, match=f"cannot reach the DICOMweb server at http://127.0.0.1:{port}"
    ):
        load_study(f"dicomweb://127.0.0.1:{port}/dicom-web/studies/1.2.3", retries=1)


def test_unknown_study_and_series(pacs: Orthanc, synthetic_ct: Path) -> None:
    (study_uid,) = stow_folder(pacs, synthetic_ct)
    with pytest.raises(PacsError, match="holds no study 1.2.3 "):
        load_study(pacs.study("1.2.3"))
    with pytest.raises(PacsError, match=f"holds no series 9.8.7 in study {study_uid}"):
        load_study(pacs.study(study_uid, "9.8.7"))


def test_study_with_two_image_series_asks_for_one(pacs: Orthanc, tmp_path: Path) -> None:
    first = write_ct_series(tmp_path / "a", slices=4, size=32)
    (study_uid,) = stow_folder(pacs, first)
    second = tmp_path / "b"
    second.mkdir()
    series = pydicom.uid.generate_uid()
    for path in sorted(p for p in first.iterdir() if p.is_file()):
        ds = pydicom.dcmread(path)
        ds.SeriesInstanceUID = series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        ds.save_as(second / path.name, enforce_file_format=True)
    stow_folder(pacs, second)
    with pytest.raises(ConfigError, match="holds 2 image series: .* /series/<SeriesInstanceUID>"):
        load_study(pacs.study(study_uid))


def test_authentication(
    orthanc_auth: Orthanc, synthetic_ct: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    orthanc_auth.clear()
    (study_uid,) = stow_folder(orthanc_auth, synthetic_ct)
    address = orthanc_auth.study(study_uid)
    for name in ("MEDLENS_PACS_AUTH_FILE", "MEDLENS_PACS_TOKEN", "MEDLENS_PACS_USER"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(PacsError, match="answered 401 .*no credentials were sent"):
        load_study(address)
    monkeypatch.setenv("MEDLENS_PACS_TOKEN", "not-a-valid-token")
    with pytest.raises(PacsError, match="bearer credentials from MEDLENS_PACS_TOKEN were refused"):
        load_study(address)
    monkeypatch.delenv("MEDLENS_PACS_TOKEN")
    monkeypatch.setenv("MEDLENS_PACS_USER", "medlens")
    monkeypatch.setenv("MEDLENS_PACS_PASSWORD", "wrong")
    with pytest.raises(PacsError, match="401"):
        load_study(address)
    monkeypatch.setenv("MEDLENS_PACS_PASSWORD", "s3cret")
    assert load_study(address).num_slices == 12
    monkeypatch.delenv("MEDLENS_PACS_USER")
    secret = tmp_path / "pacs.auth"
    secret.write_text("Basic medlens:s3cret\n")
    assert load_study(address, auth_file=secret).num_slices == 12


# -- the command line -------------------------------------------------------------------------


def test_pacs_search_filters(
    pacs: Orthanc, synthetic_ct: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (study_uid,) = stow_folder(pacs, synthetic_ct)

    def found(*flags: str) -> list[str]:
        assert main(["pacs", "search", pacs.root, "--json", *flags]) == 0
        rows = json.loads(capsys.readouterr().out)
        return [row["0020000D"]["Value"][0] for row in rows]

    assert found() == [study_uid]
    assert found("--patient-id", "DEMO-*") == [study_uid]
    assert found("--patient-id", "OTHER*") == []
    assert found("--modality", "ct", "--date", "20240101-20241231") == [study_uid]
    assert found("--date", "-20231231") == []
    assert found("--accession", FAKE_PATIENT["AccessionNumber"]) == [study_uid]
    assert main(["pacs", "search", pacs.study(study_uid)]) == 0
    listing = capsys.readouterr().out
    assert pacs.study(study_uid, _series_uid(synthetic_ct)) in listing
    assert "12 instances" in listing
    assert main(["pacs", "search", pacs.root, "--date", "2024"]) == 2
    assert "--date '2024'" in capsys.readouterr().err


def test_pacs_pull_deidentifies_by_default(
    pacs: Orthanc, synthetic_ct: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (study_uid,) = stow_folder(pacs, synthetic_ct)
    out = tmp_path / "pulled"
    assert main(["pacs", "pull", pacs.study(study_uid), "--out", str(out)]) == 0
    files = sorted(out.rglob("*.dcm"))
    assert len(files) == 12
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert ds.PatientIdentityRemoved == "YES"
        assert str(ds.PatientName) != FAKE_PATIENT["PatientName"]
        assert ds.StudyInstanceUID != study_uid
        assert study_uid not in str(path)
    raw = tmp_path / "raw"
    assert main(["pacs", "pull", pacs.study(study_uid), "--out", str(raw), "--no-deid"]) == 0
    kept = sorted(raw.rglob("*.dcm"))
    assert len(kept) == 12
    assert str(pydicom.dcmread(kept[0]).PatientName) == FAKE_PATIENT["PatientName"]


def test_ask_a_study_on_the_pacs(
    pacs: Orthanc, synthetic_ct: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (study_uid,) = stow_folder(pacs, synthetic_ct)
    code = main(["ask", pacs.study(study_uid), "Is there a nodule?", "--model", "prior", "--json"])
    assert code == 0
    record = json.loads(capsys.readouterr().out)
    assert record["answer"] in {"yes", "no"}
    assert record["studies"][0]["deidentified"] is True
    assert record["studies"][0]["shape"] == [12, 64, 64]
    assert any(r["action"] == "header-deid" for r in record["deidentification"])


def test_unreachable_pacs_at_the_command_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDLENS_PACS_RETRIES", "0")
    port = free_port()
    code = main(["pacs", "search", f"dicomweb://127.0.0.1:{port}/dicom-web", "--timeout", "2"])
    assert code == 2
    assert "cannot reach the DICOMweb server" in capsys.readouterr().err


def test_help_does_not_import_the_interop_libraries() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from medlens.cli.main import build_parser; build_parser(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'dicomweb_client', 'highdicom', 'fhir', 'requests', 'pydicom'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
