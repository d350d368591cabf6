"""DICOM files (single- and multi-frame) and series folders, through pydicom.

Pixel values go through the Modality LUT (rescale slope/intercept, PS3.3 C.11.1) per slice,
so CT arrives in Hounsfield units; colour (YBR, palette) arrives as RGB. Windowing is left to
``medlens.study.display``.

Geometry (PS3.3 C.7.6.2): ``ImageOrientationPatient`` holds the row direction X (the way
the column index grows) and the column direction Y; ``PixelSpacing`` is (row spacing,
column spacing); the slice normal is X × Y. A series is sorted by each slice's
``ImagePositionPatient`` projected on that normal, falling back to ``InstanceNumber``, and
never by file name. The affine is ``[X·Δcol, Y·Δrow, (P_last − P_first)/(n − 1), P_first]``,
which stays right for tilted gantries.

4D series (the same positions acquired repeatedly, e.g. fMRI): the files are grouped into
time points by ``TemporalPositionIdentifier``, else ``AcquisitionNumber``, else their
``InstanceNumber`` order at each position; ``volume=`` picks one (default 0, the first), and
``metadata["num_volumes"]`` says how many there are.

In a folder, files that are not DICOM (NRRD, README) and DICOM objects that are not images
(SEG, RT structures, SR, presentation states) are skipped and counted in
``metadata["skipped"]``.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np

from medlens.errors import (
    ConfigError,
    CorruptFileError,
    MissingDependencyError,
    NoPixelDataError,
    StudyError,
    require,
)
from medlens.study.readers import READERS, Source, check_pixel_count, head
from medlens.types import Study, Window

if TYPE_CHECKING:
    from pydicom import Dataset

Item = TypeVar("Item")
"""What identifies one instance while a series is assembled: a file path, or the dataset."""

EXTENSIONS = (".dcm", ".dicom", ".dic", ".ima")
PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
"""PixelData, FloatPixelData, DoubleFloatPixelData."""
NON_IMAGE_SOP_PREFIXES = (
    "1.2.840.10008.5.1.4.1.1.66",  # raw data, spatial registration, fiducials, segmentation
    "1.2.840.10008.5.1.4.1.1.481.",  # RT structures, plans, treatment records (not RT dose)
    "1.2.840.10008.5.1.4.1.1.88.",  # structured reports, key objects
    "1.2.840.10008.5.1.4.1.1.11.",  # presentation states
    "1.2.840.10008.5.1.4.1.1.9.",  # waveforms
    "1.2.840.10008.5.1.4.1.1.104.",  # encapsulated PDF / CDA
)
RT_DOSE = "1.2.840.10008.5.1.4.1.1.481.2"
SORT_TAGS = [
    "SOPClassUID", "SeriesInstanceUID", "SeriesDescription", "Modality", "Rows", "Columns",
    "NumberOfFrames", "ImageOrientationPatient", "ImagePositionPatient", "InstanceNumber",
    "TemporalPositionIdentifier", "AcquisitionNumber", "TriggerTime",
]  # fmt: skip
"""What a first pass over a folder reads (about twice as fast as whole headers); the files
of the chosen volume are then read in full."""
METADATA_TAGS = (
    "StudyDescription", "SeriesDescription", "BodyPartExamined", "ImageType", "Manufacturer",
    "ManufacturerModelName", "KVP", "XRayTubeCurrent", "ConvolutionKernel",
    "ContrastBolusAgent", "MagneticFieldStrength", "RepetitionTime", "EchoTime", "FlipAngle",
    "ScanningSequence", "ViewPosition", "ImageLaterality", "Laterality", "PatientPosition",
    "BitsStored", "PhotometricInterpretation",
)  # fmt: skip
"""Clinical, non-identifying attributes copied into ``Study.metadata`` (no names, ids,
dates or institutions: those stay in ``headers`` for medlens.privacy to handle)."""


def _pydicom() -> Any:
    return require("pydicom", "dicom", "Reading DICOM")


def is_dicom_bytes(data: bytes) -> bool:
    """DICOM Part 10 files carry ``DICM`` after a 128-byte preamble (PS3.10 7.1)."""
    return data[128:132] == b"DICM"


def _read_errors() -> tuple[type[BaseException], ...]:
    from pydicom.errors import InvalidDicomError

    return (InvalidDicomError, EOFError, ValueError, OSError, struct.error, TypeError, KeyError)


def _name(source: Source) -> str:
    return "The DICOM data" if isinstance(source, bytes) else f"The DICOM file '{source.name}'"


def read_dataset(source: Source, *, stop_before_pixels: bool = False) -> Dataset:
    """Parse one DICOM file (path or bytes); files without the preamble are tried with
    ``force`` and accepted only if they look like an image object."""
    pydicom = _pydicom()
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    force = not is_dicom_bytes(head(source, 132))
    try:
        ds = pydicom.dcmread(stream, force=force, stop_before_pixels=stop_before_pixels)
    except _read_errors() as exc:
        raise CorruptFileError(
            f"{_name(source)} could not be parsed ({type(exc).__name__}: {exc}). It is "
            "truncated or not DICOM; re-export it from the PACS or scanner."
        ) from exc
    if force and "SOPClassUID" not in ds and "Rows" not in ds:
        raise CorruptFileError(
            f"{_name(source)} is not DICOM: it has no 'DICM' marker and no DICOM image "
            "attributes (it may be a text or other file renamed to .dcm)."
        )
    return ds  # type: ignore[no-any-return]


def _floats(value: Any) -> list[float]:
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return [float(v) for v in value]
    return [float(value)]


def _first(ds: Dataset, *path: str) -> Any:
    """Follow ``Sequence[0].Sequence[0]...Attribute`` and return None where it breaks."""
    node: Any = ds
    for part in path[:-1]:
        seq = node.get(part)
        if not seq:
            return None
        node = seq[0]
    return node.get(path[-1])


def _orientation(ds: Dataset) -> list[float]:
    return _floats(ds.get("ImageOrientationPatient")) or _floats(
        _first(ds, "SharedFunctionalGroupsSequence", "PlaneOrientationSequence",
               "ImageOrientationPatient")
    )  # fmt: skip


def _pixel_spacing(ds: Dataset) -> tuple[float, float] | None:
    """(row, column) spacing in mm: PixelSpacing, the enhanced-object functional group, or
    for projection radiographs ImagerPixelSpacing (at the detector, PS3.3 10.7.1.3)."""
    values = (
        _floats(ds.get("PixelSpacing"))
        or _floats(_first(ds, "SharedFunctionalGroupsSequence", "PixelMeasuresSequence",
                          "PixelSpacing"))
        or _floats(ds.get("ImagerPixelSpacing"))
    )  # fmt: skip
    return (values[0], values[1]) if len(values) == 2 and min(values) > 0 else None


def _windows(ds: Dataset) -> tuple[Window, ...]:
    centers = _floats(ds.get("WindowCenter"))
    widths = _floats(ds.get("WindowWidth"))
    names = ds.get("WindowCenterWidthExplanation") or []
    names = [names] if isinstance(names, str) else list(names)
    return tuple(
        Window(center=c, width=w, name=str(names[i]) if i < len(names) else "")
        for i, (c, w) in enumerate(zip(centers, widths))
        if w > 0
    )


def _voi_lut(ds: Dataset) -> np.ndarray | None:
    """The first VOI LUT (PS3.3 C.11.2) as an (n, 2) array of (input value, output in 0..1):
    the descriptor gives the first input value and the output bit depth."""
    seq = ds.get("VOILUTSequence")
    if not seq:
        return None
    item = seq[0]
    descriptor = [int(v) for v in item.LUTDescriptor]
    count = descriptor[0] or 65536
    bits = descriptor[2]
    data = item.LUTData
    if isinstance(data, bytes):
        table = np.frombuffer(data, dtype="<u2" if bits > 8 else "u1").astype(np.float64)
    else:
        table = np.asarray(_floats(data), dtype=np.float64)
    table = table[:count]
    inputs = descriptor[1] + np.arange(table.size, dtype=np.float64)
    return np.stack([inputs, table / float(2**bits - 1)], axis=1)


def _modality_values(ds: Dataset, pixels: np.ndarray) -> np.ndarray:
    """Apply the Modality LUT (rescale slope/intercept or a LUT); keep integers integral."""
    from pydicom.pixels.processing import apply_modality_lut

    values = apply_modality_lut(pixels, ds)
    shared = _first(ds, "SharedFunctionalGroupsSequence", "PixelValueTransformationSequence",
                    "RescaleSlope")  # fmt: skip
    if "RescaleSlope" not in ds and shared is not None:  # enhanced objects (PS3.3 C.7.6.16.2.9)
        intercept = _first(ds, "SharedFunctionalGroupsSequence",
                           "PixelValueTransformationSequence", "RescaleIntercept")  # fmt: skip
        values = pixels * float(shared) + float(intercept or 0.0)
    if values.dtype.kind == "f":
        rounded: np.ndarray = np.rint(values)
        if np.array_equal(rounded, values) and np.abs(values).max(initial=0) < 2**31:
            small = np.abs(values).max(initial=0) < 2**15
            return rounded.astype(np.int16 if small else np.int32)
        return values.astype(np.float32)
    return values


def _decode(ds: Dataset, what: str) -> np.ndarray:
    """Pixel data as an array, colour converted to RGB; decoding failures explained."""
    if not any(tag in ds for tag in PIXEL_TAGS):
        sop = ds.get("SOPClassUID") or ds.get("file_meta", {}).get("MediaStorageSOPClassUID")
        kind = getattr(sop, "name", None) or str(sop or "unknown")
        if sop and "Image Storage" in kind and str(sop) != RT_DOSE:
            raise CorruptFileError(
                f"{what} is a '{kind}' object without its Pixel Data: it was cut short or "
                "written without its pixels (a header-only copy). Copy or export it again "
                "with its pixel data."
            )
        raise NoPixelDataError(
            f"{what} is a '{kind}' object and holds no image (no Pixel Data). Open the image "
            "series it refers to instead."
        )
    try:
        pixels = ds.pixel_array
    except NotImplementedError as exc:
        raise MissingDependencyError(
            f"{what} uses transfer syntax '{ds.file_meta.TransferSyntaxUID.name}', which no "
            "installed decoder handles. Install the decoders: pip install 'medlens[dicom]'."
        ) from exc
    except (ValueError, RuntimeError, EOFError, struct.error, AttributeError) as exc:
        raise CorruptFileError(
            f"{what}: the pixel data could not be decoded ({exc}). The file is truncated, its "
            "compressed stream is damaged, or it uses a codec variant the installed decoders "
            "do not support; re-export it uncompressed."
        ) from exc
    if ds.get("PhotometricInterpretation") == "PALETTE COLOR":
        from pydicom.pixels.processing import apply_color_lut

        pixels = apply_color_lut(pixels, ds)
        bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
        if bits > 8:  # 16-bit palette entries: keep the top 8 bits for display
            pixels = (pixels >> (bits - 8)).astype(np.uint8)
    return native(pixels)


def native(array: np.ndarray) -> np.ndarray:
    """The array in the machine's byte order (big-endian files decode to '>i2')."""
    return array if array.dtype.isnative else array.astype(array.dtype.newbyteorder("="))


