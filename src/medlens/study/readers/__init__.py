"""Reader plug-ins: one per family of formats, behind one small protocol.

As MONAI's ``ImageReader`` does (``monai/data/image_reader.py``), each reader says whether it
can read a source (``can_read``, cheap: extension and magic bytes only) and reads it into a
``Study``. The registry holds lazy ``"module:attr"`` targets, so importing medlens does not
import pydicom or nibabel; a reader imports its library inside ``read``.

A source is a ``pathlib.Path`` (a file or, for DICOM, a folder) or the file's bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from medlens.registry import Registry
from medlens.types import Study

Source = Path | bytes


@runtime_checkable
class Reader(Protocol):
    """What every reader provides."""

    name: ClassVar[str]
    formats: ClassVar[tuple[str, ...]]
    """Names ``load_study(format=...)`` accepts for this reader ("dicom", "png", ...)."""

    def can_read(self, source: Source) -> bool:
        """True when ``source`` looks like this reader's format (extension or magic bytes)."""
        ...

    def read(self, source: Source, *, max_pixels: int, **options: Any) -> Study:
        """Read ``source``; raise a ``StudyError`` subclass when it cannot be read."""
        ...


READERS: Registry[Reader] = Registry("reader")
READERS.register("dicom", "medlens.study.readers.dicom:READER")
READERS.register("nifti", "medlens.study.readers.nifti:READER")
READERS.register("image", "medlens.study.readers.image:READER")

ORDER = ("dicom", "nifti", "image")
"""The order in which readers are asked ``can_read``: the formats with magic bytes first."""


def head(source: Source, size: int = 352) -> bytes:
    """The first ``size`` bytes of a file or of a byte string (for magic-number sniffing).
    352 bytes cover a NIfTI-1 header; 132 cover the DICOM preamble and its ``DICM``."""
    if isinstance(source, bytes):
        return source[:size]
    if source.is_dir():
        return b""
    with source.open("rb") as handle:
        return handle.read(size)


def check_pixel_count(count: int, max_pixels: int, what: str) -> None:
    """Refuse images with more than ``max_pixels`` pixels before any decoding (decompression
    bombs: a few bytes of header can claim gigapixels)."""
    from medlens.errors import ImageTooLargeError

    if count > max_pixels:
        raise ImageTooLargeError(
            f"{what} holds {count:,} pixels, above the cap of {max_pixels:,}. The cap protects "
            "against decompression bombs and out-of-memory crashes. If the image is genuine, "
            "raise it with load_study(..., max_pixels=N) or the MEDLENS_MAX_PIXELS variable."
        )
