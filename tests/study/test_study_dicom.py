"""DICOM: single-frame, multi-frame, compressed transfer syntaxes, series folders (geometry
sorting, 4D series, skipped non-image objects), byte input and bad input."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medlens.errors import (
    ConfigError,
    CorruptFileError,
    NoPixelDataError,
    StudyError,
)
from medlens.study import load_pair, load_study
from medlens.study.readers import READERS, Reader
from medlens.testing.studies import FAKE_PATIENT, ct_phantom, lesion_location, write_ct_series
from medlens.types import Study

GetFile = Callable[[str], Path]


def test_ct_small_is_rescaled_to_hounsfield_units(pydicom_file: GetFile) -> None:
    path = pydicom_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    study = load_study(path)
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_array_equal(study.pixels[0], expected)
    assert study.modality == "CT" and study.source_format == "dicom"
    assert study.pixel_spacing == tuple(float(v) for v in ds.PixelSpacing)
    # affine: voxel (col, row) → ImagePositionPatient + col·X·Δcol + row·Y·Δrow
    iop = np.array(ds.ImageOrientationPatient, float)
    p = study.affine @ [3, 5, 0, 1]
    want = (
        np.array(ds.ImagePositionPatient, float)
        + 3 * iop[:3] * float(ds.PixelSpacing[1])
        + 5 * iop[3:] * float(ds.PixelSpacing[0])
    )
    np.testing.assert_allclose(p[:3], want)
    assert "PixelData" not in study.headers[0]
    assert study.headers[0].SOPInstanceUID == ds.SOPInstanceUID


MR_VARIANTS = [
    "MR_small.dcm",
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_RLE.dcm",
    "MR_small_jp2klossless.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
]


@pytest.mark.parametrize("name", MR_VARIANTS)
def test_lossless_encodings_of_one_image_agree(pydicom_file: GetFile, name: str) -> None:
    """Uncompressed, big-endian, RLE, JPEG 2000 and JPEG-LS lossless give the same values."""
    reference = load_study(pydicom_file("MR_small.dcm")).pixels
    study = load_study(pydicom_file(name))
    assert study.pixels.dtype.isnative
    np.testing.assert_array_equal(study.pixels, reference)


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("693_J2KI.dcm", (1, 512, 512)),  # JPEG 2000 lossy CT
        ("JPGExtended.dcm", (1, 1024, 256)),  # JPEG extended 12-bit NM
        ("JPEG2000.dcm", (1, 1024, 256)),
        ("SC_rgb_jpeg_dcmtk.dcm", (1, 100, 100, 3)),  # JPEG baseline, YBR → RGB
        ("examples_jpeg2k.dcm", (1, 480, 640, 3)),
    ],
)
def test_compressed_transfer_syntaxes(
    pydicom_file: GetFile, name: str, shape: tuple[int, ...]
) -> None:
    study = load_study(pydicom_file(name))
    assert study.pixels.shape == shape
    assert np.ptp(study.pixels) > 0


def test_jpeg_lossy_12bit_reports_a_clear_error(pydicom_file: GetFile) -> None:
    """JPEG-lossy.dcm has a stream neither pylibjpeg nor Pillow decodes: a clear error."""
    with pytest.raises(CorruptFileError, match="could not be decoded"):
        load_study(pydicom_file("JPEG-lossy.dcm"))


def test_colour_ultrasound_single_and_multiframe(pydicom_file: GetFile) -> None:
    rgb = load_study(pydicom_file("examples_rgb_color.dcm"))
    assert rgb.pixels.shape == (1, 240, 320, 3) and rgb.photometric == "RGB"
    np.testing.assert_array_equal(
        rgb.pixels[0], pydicom.dcmread(pydicom_file("examples_rgb_color.dcm")).pixel_array
    )
    cine = load_study(pydicom_file("examples_ybr_color.dcm"))  # 30 frames, JPEG baseline YBR
    assert cine.pixels.shape == (30, 240, 320, 3)
    assert cine.affine is None and cine.metadata["num_frames"] == 30
    palette = load_study(pydicom_file("examples_palette.dcm"))
    assert palette.is_color and palette.pixels.dtype == np.uint8


def test_rt_dose_grid_geometry_from_frame_offsets(pydicom_file: GetFile) -> None:
    path = pydicom_file("rtdose.dcm")
    ds = pydicom.dcmread(path)
    study = load_study(path)
    assert study.pixels.shape == (15, 10, 10)
    offsets = [float(v) for v in ds.GridFrameOffsetVector]
    z = [float((study.affine @ [0, 0, k, 1])[2]) for k in (0, 14)]
    np.testing.assert_allclose(
        z,
        [float(ds.ImagePositionPatient[2]) + offsets[0], ds.ImagePositionPatient[2] + offsets[-1]],
    )
    assert study.slice_spacing == pytest.approx(abs(offsets[1] - offsets[0]))


def test_bad_dicom_inputs(pydicom_file: GetFile) -> None:
    with pytest.raises(CorruptFileError, match="truncated"):
        load_study(pydicom_file("MR_truncated.dcm"))
    with pytest.raises(NoPixelDataError, match="SR"):
        load_study(pydicom_file("reportsi.dcm"))
    with pytest.raises(NoPixelDataError, match="ECG"):
        load_study(pydicom_file("waveform_ecg.dcm"))


def test_file_cut_in_the_header_is_corrupt(pydicom_file: GetFile, tmp_path: Path) -> None:
    data = pydicom_file("CT_small.dcm").read_bytes()
    (tmp_path / "cut.dcm").write_bytes(data[:400])
    with pytest.raises(CorruptFileError):
        load_study(tmp_path / "cut.dcm")


def test_dicom_bytes_are_sniffed(pydicom_file: GetFile) -> None:
    data = pydicom_file("CT_small.dcm").read_bytes()
    study = load_study(data)
    np.testing.assert_array_equal(study.pixels, load_study(pydicom_file("CT_small.dcm")).pixels)


def test_series_is_sorted_by_geometry_not_by_name(ct_series: Path, ct_study: Study) -> None:
    names = sorted(p.name for p in ct_series.iterdir())
    by_name = [int(pydicom.dcmread(ct_series / n, stop_before_pixels=True).InstanceNumber)
               for n in names]  # fmt: skip
    assert by_name != sorted(by_name), "file names must not already be in slice order"
    assert all("." not in n for n in names)  # extension-less, as many PACS exports are
    np.testing.assert_array_equal(ct_study.pixels, ct_phantom())
    assert ct_study.source_format == "dicom-series"
    assert (ct_study.modality, ct_study.body_part) == ("CT", "CHEST")
    assert ct_study.slice_spacing == pytest.approx(5.0)
    zs = [float(h.ImagePositionPatient[2]) for h in ct_study.headers]
    assert zs == sorted(zs) and len(ct_study.headers) == 24
    assert all("PixelData" not in h for h in ct_study.headers)
    assert ct_study.windows[0].center == 40 and ct_study.windows[1].name == "LUNG"
    assert ct_study.burned_in_annotation is False
    assert FAKE_PATIENT["PatientName"] not in str(dict(ct_study.metadata))


def test_series_lesion_is_where_documented(ct_study: Study) -> None:
    loc = lesion_location()
    col, row, sl = (round(v) for v in loc.voxel)
    assert abs(int(ct_study.pixels[sl, row, col]) - loc.hu) < 40  # noise sd 8
    assert ct_study.pixels[sl, row - 12, col] < -600  # lung around it
    np.testing.assert_allclose((ct_study.affine @ [*loc.voxel, 1])[:3], loc.mm)


def test_series_falls_back_to_instance_number(tmp_path: Path) -> None:
    folder = write_ct_series(tmp_path / "ct", slices=6, size=16)
    for path in folder.iterdir():
        ds = pydicom.dcmread(path)
        del ds.ImagePositionPatient
        ds.save_as(path)
    study = load_study(folder)
    assert study.metadata["sorted_by"] == "InstanceNumber" and study.affine is None
    np.testing.assert_array_equal(study.pixels, ct_phantom(slices=6, size=16))


def test_folder_with_two_series(tmp_path: Path) -> None:
    write_ct_series(tmp_path / "both" / "a", slices=4, size=16, seed=1)
    write_ct_series(tmp_path / "both" / "b", slices=5, size=16, seed=2)
    with pytest.raises(StudyError, match="2 image series") as info:
        load_study(tmp_path / "both")
    uid = pydicom.dcmread(next((tmp_path / "both" / "b").iterdir())).SeriesInstanceUID
    assert uid in str(info.value) and "5 files" in str(info.value)
    assert load_study(tmp_path / "both", series_uid=uid).num_slices == 5
    with pytest.raises(ConfigError, match="No series"):
        load_study(tmp_path / "both", series_uid="1.2.3")


def test_folder_without_dicom(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("nothing here")
    with pytest.raises(StudyError, match="no DICOM images"):
        load_study(tmp_path)


def test_load_pair_sets_prior(tmp_path: Path) -> None:
    prior = write_ct_series(tmp_path / "prior", slices=4, size=16, lesion=False)
    current = write_ct_series(tmp_path / "current", slices=4, size=16)
    study = load_pair(prior, current)
    assert study.prior is not None and study.prior.prior is None
    np.testing.assert_array_equal(study.pixels, ct_phantom(slices=4, size=16))
    np.testing.assert_array_equal(study.prior.pixels, ct_phantom(slices=4, size=16, lesion=False))
    assert study.summary()["has_prior"] is True


def test_readers_follow_the_protocol() -> None:
    """One conformance check for every registered reader."""
    for name in READERS:
        reader = READERS.get(name)
        assert isinstance(reader, Reader) and reader.name == name
        assert reader.can_read(b"") is False


# ---- real multi-slice series from ../shared/data ----------------------------------------


@pytest.mark.data
@pytest.mark.slow  # reads 630 headers twice (about 3 s)
def test_bold_series_is_a_4d_series(shared_data: Path) -> None:
    folder = shared_data / "dicom-series" / "studyforrest-func-1block" / "dicoms"
    study = load_study(folder)
    assert study.pixels.shape == (35, 80, 80)
    assert study.metadata["num_volumes"] == 18 and study.metadata["volume"] == 0
    temporal = {int(h.TemporalPositionIdentifier) for h in study.headers}
    assert temporal == {1}
    normal = np.cross(
        *np.reshape(np.asarray(study.headers[0].ImageOrientationPatient, float), (2, 3))
    )
    along = [
        float(np.dot(np.asarray(h.ImagePositionPatient, float), normal)) for h in study.headers
    ]
    assert np.all(np.diff(along) > 0)
    assert study.slice_spacing == pytest.approx(3.3, abs=0.01)  # SpacingBetweenSlices
    with pytest.raises(ConfigError, match="18 volumes"):
        load_study(folder, volume=18)


@pytest.mark.data
def test_ct_folder_skips_seg_and_nrrd(shared_data: Path) -> None:
    folder = shared_data / "dicom-series" / "dcmqi-ct-3slice" / "data" / "segmentations"
    study = load_study(folder)
    assert study.pixels.shape == (3, 512, 512) and study.modality == "CT"
    assert study.metadata["skipped"] == {"Segmentation Storage": 1, "not DICOM": 1}
    assert [int(h.InstanceNumber) for h in study.headers] == [3, 2, 1]  # inferior first
    assert study.slice_spacing == pytest.approx(1.0)
    ds = pydicom.dcmread(folder / "ct-3slice" / "03.dcm")
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_array_equal(study.pixels[0], hu)  # HU, not stored values


@pytest.mark.data
def test_copy_with_renamed_files_gives_the_same_volume(shared_data: Path, tmp_path: Path) -> None:
    source = (
        shared_data / "dicom-series" / "dcmqi-ct-3slice" / "data" / "segmentations" / "ct-3slice"
    )
    for name, new in zip(["01.dcm", "02.dcm", "03.dcm"], ["c", "a", "b"]):
        shutil.copy(source / name, tmp_path / new)
    np.testing.assert_array_equal(load_study(tmp_path).pixels, load_study(source).pixels)


def test_enhanced_multiframe_geometry_rescale_and_frame_order(tmp_path: Path) -> None:
    """An enhanced CT (PS3.3 C.7.6.16) whose frames are stored out of spatial order, with the
    rescale in the shared functional groups: frames come back sorted, in HU."""
    from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    hu = ct_phantom(slices=5, size=16)
    stored_order = [3, 0, 4, 1, 2]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2.1"  # Enhanced CT Image Storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(tmp_path / "enhanced.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = (
        meta.MediaStorageSOPClassUID,
        meta.MediaStorageSOPInstanceUID,
    )
    ds.Modality, ds.NumberOfFrames = "CT", 5
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows = ds.Columns = 16
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    shared = Dataset()
    orientation, measures, transform = Dataset(), Dataset(), Dataset()
    orientation.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    measures.PixelSpacing, measures.SliceThickness = [2.0, 2.0], 3.0
    transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = 1, -1024, "HU"
    shared.PlaneOrientationSequence = [orientation]
    shared.PixelMeasuresSequence = [measures]
    shared.PixelValueTransformationSequence = [transform]
    ds.SharedFunctionalGroupsSequence = [shared]
    frames = []
    for k in stored_order:
        position, item = Dataset(), Dataset()
        position.ImagePositionPatient = [-15.0, -15.0, 10.0 + 3.0 * k]
        item.PlanePositionSequence = [position]
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = frames
    ds.PixelData = (hu[stored_order].astype(np.int32) + 1024).astype("<u2").tobytes()
    ds.save_as(tmp_path / "enhanced.dcm", enforce_file_format=True)

    study = load_study(tmp_path / "enhanced.dcm")
    np.testing.assert_array_equal(study.pixels, hu)
    assert study.metadata["frames_reordered"] is True
    assert study.pixel_spacing == (2.0, 2.0) and study.slice_thickness == 3.0
    np.testing.assert_allclose(study.affine @ [1, 2, 4, 1], [-13.0, -11.0, 22.0, 1.0])