def _is_color(ds: Dataset) -> bool:
    return int(ds.get("SamplesPerPixel") or 1) == 3 or (
        ds.get("PhotometricInterpretation") == "PALETTE COLOR"
    )


def _header(ds: Dataset) -> Dataset:
    for tag in PIXEL_TAGS:
        if tag in ds:
            del ds[tag]
    return ds


def _common(ds: Dataset) -> dict[str, Any]:
    """Study fields every DICOM source shares."""
    body = str(ds.get("BodyPartExamined") or "").strip() or None
    burned = str(ds.get("BurnedInAnnotation") or "").upper()
    thickness = _floats(ds.get("SliceThickness")) or _floats(
        _first(ds, "SharedFunctionalGroupsSequence", "PixelMeasuresSequence", "SliceThickness")
    )
    photometric = str(ds.get("PhotometricInterpretation") or "MONOCHROME2")
    if _is_color(ds):
        photometric = "RGB"
    metadata: dict[str, Any] = {}
    for keyword in METADATA_TAGS:
        value = ds.get(keyword)
        if value not in (None, ""):
            metadata[keyword] = str(value) if not isinstance(value, (int, float)) else value
    sop = ds.get("SOPClassUID")
    if sop:
        metadata["SOPClass"] = getattr(sop, "name", str(sop))
    return {
        "modality": str(ds.get("Modality") or "OT"),
        "photometric": photometric,
        "body_part": body,
        "pixel_spacing": _pixel_spacing(ds),
        "slice_thickness": thickness[0] if thickness and thickness[0] > 0 else None,
        "windows": _windows(ds),
        "voi_lut": _voi_lut(ds),
        "burned_in_annotation": {"YES": True, "NO": False}.get(burned),
        "metadata": metadata,
    }


