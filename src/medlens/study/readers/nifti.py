"""NIfTI-1/2 volumes (.nii, .nii.gz) through nibabel.

nibabel's affine maps voxel ``(i, j, k)`` to RAS+ millimetres (NIfTI ``sform``/``qform``).
medlens reorients the array so that ``i`` grows toward patient Left, ``j`` toward Posterior
and ``k`` toward Superior (the closest axis-aligned LPS orientation, as a DICOM axial series
is usually stored), converts the affine to DICOM's LPS frame (negate x and y) and stores the
pixels as ``(slice=k, row=j, col=i)``. A 4D file keeps one time point (``volume=``, 0 by
default); ``metadata["num_volumes"]`` says how many there were.
"""

from __future__ import annotations

import gzip
import io
import struct
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from medlens.errors import ConfigError, CorruptFileError, require
from medlens.study.readers import READERS, Source, check_pixel_count, head
from medlens.types import Study

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _nifti_header(data: bytes) -> bool:
    """NIfTI-1 starts with sizeof_hdr 348 and NIfTI-2 with 540 (either byte order)."""
    if len(data) < 4:
        return False
    return any(struct.unpack(f"{order}i", data[:4])[0] in (348, 540) for order in "<>")


class NiftiReader:
    """Reads NIfTI-1 and NIfTI-2 files, plain or gzipped."""

    name: ClassVar[str] = "nifti"
    formats: ClassVar[tuple[str, ...]] = ("nii", "nii.gz")

    def can_read(self, source: Source) -> bool:
        if isinstance(source, Path):
            if source.is_dir():
                return False
            if source.name.lower().endswith((".nii", ".nii.gz")):
                return True
        data = head(source, 352)
        if data.startswith(b"\x1f\x8b"):
            if isinstance(source, Path):
                return False  # a gzip file with another extension: not ours to guess
            try:
                with gzip.GzipFile(fileobj=io.BytesIO(source)) as handle:
                    data = handle.read(4)
            except (OSError, EOFError):
                return False
        return _nifti_header(data)

    def read(self, source: Source, *, max_pixels: int, volume: int = 0, **options: Any) -> Study:
        nib: Any = require("nibabel", "nifti", "Reading NIfTI")
        ornt: Any = require("nibabel.orientations", "nifti", "Reading NIfTI")
        from nibabel.filebasedimages import ImageFileError

        if options:
            raise ConfigError(
                f"Unknown NIfTI option(s) {sorted(options)}; the NIfTI reader takes volume."
            )
        what = "The NIfTI data" if isinstance(source, bytes) else f"The NIfTI file '{source.name}'"
        try:
            if isinstance(source, bytes):
                raw = gzip.decompress(source) if source.startswith(b"\x1f\x8b") else source
                klass = nib.Nifti2Image if _is_nifti2(raw) else nib.Nifti1Image
                image = klass.from_bytes(raw)
            else:
                image = nib.load(str(source))
        except (OSError, EOFError, ValueError, struct.error, ImageFileError) as exc:
            raise CorruptFileError(
                f"{what} could not be read ({type(exc).__name__}: {exc}). It is truncated or "
                "not NIfTI; re-export it."
            ) from exc
        shape = tuple(int(s) for s in image.shape)
        if len(shape) < 3:
            shape = shape + (1,) * (3 - len(shape))
        num_volumes = int(np.prod(shape[3:])) if len(shape) > 3 else 1
        check_pixel_count(int(np.prod(shape[:3])), max_pixels, what)
        if not 0 <= volume < num_volumes:
            raise ConfigError(
                f"--volume {volume} is out of range: {what} holds {num_volumes} volume(s) "
                f"(0..{num_volumes - 1})."
            )
        try:
            proxy = image.dataobj
            data = np.asanyarray(proxy[..., volume] if len(image.shape) == 4 else proxy).reshape(
                shape[:3]
            )
        except (OSError, EOFError, ValueError) as exc:
            raise CorruptFileError(f"{what}: the voxel data could not be read ({exc}).") from exc
        current = ornt.io_orientation(image.affine)
        target = ornt.axcodes2ornt(("L", "P", "S"))
        transform = ornt.ornt_transform(current, target)
        data = ornt.apply_orientation(data, transform)
        affine_ras = image.affine @ ornt.inv_ornt_aff(transform, shape[:3])
        affine = RAS_TO_LPS @ affine_ras
        pixels = np.ascontiguousarray(np.transpose(data, (2, 1, 0)))
        if not pixels.dtype.isnative:
            pixels = pixels.astype(pixels.dtype.newbyteorder("="))
        if pixels.dtype.kind == "f":
            pixels = pixels.astype(np.float32)
        zooms = np.linalg.norm(affine[:3, :3], axis=0)
        header = image.header
        description = header.get("descrip")
        metadata: dict[str, Any] = {"num_volumes": num_volumes}
        if num_volumes > 1:
            metadata["volume"] = volume
        if description is not None and bytes(np.asarray(description)).strip(b"\x00 "):
            metadata["description"] = (
                bytes(np.asarray(description)).strip(b"\x00 ").decode("latin-1")
            )
        return Study(
            pixels=pixels,
            modality="OT",
            photometric="MONOCHROME2",
            pixel_spacing=(float(zooms[1]), float(zooms[0])),
            slice_thickness=float(zooms[2]),
            slice_spacing=float(zooms[2]),
            affine=affine,
            source_format="nifti",
            metadata=metadata,
        )


def _is_nifti2(raw: bytes) -> bool:
    return any(struct.unpack(f"{order}i", raw[:4])[0] == 540 for order in "<>")


READER = NiftiReader()
READERS.register("nifti", READER)
