"""PNG/JPEG/TIFF loading, byte input, the pixel cap and the errors users can cause."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medlens.errors import (
    ConfigError,
    CorruptFileError,
    ImageTooLargeError,
    StudyError,
    UnsupportedFormatError,
)
from medlens.study import DEFAULT_MAX_PIXELS, load_study


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width × height`` with no real pixel data: a few dozen bytes
    that would need gigabytes once decoded (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def _gradient(rows: int = 40, cols: int = 60) -> np.ndarray:
    return (np.arange(rows * cols).reshape(rows, cols) % 251).astype(np.uint8)


def test_grey_png_keeps_values(tmp_path: Path) -> None:
    grey = _gradient()
    Image.fromarray(grey).save(tmp_path / "a.png")
    study = load_study(tmp_path / "a.png")
    assert study.pixels.shape == (1, 40, 60)
    assert study.pixels.dtype == np.uint8
    np.testing.assert_array_equal(study.pixels[0], grey)
    assert (study.source_format, study.photometric, study.affine) == ("png", "MONOCHROME2", None)
    assert study.headers == ()


def test_16_bit_png_keeps_full_range(tmp_path: Path) -> None:
    values = (np.arange(40 * 60).reshape(40, 60) * 27).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "b.png")
    study = load_study(tmp_path / "b.png")
    assert study.pixels.dtype == np.uint16
    np.testing.assert_array_equal(study.pixels[0], values)


def test_rgb_png_stays_colour_and_grey_rgb_becomes_grey(tmp_path: Path) -> None:
    grey = _gradient()
    colour = np.stack([grey, grey[::-1], 255 - grey], axis=-1)
    Image.fromarray(colour).save(tmp_path / "c.png")
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(tmp_path / "g.png")
    study = load_study(tmp_path / "c.png")
    assert study.is_color and study.photometric == "RGB"
    np.testing.assert_array_equal(study.pixels[0], colour)
    collapsed = load_study(tmp_path / "g.png")
    assert not collapsed.is_color
    np.testing.assert_array_equal(collapsed.pixels[0], grey)


def test_jpeg_and_multipage_tiff(tmp_path: Path) -> None:
    grey = _gradient()
    Image.fromarray(grey).save(tmp_path / "d.jpg", quality=95)
    study = load_study(tmp_path / "d.jpg")
    assert study.source_format == "jpeg" and study.pixels.shape == (1, 40, 60)
    assert np.abs(study.pixels[0].astype(int) - grey).mean() < 4  # lossy, but close
    pages = [Image.fromarray(grey), Image.fromarray(255 - grey)]
    pages[0].save(tmp_path / "e.tif", save_all=True, append_images=pages[1:])
    tiff = load_study(tmp_path / "e.tif")
    assert tiff.pixels.shape == (2, 40, 60) and tiff.source_format == "tiff"
    np.testing.assert_array_equal(tiff.pixels[1], 255 - grey)


def test_bytes_are_sniffed(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(_gradient()).save(buffer, format="PNG")
    study = load_study(buffer.getvalue())
    assert study.source_format == "png"
    np.testing.assert_array_equal(study.pixels[0], _gradient())


def test_decompression_bomb_header_is_refused_cheaply() -> None:
    bomb = _png_header_only(50_000, 50_000)
    assert len(bomb) < 100
    with pytest.raises(ImageTooLargeError, match="2,?500,?000,?000 pixels"):
        load_study(bomb)
    # With our cap lifted, Pillow's own bomb guard still holds and is reported the same way.
    with pytest.raises(ImageTooLargeError, match="decompression-bomb"):
        load_study(bomb, max_pixels=10**10)


def test_pixel_cap_from_argument_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Image.fromarray(_gradient()).save(tmp_path / "a.png")  # 2,400 pixels
    assert load_study(tmp_path / "a.png", max_pixels=2_400).num_slices == 1
    with pytest.raises(ImageTooLargeError, match="above the cap of 2,399"):
        load_study(tmp_path / "a.png", max_pixels=2_399)
    monkeypatch.setenv("MEDLENS_MAX_PIXELS", "1000")
    with pytest.raises(ImageTooLargeError, match="MEDLENS_MAX_PIXELS"):
        load_study(tmp_path / "a.png")
    assert DEFAULT_MAX_PIXELS == 300_000_000


def test_truncated_png_is_corrupt(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8)).save(
        buffer, format="PNG"
    )
    (tmp_path / "cut.png").write_bytes(buffer.getvalue()[:200])
    with pytest.raises(CorruptFileError, match="cut.png"):
        load_study(tmp_path / "cut.png")


def test_text_file_named_dcm(tmp_path: Path) -> None:
    (tmp_path / "notes.dcm").write_text("Patient notes, not an image\n" * 20)
    with pytest.raises((CorruptFileError, UnsupportedFormatError), match="not DICOM"):
        load_study(tmp_path / "notes.dcm")


def test_unknown_extension_and_forced_format(tmp_path: Path) -> None:
    (tmp_path / "data.xyz").write_bytes(b"\x00\x01 random bytes" * 10)
    with pytest.raises(UnsupportedFormatError, match="Cannot tell the format"):
        load_study(tmp_path / "data.xyz")
    with pytest.raises(UnsupportedFormatError, match="Known formats"):
        load_study(tmp_path / "data.xyz", format="bmp")
    Image.fromarray(_gradient()).save(tmp_path / "renamed.xyz", format="PNG")
    assert load_study(tmp_path / "renamed.xyz").source_format == "png"  # content wins
    assert load_study(tmp_path / "renamed.xyz", format="png").num_slices == 1


def test_missing_path_and_empty_bytes(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match="No file or folder"):
        load_study(tmp_path / "nowhere.png")
    with pytest.raises(StudyError, match="empty"):
        load_study(b"")


def test_modality_can_be_set_for_formats_without_one(tmp_path: Path) -> None:
    Image.fromarray(_gradient()).save(tmp_path / "cxr.png")
    assert load_study(tmp_path / "cxr.png", modality="dx").modality == "DX"
    with pytest.raises(ConfigError, match="volume"):
        load_study(tmp_path / "cxr.png", volume=1)