def _affine(
    orientation: list[float],
    spacing: tuple[float, float] | None,
    first: np.ndarray,
    step: np.ndarray,
) -> np.ndarray:
    x, y = np.asarray(orientation[:3]), np.asarray(orientation[3:])
    affine = np.eye(4)
    affine[:3, 0] = x * spacing[1] if spacing else x
    affine[:3, 1] = y * spacing[0] if spacing else y
    affine[:3, 2] = step
    affine[:3, 3] = first
    return affine


def _normal(orientation: list[float]) -> np.ndarray:
    return np.cross(np.asarray(orientation[:3]), np.asarray(orientation[3:]))


def _multiframe_geometry(
    ds: Dataset, frames: int
) -> tuple[np.ndarray | None, float | None, np.ndarray | None]:
    """Affine of a multi-frame object: enhanced per-frame positions (PS3.3 C.7.6.16), or an
    RT dose / NM grid (``GridFrameOffsetVector`` along the normal); None for cine. The third
    value is the frame order along the normal (enhanced objects need not store frames in
    spatial order)."""
    orientation = _orientation(ds)
    spacing = _pixel_spacing(ds)
    if len(orientation) != 6:
        return None, None, None
    normal = _normal(orientation)
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    positions: list[np.ndarray] = []
    if per_frame and len(per_frame) == frames:
        for item in per_frame:
            pos = _floats(_first(item, "PlanePositionSequence", "ImagePositionPatient"))
            if len(pos) != 3:
                return None, None, None
            positions.append(np.asarray(pos))
    elif "GridFrameOffsetVector" in ds and len(_floats(ds.get("ImagePositionPatient"))) == 3:
        origin = np.asarray(_floats(ds.ImagePositionPatient))
        offsets = _floats(ds.GridFrameOffsetVector)
        if len(offsets) != frames:
            return None, None, None
        positions = [origin + normal * (o - offsets[0]) for o in offsets]
    else:
        return None, None, None
    order = np.argsort([float(np.dot(p, normal)) for p in positions], kind="stable")
    positions = [positions[i] for i in order]
    if frames == 1:
        step = normal * (_floats(ds.get("SliceThickness")) or [1.0])[0]
    else:
        step = (positions[-1] - positions[0]) / (frames - 1)
    affine = _affine(orientation, spacing, positions[0], step)
    return affine, float(np.linalg.norm(step)), order


