"""Burned-in text: real tesseract OCR finds it, redaction removes it, nothing else changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytesseract
import pytest
from PIL import Image, ImageDraw, ImageFont

from medlens.errors import ImageTooLargeError
from medlens.privacy import detect_text, pixels, redact_burned_in_text
from medlens.privacy.pixels import RegionCache
from medlens.privacy.synthetic import fonts

pytestmark = pytest.mark.slow

NAME = "OKONKWO MARGARET"
ID = "ID 48213377"


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    found = fonts()
    return ImageFont.truetype(found[0], size) if found else ImageFont.load_default(size=size)


def _screen(rotate_id: int = 0, level: int = 230) -> np.ndarray:
    """A dark ultrasound-like screen: a grey fan, a name on top, an id rotated at the side."""
    image = Image.new("L", (400, 300), 10)
    draw = ImageDraw.Draw(image)
    draw.pieslice((60, 40, 340, 320), 240, 300, fill=90)
    draw.text((20, 12), NAME, fill=level, font=_font(18))
    layer = Image.new("L", (170, 30), 0)
    ImageDraw.Draw(layer).text((2, 2), ID, fill=255, font=_font(18))
    layer = layer.rotate(rotate_id, expand=True)
    image.paste(Image.new("L", layer.size, level), (360 - layer.width // 2, 90), layer)
    return np.asarray(image)


def _ocr(image: np.ndarray) -> str:
    text = pytesseract.image_to_string(Image.fromarray(image), config="--psm 11")
    text += pytesseract.image_to_string(
        Image.fromarray(np.rot90(image, 1).copy()), config="--psm 11"
    )
    return text.upper()


def test_text_is_found_in_every_orientation_and_redacted() -> None:
    screen = _screen(rotate_id=90)
    assert "OKONKWO" in _ocr(screen)  # the test image really carries readable text
    redacted, regions = redact_burned_in_text(screen)
    assert isinstance(redacted, np.ndarray) and redacted.dtype == screen.dtype
    assert {r.rotation for r in regions} >= {0} and any(r.rotation in (90, 270) for r in regions)
    left = _ocr(redacted)
    assert "OKONKWO" not in left and "48213377" not in left
    ink = screen > 150  # only the text is that bright here
    assert (redacted[ink] == screen.min()).all()
    assert np.array_equal(redacted[150:, :300], screen[150:, :300])  # the fan is untouched


def test_low_contrast_text_is_found() -> None:
    screen = _screen(level=70)
    regions = detect_text(screen)
    assert any(r.y0 < 40 and r.x0 < 60 for r in regions)


def test_blank_and_16_bit_images() -> None:
    blank = np.full((128, 128), 500, np.uint16)
    out, regions = redact_burned_in_text(blank)
    assert regions == [] and np.array_equal(out, blank)
    ct = (_screen().astype(np.int16) * 8) - 1024
    out, regions = redact_burned_in_text(ct)
    assert regions and out.dtype == np.int16 and out.min() == ct.min()


def test_pil_and_colour_input_keep_their_type() -> None:
    rgb = Image.fromarray(np.stack([_screen()] * 3, axis=-1))
    out, regions = redact_burned_in_text(rgb)
    assert isinstance(out, Image.Image) and out.mode == "RGB" and out.size == rgb.size
    assert regions and "OKONKWO" not in _ocr(np.asarray(out.convert("L")))


def test_huge_images_are_refused_before_any_work() -> None:
    huge = np.broadcast_to(np.uint8(0), (9000, 9000))
    with pytest.raises(ImageTooLargeError, match="OCR cap"):
        detect_text(huge)


def test_region_cache_keeps_boxes_only_and_skips_the_second_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    screen = _screen(rotate_id=90)
    cache = RegionCache(tmp_path / "regions", b"key")
    first = detect_text(screen, cache=cache)
    files = list((tmp_path / "regions").rglob("*.json"))
    assert first and len(files) == 1
    stored = files[0].read_text()
    assert "OKONKWO" not in stored.upper() and "48213377" not in stored  # no text, no pixels
    calls = []
    monkeypatch.setattr(pixels, "read_line", lambda page: calls.append(1) or (0.0, 0, 0.0, False))
    assert detect_text(screen, cache=cache) == first and calls == []
    # Under another project key the entry is not found: the image is read again.
    detect_text(screen, cache=RegionCache(tmp_path / "regions", b"other"))
    assert calls


@pytest.mark.parametrize(
    ("text", "shaped"),
    [("2023-08-28", True), ("ID 83260749", True), ("DOB 04/11/1957", True), ("AXIAL SCAN", False)],
)
def test_read_line_says_whether_a_reading_is_shaped_like_phi(text: str, shaped: bool) -> None:
    """A date or an id read even at low confidence is strong evidence of burned-in PHI."""
    page = Image.new("L", (260, 40), 255)
    ImageDraw.Draw(page).text((8, 8), text, fill=0, font=_font(20))
    confidence, alnum, share, is_phi = pixels.read_line(np.asarray(page))
    assert alnum >= len(text.replace(" ", "")) - 2 and share > 0.6 and confidence > 0
    assert is_phi is shaped


@pytest.mark.data
def test_real_radiographs_lose_little_area(shared_data: Path) -> None:
    """Anatomy is not text: plain VQA-RAD radiographs keep almost all of their pixels."""
    folder = shared_data / "vqa-rad" / "VQA_RAD Image Folder"
    areas = []
    for name in ("synpic100132.jpg", "synpic12210.jpg", "synpic13385.jpg"):
        with Image.open(folder / name) as image:
            grey = np.asarray(image.convert("L").resize((384, 384)))
        redacted, _ = redact_burned_in_text(grey)
        areas.append(float((np.asarray(redacted) != grey).mean()))
    assert max(areas) < 0.05, areas


@pytest.mark.parametrize("angle", [-7.0, 6.0])
def test_skewed_text_is_levelled_read_and_redacted(angle: float) -> None:
    """Strings burned in a few degrees off the row read only once levelled (fitted baseline)."""
    image = Image.new("L", (420, 200), 15)
    layer = Image.new("L", (300, 34), 0)
    ImageDraw.Draw(layer).text((2, 2), NAME, fill=255, font=_font(22))
    layer = layer.rotate(angle, expand=True, resample=Image.Resampling.BICUBIC)
    image.paste(Image.new("L", layer.size, 220), (40, 60), layer)
    screen = np.asarray(image)
    redacted, regions = redact_burned_in_text(screen)
    assert regions
    ink = screen > 120
    assert (redacted[ink] == screen.min()).mean() > 0.98


def test_skew_follows_the_letters_baseline() -> None:
    xs = np.arange(0, 200, 20)
    rise = np.round(-np.tan(np.radians(5.0)) * xs).astype(int)  # rows grow downwards
    members = np.stack([100 + rise, 112 + rise, xs, xs + 12], axis=1)
    assert pixels.skew(members) == pytest.approx(5.0, abs=0.5)
    assert pixels.skew(members[:2]) == 0.0


def test_confirmed_line_grows_over_the_ink_that_continues_it() -> None:
    """Glyphs merged into the background are no letters, but their ink continues the line and
    is blacked out with it; ink farther than 1.5 letter heights is not."""
    ink = np.zeros((60, 400), bool)
    ink[20:32, 40:100] = True  # the confirmed part
    ink[22:30, 110:150] = True  # the rest of the string, 10 px on
    ink[22:30, 200:220] = True  # something else, 50 px on
    line = pixels._Line((20, 32, 40, 100), 12, False, False)
    assert pixels.complete_line(line, np.zeros((0, 4), np.int64), ink) == (20, 32, 40, 150)
    vertical = pixels._Line((40, 100, 20, 32), 12, True, False)
    assert pixels.complete_line(vertical, np.zeros((0, 4), np.int64), ink.T.copy()) == (
        40,
        150,
        20,
        32,
    )


def test_a_failed_line_is_read_again_without_components_far_longer_than_high() -> None:
    """Glyphs merged with a streak of anatomy: the pieces to read leave the streak out."""
    settings = pixels.DetectorSettings()
    glyphs = [(100, 112, 20 + 10 * k, 28 + 10 * k) for k in range(6)]
    streak = (100, 112, 82, 300)  # 218 px long, 12 px high: no glyph
    members = np.array([*glyphs, streak], dtype=np.int64)
    line = pixels._chain_line(members, False, settings, split=True)
    assert line.box == (100, 112, 20, 300)
    assert [part.box for part in line.parts] == [(100, 112, 20, 78)]
    # The chains of a merged box come back one by one, with their parts.
    other = pixels._chain_line(
        np.array(glyphs, dtype=np.int64) + [0, 0, 300, 300], False, settings, split=True
    )
    merged = pixels._Line((100, 112, 20, 378), 12, False, False)
    pieces = pixels._pieces(merged, [line, other])
    assert [p.box for p in pieces] == [line.box, other.box, (100, 112, 20, 78)]


def test_skew_ignores_glyphs_merged_with_anatomy_and_steep_fits() -> None:
    xs = np.arange(0, 200, 20)
    members = np.stack([np.full(10, 100), np.full(10, 112), xs, xs + 12], axis=1)
    members[6:, 1] = 112 + np.arange(4) * 15  # glyphs joined to tissue below, ever taller
    assert pixels.skew(members) == 0.0
    rise = np.round(-np.tan(np.radians(20.0)) * xs).astype(int)
    steep = np.stack([100 + rise, 112 + rise, xs, xs + 12], axis=1)
    assert pixels.skew(steep) == 0.0  # no chained text climbs that fast: read as drawn


def test_a_failed_line_is_also_read_in_the_band_of_its_aligned_letters() -> None:
    """Glyphs merged with anatomy below are taller than the others: the line is read again
    along its whole length, but only across the band its aligned letters span."""
    settings = pixels.DetectorSettings()
    glyphs = [(100, 112, 20 + 10 * k, 28 + 10 * k) for k in range(6)]
    merged = [(100, 140, 80, 88), (100, 150, 90, 98)]  # two glyphs joined to tissue below
    line = pixels._chain_line(np.array(glyphs + merged, dtype=np.int64), False, settings, True)
    assert line.box == (100, 150, 20, 98)
    assert (100, 112, 20, 98) in [part.box for part in line.parts]
    assert line.read_box == (100, 112, 20, 98)  # typical letters only, across the line


def test_coloured_text_as_bright_as_the_tissue_under_it_is_found() -> None:
    """Yellow text whose mean grey equals the background's: invisible on the grey page,
    plain on the chroma page (anatomy is grey)."""
    image = Image.new("RGB", (420, 120), (170, 170, 170))
    ImageDraw.Draw(image).text((20, 40), ID, fill=(230, 180, 100), font=_font(24))
    screen = np.asarray(image)
    assert pixels.chroma_page(screen.mean(axis=-1).astype(np.uint8)) is None
    assert pixels.chroma_page(np.repeat(screen[..., :1], 3, axis=-1)) is None
    assert not detect_text(screen.mean(axis=-1).astype(np.uint8))
    redacted, regions = redact_burned_in_text(screen)
    assert regions
    ink = np.abs(screen.astype(int) - 170).max(axis=-1) > 40
    assert (np.asarray(redacted)[ink] == screen.min()).all()


def test_regular_letters_follow_each_other_closely() -> None:
    """Typeset letters are of one height, on one baseline and close together; ribs around a
    CT body outline are the first two but far apart."""
    settings = pixels.DetectorSettings()
    letters = np.array([(100, 112, 20 + 10 * k, 28 + 10 * k) for k in range(6)], dtype=np.int64)
    ribs = np.array([(100, 112, 20 + 40 * k, 28 + 40 * k) for k in range(6)], dtype=np.int64)
    assert pixels._regular(letters, False, settings)
    assert not pixels._regular(ribs, False, settings)


def test_a_regular_chain_merged_with_texture_is_its_own_piece() -> None:
    """Merging with texture makes a line irregular (it is read, not taken unread), but the
    regular chain inside comes back as a piece, even when it spans the whole line."""
    settings = pixels.DetectorSettings()
    glyphs = np.array([(100, 112, 20 + 10 * k, 28 + 10 * k) for k in range(6)], dtype=np.int64)
    text = pixels._chain_line(glyphs, False, settings, split=True)
    texture = pixels._Line((102, 110, 30, 60), 8, False, False)  # the other polarity's
    (merged,) = pixels._merge([text, texture])
    assert text.regular and not merged.regular
    assert merged.box == text.box
    assert text in pixels._pieces(merged, [text, texture])
