"""End to end against a real Orthanc: pull → de-identify → ask → SR/FHIR → STOW → QIDO, the
PHI scan over every file written, and each way a PACS refuses what is sent."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

hd = pytest.importorskip("highdicom")
pytest.importorskip("dicomweb_client")
pydicom = pytest.importorskip("pydicom")

from medlens import pipeline
from medlens.backends.scripted import ScriptedBackend
from medlens.cli.main import main
from medlens.errors import ConfigError, PacsError
from medlens.interop.export import export_answer
from medlens.interop.stow import store
from medlens.study.readers.dicomweb import connect
from medlens.testing.phi import make_phi
from medlens.testing.studies import write_ct_series

from .conftest import Orthanc, free_port, stow_folder


def phi_ct(folder: Path) -> tuple[Path, list[str]]:
    """The synthetic CT, re-labelled with a realistic generated patient (name, ids, dates,
    address, phone, physician, institution); returns the folder and every identifying string
    it now holds, its UIDs included."""
    phi = make_phi(np.random.default_rng(7))
    ct = write_ct_series(folder, slices=12, size=64)
    values = {
        "PatientName": f"{phi.family}^{phi.given}",
        "PatientID": phi.patient_id,
        "PatientBirthDate": f"{phi.birth_date:%Y%m%d}",
        "StudyDate": f"{phi.study_date:%Y%m%d}",
        "AccessionNumber": phi.accession,
        "PatientAddress": f"{phi.street}, {phi.city}",
        "PatientTelephoneNumbers": phi.phone,
        "ReferringPhysicianName": phi.physician.replace(" ", "^"),
        "InstitutionName": phi.institution,
        "OtherPatientIDs": phi.ssn,
    }
    secrets = {phi.family, phi.given, phi.patient_id, phi.accession, phi.phone, phi.street,
               phi.institution, phi.ssn, values["PatientBirthDate"], values["StudyDate"]}  # fmt: skip
    for path in sorted(p for p in ct.iterdir() if p.is_file()):
        ds = pydicom.dcmread(path)
        for keyword, value in values.items():
            setattr(ds, keyword, value)
        ds.save_as(path, enforce_file_format=True)
        secrets |= {ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID}
    return ct, sorted(s for s in secrets if len(s) >= 4)


def leaks(folder: Path, secrets: list[str]) -> list[str]:
    """Every (file, secret) pair where a secret appears in the bytes of a written file."""
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        blob = path.read_bytes()
        found += [f"{path.name}: {s}" for s in secrets if s.encode() in blob]
    return found


def series_on(server: Orthanc, study_uid: str) -> dict[str, str]:
    client, _ = connect(server.root)
    rows = client.search_series(study_uid)
    client.close()
    return {r["0020000E"]["Value"][0]: r["00080060"]["Value"][0] for r in rows}


def test_pull_ask_export_store_verify(
    pacs: Orthanc, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ct, secrets = phi_ct(tmp_path / "ct")
    (study_uid,) = stow_folder(pacs, ct)
    out = tmp_path / "out"
    question = "Is there a nodule in the right lung?"
    code = main(["ask", pacs.study(study_uid), question, "--model", "prior",
                 "--export", str(out), "--store-to", pacs.root, "--json"])  # fmt: skip
    assert code == 0
    record = json.loads(capsys.readouterr().out)
    assert record["studies"][0]["deidentified"] is True
    export = record["export"]
    assert export["deidentified"] is True and export["role"] == "baseline"
    assert sorted(p.name for p in out.iterdir()) == [
        "answer.json", "export.json", "fhir-r5.json", "sr.dcm"
    ]  # fmt: skip
    # the PACS holds the SR, in the de-identified study (a new study there), as QIDO says
    sr = hd.sr.srread(out / "sr.dcm")
    assert export["stored"]["sop_instance_uids"] == [sr.SOPInstanceUID]
    assert sr.StudyInstanceUID != study_uid
    assert series_on(pacs, sr.StudyInstanceUID) == {sr.SeriesInstanceUID: "SR"}
    client, _ = connect(pacs.root)
    (held,) = client.call(
        "retrieve", client.client.retrieve_series,
        study_instance_uid=sr.StudyInstanceUID, series_instance_uid=sr.SeriesInstanceUID,
    )  # fmt: skip
    client.close()
    assert held.SOPInstanceUID == sr.SOPInstanceUID
    assert hd.sr.Comprehensive3DSR.from_dataset(held).content[0].ContentSequence is not None
    # no identifying value of the source in any file written
    assert leaks(out, secrets) == []
    fhir = json.loads((out / "fhir-r5.json").read_text())
    assert {e["resource"]["resourceType"] for e in fhir["entry"]} >= {
        "DiagnosticReport", "ImagingStudy", "Device", "Patient"
    }  # fmt: skip


def test_grounded_answer_round_trips_through_the_pacs(pacs: Orthanc, tmp_path: Path) -> None:
    ct, secrets = phi_ct(tmp_path / "ct")
    (study_uid,) = stow_folder(pacs, ct)
    backend = ScriptedBackend(answers=['[{"label": "nodule", "bbox_2d": [60, 60, 90, 100]}]'])
    result = pipeline.ask(pacs.study(study_uid), "Outline the nodule", backend=backend,
                          kind="grounding")  # fmt: skip
    seen = result.prepared.studies[0]
    mask = np.zeros(seen.pixels.shape, dtype=bool)
    mask[5:7, 20:30, 10:20] = True
    out = tmp_path / "out"
    exported = export_answer(result, out_dir=out, store_to=pacs.root, masks={"nodule": mask})
    assert exported.stored is not None and len(exported.stored.sop_instance_uids) == 2
    held = series_on(pacs, str(seen.headers[0].StudyInstanceUID))
    # the de-identified study is a new one on the PACS: the results only, never the source CT
    assert sorted(held.values()) == ["SEG", "SR"]
    seg = hd.seg.segread(out / "seg.dcm")
    back = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=[h.SOPInstanceUID for h in seen.headers], segment_numbers=[1]
    )[..., 0].astype(bool)
    assert np.array_equal(back, mask)
    sr = hd.sr.srread(out / "sr.dcm")
    (group,) = sr.content.get_planar_roi_measurement_groups()
    referenced = group.roi.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
    assert referenced in {h.SOPInstanceUID for h in seen.headers}
    assert leaks(out, secrets) == []


def test_without_deidentification_results_join_the_source_study(
    pacs: Orthanc, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ct = write_ct_series(tmp_path / "ct", slices=6, size=32)
    (study_uid,) = stow_folder(pacs, ct)
    out = tmp_path / "out"
    code = main(["ask", pacs.study(study_uid), "Is there a nodule?", "--model", "prior",
                 "--no-deid", "--export", str(out), "--store-to", pacs.root, "--fhir-version",
                 "R4B"])  # fmt: skip
    assert code == 0
    assert "verified by QIDO-RS" in capsys.readouterr().out
    summary = json.loads((out / "export.json").read_text())
    assert summary["deidentified"] is False and summary["identifiers"].startswith("source")
    sr = pydicom.dcmread(out / "sr.dcm")
    assert sr.StudyInstanceUID == study_uid and "PatientIdentityRemoved" not in sr
    assert sorted(series_on(pacs, study_uid).values()) == ["CT", "SR"]
    fhir = json.loads((out / "fhir-r4b.json").read_text())
    report = next(
        e["resource"] for e in fhir["entry"] if e["resource"]["resourceType"] == "DiagnosticReport"
    )
    assert "imagingStudy" in report and "meta" not in report


def test_stow_that_the_pacs_silently_drops_is_caught(
    orthanc_refusing: Orthanc, tmp_path: Path
) -> None:
    """Orthanc with a refusing storage policy answers STOW-RS 200 and lists the instance as
    referenced, yet stores nothing (dicomweb-client issue #42): only QIDO-RS tells."""
    ct = write_ct_series(tmp_path / "ct", slices=4, size=32)
    backend = ScriptedBackend(answers=["Yes."])
    result = pipeline.ask(str(ct), "Is there a nodule?", backend=backend)
    with pytest.raises(PacsError, match="accepted the STOW-RS request but does not hold 1 of 1"):
        export_answer(result, store_to=orthanc_refusing.root)


def test_stow_errors(
    orthanc_auth: Orthanc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("MEDLENS_PACS_AUTH_FILE", "MEDLENS_PACS_TOKEN", "MEDLENS_PACS_USER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MEDLENS_PACS_RETRIES", "0")
    ct = write_ct_series(tmp_path / "ct", slices=4, size=32)
    result = pipeline.ask(str(ct), "Is there a nodule?", backend=ScriptedBackend(answers=["No."]))
    with pytest.raises(PacsError, match="Storing to the PACS: .* answered 401"):
        export_answer(result, store_to=orthanc_auth.root)
    port = free_port()
    with pytest.raises(PacsError, match="cannot reach"):
        export_answer(result, store_to=f"dicomweb://127.0.0.1:{port}/dicom-web")
    with pytest.raises(PacsError, match="Nothing to store"):
        store([], orthanc_auth.root)
    monkeypatch.setenv("MEDLENS_PACS_USER", "medlens")
    monkeypatch.setenv("MEDLENS_PACS_PASSWORD", "s3cret")
    orthanc_auth.clear()
    exported = export_answer(result, store_to=orthanc_auth.root)
    assert exported.stored is not None and exported.stored.checks == 1


def test_store_to_refuses_a_non_dicom_study_before_the_model_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    png = tmp_path / "x.png"
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(png)
    port = free_port()
    code = main(["ask", str(png), "Is there a nodule?", "--model", "prior", "--store-to",
                 f"dicomweb://127.0.0.1:{port}/dicom-web"])  # fmt: skip
    assert code == 2
    assert "the study is not DICOM" in capsys.readouterr().err
    with pytest.raises(ConfigError):
        from medlens.interop.export import check_exportable

        check_exportable((), "dicomweb://x:1/dicom-web")