class DicomReader:
    """Reads one DICOM file, or a folder holding one DICOM series."""

    name: ClassVar[str] = "dicom"
    formats: ClassVar[tuple[str, ...]] = ("dcm", "dicom-series")

    def can_read(self, source: Source) -> bool:
        if isinstance(source, bytes):
            return is_dicom_bytes(source[:132])
        if source.is_dir():
            return True
        return is_dicom_bytes(head(source, 132)) or source.suffix.lower() in EXTENSIONS

    def read(
        self,
        source: Source,
        *,
        max_pixels: int,
        series_uid: str | None = None,
        volume: int = 0,
        **options: Any,
    ) -> Study:
        if options:
            raise ConfigError(
                f"Unknown DICOM option(s) {sorted(options)}; the DICOM reader takes "
                "series_uid and volume."
            )
        if isinstance(source, Path) and source.is_dir():
            return read_series(source, max_pixels=max_pixels, series_uid=series_uid,
                               volume=volume)  # fmt: skip
        return read_file(source, max_pixels=max_pixels)


def read_file(source: Source, *, max_pixels: int) -> Study:
    """One DICOM file; a multi-frame object's frames become slices."""
    return study_from_dataset(read_dataset(source), what=_name(source), max_pixels=max_pixels)


def study_from_dataset(ds: Dataset, *, what: str, max_pixels: int) -> Study:
    """One parsed DICOM image object (a file read, or an instance a PACS sent); ``what``
    names it in errors. Objects whose pixels are not an image to look at (a segmentation's
    label masks, RT structures, waveforms) are refused rather than shown as a near-black
    picture."""
    refuse_non_image(ds, what)
    frames = int(ds.get("NumberOfFrames") or 1)
    rows, cols = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    if any(tag in ds for tag in PIXEL_TAGS):
        check_pixel_count(rows * cols * frames, max_pixels, what)
    pixels = _decode(ds, what)
    color = _is_color(ds)
    if pixels.ndim == (3 if color else 2):
        pixels = pixels[np.newaxis]
    if not color:
        pixels = _modality_values(ds, pixels)
    fields = _common(ds)
    if frames > 1:
        affine, slice_spacing, order = _multiframe_geometry(ds, frames)
        if order is not None and np.any(order != np.arange(frames)):
            pixels = np.ascontiguousarray(pixels[order])
            fields["metadata"]["frames_reordered"] = True
    else:
        orientation = _orientation(ds)
        position = _floats(ds.get("ImagePositionPatient"))
        affine, slice_spacing = None, None
        if len(orientation) == 6 and len(position) == 3:
            step = (
                _normal(orientation)
                * (_floats(ds.get("SpacingBetweenSlices")) or [fields["slice_thickness"] or 1.0])[0]
            )
            affine = _affine(orientation, fields["pixel_spacing"], np.asarray(position), step)
    fields["metadata"]["num_frames"] = frames
    return Study(
        pixels=pixels,
        affine=affine,
        slice_spacing=slice_spacing,
        source_format="dicom",
        headers=(_header(ds),),
        **fields,
    )


