"""Inputs that are not images are refused, what is dropped is said, and `medlens ask` picks
series, volumes and modality by flag (issue 14, item 4), on pydicom's and nibabel's shipped
files and the real series of ../shared/data."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medlens.errors import CorruptFileError, NoPixelDataError, StudyError
from medlens.study import load_study
from medlens.testing.studies import write_ct_nifti, write_ct_series

FileFixture = Callable[[str], Path]


def medlens(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "medlens.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
        timeout=300,
    )


def test_a_dicom_seg_is_refused_naming_the_series_to_load(
    pydicom_file: FileFixture, tmp_path: Path
) -> None:
    seg = pydicom_file("liver_1frame.dcm")
    with pytest.raises(NoPixelDataError, match="Segmentation Storage"):
        load_study(seg)
    out = medlens("ask", str(seg), "Is there a lesion?", "--model", "prior", cwd=tmp_path)
    assert out.returncode == 2, out.stdout
    assert "segmentation masks" in out.stderr and "Load the image series it refers to" in out.stderr
    assert "1.2.392.200103.20080913.113635.1.2009.6.22.21.43.10.23430.1" in out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""


def test_a_dicom_image_without_pixel_data_is_not_called_only_truncated(
    pydicom_file: FileFixture, tmp_path: Path
) -> None:
    import pydicom

    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    del ds.PixelData
    header_only = tmp_path / "header-only.dcm"
    ds.save_as(header_only)
    with pytest.raises(CorruptFileError, match="written without its pixels"):
        load_study(header_only)


def test_a_4d_nifti_says_which_volume_is_used_and_volume_picks_another(
    nibabel_file: FileFixture, tmp_path: Path
) -> None:
    path = str(nibabel_file("example4d.nii.gz"))
    question = ("Is there a lesion?", "--model", "prior")
    first = medlens("ask", path, *question, "--save-views", str(tmp_path / "v0"), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "note: the NIfTI file holds 2 volumes (time points); only volume 0 is used" in (
        first.stderr
    )
    assert "--volume N (0..1)" in first.stderr
    second = medlens(
        "ask", path, *question, "--volume", "1", "--save-views", str(tmp_path / "v1"), cwd=tmp_path
    )
    assert second.returncode == 0, second.stderr
    assert "only volume 1 is used" in second.stderr
    (view0,) = sorted((tmp_path / "v0").glob("*.png"))
    (view1,) = sorted((tmp_path / "v1").glob("*.png"))
    assert not np.array_equal(np.asarray(Image.open(view0)), np.asarray(Image.open(view1)))
    wrong = medlens("ask", path, *question, "--volume", "5", cwd=tmp_path)
    assert wrong.returncode == 2
    assert "--volume 5 is out of range" in wrong.stderr and "(0..1)" in wrong.stderr


@pytest.mark.data
def test_a_4d_dicom_series_says_which_volume_is_used(shared_data: Path, tmp_path: Path) -> None:
    folder = shared_data / "dicom-series" / "studyforrest-func-1block" / "dicoms"
    out = medlens("ask", str(folder), "Is there a lesion?", "--model", "prior", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "the DICOM series holds 18 volumes" in out.stderr and "--volume N (0..17)" in out.stderr
    wrong = medlens(
        "ask", str(folder), "Is it?", "--model", "prior", "--volume", "18", cwd=tmp_path
    )
    assert wrong.returncode == 2 and "--volume 18 is out of range" in wrong.stderr


def test_series_picks_one_series_of_a_folder_and_errors_name_the_flag(tmp_path: Path) -> None:
    folder = tmp_path / "two"
    write_ct_series(folder / "a", slices=6)
    write_ct_series(folder / "b", slices=4, seed=1)
    out = medlens("ask", str(folder), "Is there a nodule?", "--model", "prior", cwd=tmp_path)
    assert out.returncode == 2
    assert "holds 2 image series (2 CT)" in out.stderr
    assert "--series UID" in out.stderr and "load_study(" not in out.stderr
    uid = str(load_study(folder / "b").headers[0].SeriesInstanceUID)
    picked = medlens(
        "ask", str(folder), "Is there a nodule?", "--model", "prior", "--series", uid, "--json",
        cwd=tmp_path,
    )  # fmt: skip
    assert picked.returncode == 0, picked.stderr
    assert json.loads(picked.stdout)["studies"][0]["shape"][0] == 4


def test_a_folder_of_many_series_gets_a_short_summary(
    pydicom_file: FileFixture, tmp_path: Path
) -> None:
    folder = pydicom_file("CT_small.dcm").parent  # pydicom's test files: 30-odd series
    out = medlens("ask", str(folder), "Is it normal?", "--model", "prior", cwd=tmp_path)
    assert out.returncode == 2
    assert len(out.stderr) < 1500, out.stderr
    assert "more. Pick one with --series UID" in out.stderr
    assert "UserWarning" not in out.stderr  # odd files of the first pass are not shouted


def test_format_errors_name_the_cli_flag(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    out = medlens("ask", str(text), "Is it?", "--model", "prior", cwd=tmp_path)
    assert out.returncode == 2 and "--format dicom" in out.stderr


def test_save_views_writes_exactly_the_images_the_model_received(tmp_path: Path) -> None:
    """The saved PNGs are the request's images, pixel for pixel, in order."""
    from medlens import pipeline
    from medlens.backends.baseline import PriorBackend

    volume = write_ct_nifti(tmp_path / "ct.nii.gz")
    out = medlens(
        "ask", str(volume), "Is there a nodule?", "--model", "prior", "--modality", "CT",
        "--recipe", "slices@1", "--save-views", str(tmp_path / "views"), "--json", cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    saved = sorted((tmp_path / "views").glob("*.png"))
    record = json.loads(out.stdout)
    assert len(saved) == len(record["views"]) > 1
    study = load_study(volume, modality="CT")
    result = pipeline.ask(study, "Is there a nodule?", backend=PriorBackend(), recipe="slices@1")
    for path, image in zip(saved, result.request.images, strict=True):
        assert np.array_equal(np.asarray(Image.open(path)), np.asarray(image)), path


@pytest.mark.slow
def test_modality_gives_a_nifti_ct_the_model_recipe(tmp_path: Path) -> None:
    """NIfTI carries no modality: ``--modality CT`` lets a MedGemma (a tiny Gemma 3 of the
    real architecture, in a folder named like the Hub id) get its ``medgemma-ct`` recipe."""
    from medlens.testing.tiny import build_tiny_model

    build_tiny_model("gemma3", tmp_path / "google" / "medgemma-tiny")
    volume = str(write_ct_nifti(tmp_path / "ct.nii.gz"))
    ask = ("ask", volume, "Is there a nodule?", "--model", "google/medgemma-tiny", "--json")
    plain = medlens(*ask, "--device", "cpu", "--max-new-tokens", "2", cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout)["recipe"] == "slices@1"  # an "OT" volume
    ct = medlens(
        *ask, "--device", "cpu", "--max-new-tokens", "2", "--modality", "CT",
        "--save-views", str(tmp_path / "views"), cwd=tmp_path,
    )  # fmt: skip
    assert ct.returncode == 0, ct.stderr
    record = json.loads(ct.stdout)
    assert record["recipe"] == "medgemma-ct@1"
    assert record["studies"][0]["modality"] == "CT"
    assert len(list((tmp_path / "views").glob("*.png"))) == len(record["views"])


@pytest.mark.data
def test_load_study_refuses_the_seg_of_a_real_series(shared_data: Path) -> None:
    seg = shared_data / "dicom-series" / "dcmqi-ct-3slice" / "data" / "segmentations"
    with pytest.raises(StudyError, match="Segmentation"):
        load_study(seg / "liver.dcm")
