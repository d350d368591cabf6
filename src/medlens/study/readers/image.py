"""PNG, JPEG and TIFF (8/16-bit, grey or colour) through Pillow.

The pixel count is checked from the header, which ``Image.open`` reads lazily, before any
decoding; Pillow's own ``DecompressionBombError`` (raised by ``Image.open`` above twice
``Image.MAX_IMAGE_PIXELS``, about 179 million pixels by default) is turned into
``ImageTooLargeError`` too, so for these formats the lower of the two limits applies.
Colour images whose three channels are equal (X-rays saved as RGB) become grey, so that
windowing and MONOCHROME handling apply to them.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from medlens.errors import ConfigError, CorruptFileError, ImageTooLargeError
from medlens.study.readers import READERS, Source, check_pixel_count, head
from medlens.types import Study

if TYPE_CHECKING:
    from PIL import Image as PILImage

MAGIC = {
    b"\x89PNG\r\n\x1a\n": "png",
    b"\xff\xd8\xff": "jpeg",
    b"II*\x00": "tiff",
    b"MM\x00*": "tiff",
}
EXTENSIONS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".tif": "tiff", ".tiff": "tiff"}
_GREY_MODES = {
    "1": "L",
    "L": "L",
    "LA": "L",
    "I;16": None,
    "I;16L": None,
    "I;16B": None,
    "I": None,
    "F": None,
}
"""Pillow modes kept grey; ``None`` keeps the mode as it is (16-bit, 32-bit int, float)."""


def sniff(data: bytes) -> str | None:
    """The image format named by the magic bytes at the start of ``data``, if any."""
    for magic, name in MAGIC.items():
        if data.startswith(magic):
            return name
    return None


def _frame_array(frame: PILImage.Image) -> np.ndarray:
    mode = frame.mode
    if mode in _GREY_MODES:
        target = _GREY_MODES[mode]
        return np.asarray(frame.convert(target) if target and target != mode else frame)
    rgb = np.asarray(frame.convert("RGB"))
    return rgb


class ImageReader:
    """Reads PNG, JPEG and TIFF files (multi-page TIFF becomes slices)."""

    name: ClassVar[str] = "image"
    formats: ClassVar[tuple[str, ...]] = ("png", "jpeg", "jpg", "tiff", "tif")

    def can_read(self, source: Source) -> bool:
        if sniff(head(source, 8)) is not None:
            return True
        return isinstance(source, Path) and source.suffix.lower() in EXTENSIONS

    def read(self, source: Source, *, max_pixels: int, **options: Any) -> Study:
        from PIL import Image, UnidentifiedImageError

        if options:
            raise ConfigError(
                f"Unknown image option(s) {sorted(options)}: PNG/JPEG/TIFF take none "
                "(--series/series_uid and --volume/volume are for DICOM and NIfTI)."
            )
        what = "The image" if isinstance(source, bytes) else f"The image '{source.name}'"
        stream = io.BytesIO(source) if isinstance(source, bytes) else source
        try:
            with Image.open(stream) as image:
                width, height = image.size
                frames = int(getattr(image, "n_frames", 1))
                check_pixel_count(width * height * frames, max_pixels, what)
                fmt = {"mpo": "jpeg"}.get(
                    (image.format or "").lower(), (image.format or "").lower()
                )
                arrays = []
                for index in range(frames):
                    image.seek(index)
                    arrays.append(_frame_array(image))
        except Image.DecompressionBombError as exc:
            raise ImageTooLargeError(
                f"{what} is larger than Pillow's decompression-bomb limit ({exc}). If it is "
                "genuine, convert it to tiles or a pyramidal format first."
            ) from exc
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
            raise CorruptFileError(
                f"{what} could not be decoded ({type(exc).__name__}: {exc}). The file is "
                "truncated or not really an image; re-export it from its source."
            ) from exc
        if len({a.shape for a in arrays}) != 1:
            raise CorruptFileError(
                f"{what} has pages of different sizes; medlens reads multi-page TIFF only as "
                "slices of one size. Split the pages into separate files."
            )
        pixels = np.stack(arrays)
        if (
            pixels.ndim == 4
            and np.array_equal(pixels[..., 0], pixels[..., 1])
            and np.array_equal(pixels[..., 0], pixels[..., 2])
        ):
            pixels = np.ascontiguousarray(pixels[..., 0])
        return Study(
            pixels=pixels,
            modality="OT",
            photometric="RGB" if pixels.ndim == 4 else "MONOCHROME2",
            source_format=fmt or "image",
            metadata={"image_format": fmt, "bits_stored": int(pixels.dtype.itemsize * 8)},
        )


READER = ImageReader()
READERS.register("image", READER)