def _files(folder: Path) -> Iterable[Path]:
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if not name.startswith("."):
                yield Path(root) / name


def _is_image_object(ds: Dataset) -> bool:
    sop = str(ds.get("SOPClassUID") or "")
    if sop == RT_DOSE:
        return True
    return "Rows" in ds and not sop.startswith(NON_IMAGE_SOP_PREFIXES)


def refuse_non_image(ds: Dataset, what: str) -> None:
    """A ``NoPixelDataError`` for DICOM objects that are not images although some carry
    pixel data (PS3.3 A.51 Segmentation: label masks of 0/1 that refer to the image series
    they segment), naming the series to load instead."""
    sop = str(ds.get("SOPClassUID") or "")
    if sop == RT_DOSE or not sop.startswith(NON_IMAGE_SOP_PREFIXES):
        return
    kind = getattr(ds.get("SOPClassUID"), "name", None) or sop
    referenced = _first(ds, "ReferencedSeriesSequence", "SeriesInstanceUID")
    target = f" (series {referenced})" if referenced else ""
    raise NoPixelDataError(
        f"{what} is a '{kind}' object, not an image to show a model"
        + (": its pixels are segmentation masks" if "Segmentation" in kind else "")
        + f". Load the image series it refers to{target} instead."
    )


def series_listing(series: dict[str, list[tuple[Path, Dataset]]], most: int = 8) -> str:
    """A short summary of many series: count by modality, then the largest ``most``."""
    modalities = Counter(str(group[0][1].get("Modality") or "?") for group in series.values())
    largest = sorted(series.items(), key=lambda item: (-len(item[1]), item[0]))
    shown = "; ".join(_describe(uid, group) for uid, group in largest[:most])
    rest = f"; and {len(series) - most} more" if len(series) > most else ""
    by_modality = ", ".join(f"{count} {name}" for name, count in modalities.most_common())
    return f"{len(series)} image series ({by_modality}): {shown}{rest}"


def _temporal_key(ds: Dataset) -> tuple[float, ...]:
    for keyword in ("TemporalPositionIdentifier", "AcquisitionNumber", "TriggerTime"):
        value = ds.get(keyword)
        if value not in (None, ""):
            return (float(value), float(ds.get("InstanceNumber") or 0))
    return (0.0, float(ds.get("InstanceNumber") or 0))


def _describe(uid: str, group: Sequence[tuple[Any, Dataset]]) -> str:
    ds = group[0][1]
    desc = str(ds.get("SeriesDescription") or "").strip()
    name = uid or "(no SeriesInstanceUID)"
    return f"{name} ({ds.get('Modality', '?')}, {len(group)} files{', ' + desc if desc else ''})"


