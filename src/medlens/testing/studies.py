"""Synthetic studies with known content, for ``medlens demo`` and for tests.

A chest CT phantom (air outside, a soft-tissue body, two lungs at about −800 HU, a spine at
about 700 HU and one round 40 HU nodule in the right lung at a known place) written as a
DICOM series, as NIfTI, and a projection X-ray written as DICOM. Every patient attribute is
an obvious fake ("DEMO^PATIENT") so de-identification tests can look for it. The DICOM
series files get shuffled, extension-less names, so that ordering by name is wrong and only
geometry sorting gives the right volume.

Geometry: the patient frame is DICOM LPS; axial slices have ``ImageOrientationPatient``
``[1, 0, 0, 0, 1, 0]``, a 350 mm field of view and 5 mm spacing, slice ``k`` (sorted by
position) at ``z = -60 + 5k`` mm, centred on the body.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medlens.errors import require

if TYPE_CHECKING:
    from pydicom import Dataset

FIELD_OF_VIEW_MM = 350.0
SLICE_SPACING_MM = 5.0
LESION_HU = 40
LESION_RADIUS_MM = 12.0
FAKE_PATIENT = {
    "PatientName": "DEMO^PATIENT",
    "PatientID": "DEMO-0001",
    "PatientBirthDate": "19700101",
    "PatientSex": "O",
    "AccessionNumber": "DEMO-ACC-1",
    "InstitutionName": "medlens synthetic hospital",
    "ReferringPhysicianName": "DEMO^REFERRER",
    "StudyDate": "20240102",
    "StudyTime": "101500",
    "StudyID": "DEMO1",
}
"""Fake identifying attributes written into every synthetic DICOM file."""


@dataclass(frozen=True)
class LesionLocation:
    """Where the synthetic nodule is: voxel ``(col, row, slice)`` of the geometry-sorted
    volume, patient millimetres (LPS), radius and value."""

    voxel: tuple[float, float, float]
    mm: tuple[float, float, float]
    radius_mm: float
    hu: int


def _spacing(size: int) -> float:
    return FIELD_OF_VIEW_MM / size


def _origin(size: int, slices: int) -> np.ndarray:
    """Patient position of voxel (0, 0, 0): the field of view is centred on x = y = 0."""
    half = FIELD_OF_VIEW_MM / 2 - _spacing(size) / 2
    return np.array([-half, -half, -SLICE_SPACING_MM * (slices // 2) + 0.0])


def ct_affine(*, slices: int = 24, size: int = 128) -> np.ndarray:
    """The LPS affine ``voxel (col, row, slice) → mm`` of the synthetic CT."""
    affine = np.diag([_spacing(size), _spacing(size), SLICE_SPACING_MM, 1.0])
    affine[:3, 3] = _origin(size, slices)
    return affine


def lesion_location(*, slices: int = 24, size: int = 128) -> LesionLocation:
    """The nodule: in the patient's right lung (negative x in LPS), posterior of centre, on
    the middle slice."""
    mm = np.array([-70.0, 10.0, _origin(size, slices)[2] + SLICE_SPACING_MM * (slices // 2)])
    voxel = np.linalg.solve(ct_affine(slices=slices, size=size), np.append(mm, 1.0))[:3]
    return LesionLocation(
        tuple(float(v) for v in voxel),  # type: ignore[arg-type]
        tuple(float(v) for v in mm),  # type: ignore[arg-type]
        LESION_RADIUS_MM,
        LESION_HU,
    )


def ct_phantom(
    *, slices: int = 24, size: int = 128, seed: int = 0, lesion: bool = True
) -> np.ndarray:
    """Hounsfield units shaped ``(slices, rows, cols)`` (int16)."""
    affine = ct_affine(slices=slices, size=size)
    cols = np.arange(size)
    x = affine[0, 0] * cols + affine[0, 3]
    y = affine[1, 1] * cols + affine[1, 3]
    z = affine[2, 2] * np.arange(slices) + affine[2, 3]
    zz, yy, xx = np.meshgrid(z, y, x, indexing="ij")
    hu = np.full(zz.shape, -1000.0)
    hu[(xx / 150) ** 2 + (yy / 110) ** 2 <= 1] = 40.0
    for side in (-1, 1):
        hu[((xx - side * 70) / 50) ** 2 + ((yy + 5) / 70) ** 2 <= 1] = -800.0
    hu[(xx**2 + (yy - 80) ** 2) <= 18**2] = 700.0
    if lesion:
        centre = lesion_location(slices=slices, size=size).mm
        inside = (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (zz - centre[2]) ** 2
        hu[inside <= LESION_RADIUS_MM**2] = LESION_HU
    noise = np.asarray(np.random.default_rng(seed).normal(0.0, 8.0, hu.shape))
    body = hu > -1000
    hu[body] += noise[body]
    return np.rint(hu).astype(np.int16)


def _dataset(path: Path, sop_class: Any, modality: str, study_uid: Any, series_uid: Any) -> Any:
    pydicom: Any = require("pydicom", "dicom", "Writing synthetic DICOM")
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = pydicom.uid.generate_uid(entropy_srcs=[study_uid, "frame"])
    ds.Modality = modality
    for keyword, value in FAKE_PATIENT.items():
        setattr(ds, keyword, value)
    ds.SeriesNumber = 1
    ds.Manufacturer = "medlens synthetic"
    ds.BurnedInAnnotation = "NO"
    return ds


def _pixels(ds: Dataset, stored: np.ndarray, photometric: str = "MONOCHROME2") -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = (int(s) for s in stored.shape)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.ascontiguousarray(stored, dtype="<u2").tobytes()


def write_ct_series(
    folder: str | os.PathLike[str],
    *,
    slices: int = 24,
    size: int = 128,
    seed: int = 0,
    lesion: bool = True,
) -> Path:
    """Write the chest CT phantom as a DICOM series (one file per slice, shuffled
    extension-less names) into ``folder`` and return it. Stored values are unsigned with
    ``RescaleIntercept`` −1024; the header windows are soft tissue (40/400) then lung
    (−600/1500). The nodule is at ``lesion_location(slices=..., size=...)``."""
    from pydicom.uid import CTImageStorage, generate_uid

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    hu = ct_phantom(slices=slices, size=size, seed=seed, lesion=lesion)
    affine = ct_affine(slices=slices, size=size)
    study_uid, series_uid = generate_uid(), generate_uid()
    names = np.random.default_rng(seed + 1).permutation(slices)
    spacing = _spacing(size)
    for k in range(slices):
        path = out / f"IM{int(names[k]) * 7919 % 100000:05d}"
        ds = _dataset(path, CTImageStorage, "CT", study_uid, series_uid)
        ds.BodyPartExamined = "CHEST"
        ds.StudyDescription = "CT CHEST (synthetic phantom)"
        ds.SeriesDescription = "medlens phantom axial"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.KVP = 120
        ds.InstanceNumber = k + 1
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [float(v) for v in affine[:3, :3] @ [0, 0, k] + affine[:3, 3]]
        ds.SliceLocation = ds.ImagePositionPatient[2]
        ds.PixelSpacing = [spacing, spacing]
        ds.SliceThickness = SLICE_SPACING_MM
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.WindowCenter, ds.WindowWidth = [40, -600], [400, 1500]
        ds.WindowCenterWidthExplanation = ["SOFT TISSUE", "LUNG"]
        _pixels(ds, np.clip(hu[k].astype(np.int32) + 1024, 0, 4095))
        ds.save_as(path, enforce_file_format=True)
    return out


def write_ct_nifti(
    path: str | os.PathLike[str],
    *,
    slices: int = 24,
    size: int = 64,
    seed: int = 0,
    lesion: bool = True,
) -> Path:
    """Write the phantom as NIfTI-1 in the RAS+ array order most converters produce
    (``i`` toward the patient's right, ``j`` toward anterior), with the real affine, so a
    reader has to reorient it. Values are HU (int16)."""
    nib: Any = require("nibabel", "nifti", "Writing synthetic NIfTI")
    hu = ct_phantom(slices=slices, size=size, seed=seed, lesion=lesion)
    data = np.transpose(hu, (2, 1, 0))[::-1, ::-1, :]  # (i=col, j=row, k) flipped to R, A
    lps = ct_affine(slices=slices, size=size)
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[0, 3], flip[1, 3] = size - 1, size - 1  # new index i' = size-1-i
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps @ flip
    image = nib.Nifti1Image(np.ascontiguousarray(data), ras)
    image.header.set_xyzt_units("mm")
    image.header["descrip"] = b"medlens synthetic CT phantom (HU)"
    out = Path(path)
    nib.save(image, str(out))
    return out


def write_xray_dicom(
    path: str | os.PathLike[str],
    *,
    monochrome1: bool = False,
    voi_lut: bool = False,
    size: int = 256,
) -> Path:
    """Write a synthetic chest radiograph (DX, PA view, 12-bit): dark lung fields, bright
    spine and mediastinum. ``monochrome1`` stores inverted values with
    ``PhotometricInterpretation`` MONOCHROME1 (as many CR/DX detectors do), so its display
    looks the same as the MONOCHROME2 file. The VOI is a window (2048/4096) or, with
    ``voi_lut``, a linear VOI LUT table (PS3.3 C.11.2) over the same range."""
    from pydicom.dataset import Dataset
    from pydicom.uid import DigitalXRayImageStorageForPresentation, generate_uid

    out = Path(path)
    ds = _dataset(out, DigitalXRayImageStorageForPresentation, "DX", generate_uid(),
                  generate_uid())  # fmt: skip
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.StudyDescription = "XR CHEST PA (synthetic)"
    ds.ImagerPixelSpacing = [350.0 / size, 350.0 / size]
    ds.PresentationLUTShape = "INVERSE" if monochrome1 else "IDENTITY"
    y, x = np.mgrid[0:size, 0:size] / size
    signal = np.full((size, size), 3000.0)  # soft tissue
    for cx in (0.3, 0.7):
        signal[((x - cx) / 0.17) ** 2 + ((y - 0.5) / 0.32) ** 2 <= 1] = 900.0  # lungs
    signal[np.abs(x - 0.5) < 0.04] = 3900.0  # spine
    signal[:, :8] = signal[:, -8:] = 100.0  # collimation edges (air)
    stored = np.rint(4095 - signal if monochrome1 else signal).astype(np.uint16)
    _pixels(ds, stored, "MONOCHROME1" if monochrome1 else "MONOCHROME2")
    if voi_lut:
        item = Dataset()
        item.LUTDescriptor = [4096, 0, 12]
        item.add_new(0x00283006, "US", [int(v) for v in np.arange(4096)])  # LUTData
        item.LUTExplanation = "LINEAR"
        ds.VOILUTSequence = [item]
    else:
        ds.WindowCenter, ds.WindowWidth = 2048, 4096
    ds.save_as(out, enforce_file_format=True)
    return out