def _order_slices(
    items: list[tuple[Item, Dataset]], volume: int
) -> tuple[list[tuple[Item, Dataset]], dict[str, Any]]:
    """Sort by position on the slice normal (InstanceNumber when geometry is missing) and
    pick one time point of a 4D series."""
    notes: dict[str, Any] = {}
    orientations = [_orientation(ds) for _, ds in items]
    positions = [_floats(ds.get("ImagePositionPatient")) for _, ds in items]
    geometric = all(len(o) == 6 for o in orientations) and all(len(p) == 3 for p in positions)
    if geometric and not np.allclose(orientations, orientations[0], atol=1e-3):
        raise StudyError(
            "The series mixes slice orientations (e.g. a localizer with the axial slices), so "
            "it is not one volume. Move the files of one orientation into their own folder."
        )
    if geometric:
        normal = _normal(orientations[0])
        keys = [round(float(np.dot(p, normal)), 2) for p in positions]
        notes["sorted_by"] = "ImagePositionPatient"
    else:
        if any("InstanceNumber" not in ds for _, ds in items):
            raise StudyError(
                "The series has neither slice positions (ImagePositionPatient) nor "
                "InstanceNumber, so its slice order is unknown; medlens never orders slices "
                "by file name. Load the files one by one instead."
            )
        keys = [float(ds.InstanceNumber) for _, ds in items]
        notes["sorted_by"] = "InstanceNumber"
    by_position: dict[float, list[tuple[Item, Dataset]]] = defaultdict(list)
    for key, item in zip(keys, items):
        by_position[key].append(item)
    counts = Counter(len(v) for v in by_position.values())
    if len(by_position) == len(items) or not geometric:
        ordered = [item for _, item in sorted(zip(keys, items), key=lambda ki: ki[0])]
        notes["num_volumes"] = 1
        if volume != 0:
            raise ConfigError(
                f"--volume {volume} asked, but the series holds one volume only; leave it out."
            )
        return ordered, notes
    if len(counts) != 1:
        raise StudyError(
            f"The series repeats slice positions unevenly ({dict(counts)} files per "
            "position), so it is neither one volume nor a complete 4D series. Check that "
            "no files are missing."
        )
    (num_volumes,) = counts
    if not 0 <= volume < num_volumes:
        raise ConfigError(
            f"--volume {volume} is out of range: this 4D series holds {num_volumes} volumes "
            f"(0..{num_volumes - 1})."
        )
    ordered = [
        sorted(by_position[key], key=lambda item: _temporal_key(item[1]))[volume]
        for key in sorted(by_position)
    ]
    notes.update(num_volumes=num_volumes, volume=volume)
    return ordered, notes


def read_series(
    folder: Path, *, max_pixels: int, series_uid: str | None = None, volume: int = 0
) -> Study:
    """A folder (searched recursively) holding one DICOM image series."""
    pydicom = _pydicom()
    skipped: Counter[str] = Counter()
    series: dict[str, list[tuple[Path, Dataset]]] = defaultdict(list)
    for path in _files(folder):
        magic = head(path, 132)
        if not is_dicom_bytes(magic) and path.suffix.lower() not in EXTENSIONS:
            skipped["not DICOM"] += 1
            continue
        try:
            with warnings.catch_warnings():  # a first pass: odd files are counted, not shouted
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(
                    path, stop_before_pixels=True, force=True, specific_tags=SORT_TAGS
                )
        except _read_errors():
            skipped["unreadable"] += 1
            continue
        if not _is_image_object(ds):
            sop = ds.get("SOPClassUID")
            skipped[getattr(sop, "name", None) or "no pixel data"] += 1
            continue
        series[str(ds.get("SeriesInstanceUID") or "")].append((path, ds))
    if not series:
        raise StudyError(
            f"The folder '{folder.name}' holds no DICOM images"
            + (f" (skipped: {dict(skipped)})" if skipped else "")
            + ". Point to the folder of one image series."
        )
    if series_uid is not None:
        if series_uid not in series:
            raise ConfigError(
                f"No series '{series_uid}' in the folder '{folder.name}'. It holds "
                f"{series_listing(series)}."
            )
        items = series[series_uid]
    elif len(series) > 1:
        raise StudyError(
            f"The folder '{folder.name}' holds {series_listing(series)}. Pick one with "
            "--series UID (series_uid= in Python) or move it into its own folder."
        )
    else:
        (items,) = series.values()
    return assemble_series(
        items,
        max_pixels=max_pixels,
        volume=volume,
        where=f"The series in '{folder.name}'",
        full=read_dataset,
        name=_name,
        notes={"skipped": dict(skipped)} if skipped else {},
    )


def read_datasets(
    datasets: Sequence[Dataset], *, max_pixels: int, volume: int = 0, where: str
) -> Study:
    """One series already in memory (the instances a PACS sent over WADO-RS): the same
    geometry sort, 4D handling and checks as a folder. Non-image objects are skipped and
    counted as in a folder; ``where`` names the series in errors (never a patient value)."""
    skipped: Counter[str] = Counter()
    items: list[tuple[Dataset, Dataset]] = []
    for ds in datasets:
        if _is_image_object(ds):
            items.append((ds, ds))
        else:
            sop = ds.get("SOPClassUID")
            skipped[getattr(sop, "name", None) or "no pixel data"] += 1
    if not items:
        raise NoPixelDataError(
            f"{where} holds no DICOM images (only {dict(skipped)}). Point to an image series."
        )
    return assemble_series(
        items,
        max_pixels=max_pixels,
        volume=volume,
        where=where,
        full=lambda ds: ds,
        name=lambda ds: f"{where}, instance {ds.get('InstanceNumber', '?')}",
        notes={"skipped": dict(skipped)} if skipped else {},
    )


def assemble_series(
    items: list[tuple[Item, Dataset]],
    *,
    max_pixels: int,
    volume: int,
    where: str,
    full: Callable[[Item], Dataset],
    name: Callable[[Item], str],
    notes: dict[str, Any],
) -> Study:
    """Build the ``Study`` of one series from ``(item, header)`` pairs: ``header`` holds the
    sorting attributes, ``full(item)`` the whole dataset with pixels (read only for the
    chosen volume), ``name(item)`` names it in errors."""
    if len(items) == 1 or any(int(ds.get("NumberOfFrames") or 1) > 1 for _, ds in items):
        if len(items) > 1:
            raise StudyError("The series holds several multi-frame files; load them one by one.")
        item = items[0][0]
        study = study_from_dataset(full(item), what=name(item), max_pixels=max_pixels)
        return _with_notes(study, notes)
    ordered, order_notes = _order_slices(items, volume)
    notes = {**order_notes, **notes}
    rows, cols = int(ordered[0][1].Rows), int(ordered[0][1].Columns)
    check_pixel_count(rows * cols * len(ordered), max_pixels, where)
    slices = []
    headers = []
    for item, _ in ordered:
        ds = full(item)
        headers.append(ds)
        what = name(item)
        pixels = _decode(ds, what)
        if pixels.shape[:2] != (rows, cols):
            raise StudyError(
                f"{what} is {pixels.shape[1]}×{pixels.shape[0]} while the series is "
                f"{cols}×{rows}; a series must have one size. Remove the odd file."
            )
        slices.append(pixels if _is_color(ds) else _modality_values(ds, pixels))
        _header(ds)
    first = headers[0]
    pixels = np.stack(slices)
    if pixels.dtype.kind == "f":
        pixels = pixels.astype(np.float32)
    fields = _common(first)
    affine, slice_spacing = None, None
    orientation = _orientation(first)
    if notes["sorted_by"] == "ImagePositionPatient":
        p0 = np.asarray(_floats(first.ImagePositionPatient))
        p1 = np.asarray(_floats(headers[-1].ImagePositionPatient))
        step = (p1 - p0) / (len(ordered) - 1)
        affine = _affine(orientation, fields["pixel_spacing"], p0, step)
        slice_spacing = float(np.linalg.norm(step))
        gaps = np.diff([np.dot(_floats(ds.ImagePositionPatient), _normal(orientation))
                        for ds in headers])  # fmt: skip
        if gaps.size and np.ptp(gaps) > 0.01 * max(abs(float(np.mean(gaps))), 1e-6):
            notes["irregular_spacing"] = True
    fields["metadata"].update(notes)
    return Study(
        pixels=pixels,
        affine=affine,
        slice_spacing=slice_spacing,
        source_format="dicom-series",
        headers=tuple(headers),
        **fields,
    )


def _with_notes(study: Study, notes: dict[str, Any]) -> Study:
    import dataclasses

    return dataclasses.replace(study, metadata={**study.metadata, **notes})


READER = DicomReader()
READERS.register("dicom", READER)
