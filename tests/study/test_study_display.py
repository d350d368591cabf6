"""Display: DICOM linear window values at exact pixels, presets, VOI LUT, MONOCHROME1,
fallbacks and colour."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medlens.errors import ConfigError, UnknownNameError
from medlens.study import WINDOW_PRESETS, load_study, to_display
from medlens.testing.studies import lesion_location, write_xray_dicom
from medlens.types import Study, Window


def _study(values: list[float], **kw: object) -> Study:
    return Study(pixels=np.array(values, dtype=np.int16).reshape(1, 1, -1), **kw)  # type: ignore[arg-type]


def test_linear_window_matches_ps3_3_c_11_2_1_2() -> None:
    # c=40, w=400: x <= -160 → 0; x > 239 → 255; between: ((x - 39.5) / 399 + 0.5) * 255
    study = _study([-1000, -160, -159, 40, 239, 240, 3000])
    shown = to_display(study, window=Window(40, 400), slice_index=0)[0]
    assert shown.tolist() == [0, 0, 1, 128, 255, 255, 255]
    assert shown.dtype == np.uint8


def test_presets_by_name_and_did_you_mean() -> None:
    assert WINDOW_PRESETS.get("Lung") == Window(-600, 1500, "lung")
    study = _study([-1350, -600, 150])
    np.testing.assert_array_equal(
        to_display(study, window="lung", slice_index=0),
        to_display(study, window=Window(-600, 1500), slice_index=0),
    )
    with pytest.raises(UnknownNameError, match="Did you mean 'lung'"):
        to_display(study, window="lungs")
    assert {"lung", "mediastinum", "soft-tissue", "bone", "brain", "liver"} <= set(WINDOW_PRESETS)


def test_header_window_is_the_default(ct_study: Study) -> None:
    loc = lesion_location()
    col, row, sl = (round(v) for v in loc.voxel)
    hu = float(ct_study.pixels[sl, row, col])
    default = to_display(ct_study, slice_index=sl)
    expected = round(min(max(((hu - 39.5) / 399 + 0.5) * 255, 0), 255))  # header 40/400
    assert default[row, col] == expected
    lung = to_display(ct_study, window="lung", slice_index=sl)
    assert lung[row, col] == round(((hu + 600.5) / 1499 + 0.5) * 255)  # nodule bright in lung
    assert lung[row - 12, col] < 110 and lung[row, col] > 180  # lung (-800 HU) darker
    assert to_display(ct_study).shape == (24, 128, 128)


def test_monochrome1_is_inverted() -> None:
    mono2 = _study([0, 100, 200], windows=(Window(100, 200),))
    mono1 = _study([0, 100, 200], windows=(Window(100, 200),), photometric="MONOCHROME1")
    a = to_display(mono2, slice_index=0)
    b = to_display(mono1, slice_index=0)
    np.testing.assert_array_equal(b, 255 - a)
    assert a[0, 0] == 0 and b[0, 0] == 255


@pytest.mark.parametrize("voi_lut", [False, True])
def test_xray_monochrome1_file_looks_like_monochrome2(tmp_path: Path, voi_lut: bool) -> None:
    m2 = load_study(write_xray_dicom(tmp_path / "m2.dcm", voi_lut=voi_lut))
    m1 = load_study(write_xray_dicom(tmp_path / "m1.dcm", monochrome1=True, voi_lut=voi_lut))
    assert m1.photometric == "MONOCHROME1"
    assert (m1.voi_lut is not None) is voi_lut
    np.testing.assert_array_equal(m1.pixels, 4095 - m2.pixels)
    a, b = to_display(m2, slice_index=0), to_display(m1, slice_index=0)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    # the lungs (stored 900 in MONOCHROME2) are dark, the spine (3900) bright
    assert a[128, 77] < 70 and a[128, 128] > 235


def test_voi_lut_table_is_applied() -> None:
    lut = np.stack([np.arange(10, 14, dtype=float), np.array([0.0, 0.2, 0.6, 1.0])], axis=1)
    study = _study([0, 10, 11, 12, 13, 99], voi_lut=lut, windows=(Window(0, 2),))
    # the VOI LUT wins over a window; values outside the table take its ends
    assert to_display(study, slice_index=0)[0].tolist() == [0, 0, 51, 153, 255, 255]


def test_fallbacks_robust_stretch_and_8_bit_passthrough() -> None:
    values = np.linspace(0, 1000, 1000).astype(np.float32).reshape(1, 10, 100)
    values[0, 0, 0] = 1e6  # one outlier must not flatten the image
    shown = to_display(Study(pixels=values), slice_index=0)
    assert shown[0, 1] == 0 and shown[9, 98] == 255 and 100 < shown[5, 0] < 155
    grey8 = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    np.testing.assert_array_equal(to_display(Study(pixels=grey8), slice_index=0), grey8[0])


def test_colour_passes_through_and_refuses_windows() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (2, 4, 5, 3), dtype=np.uint8)
    study = Study(pixels=rgb, photometric="RGB")
    np.testing.assert_array_equal(to_display(study, slice_index=1), rgb[1])
    with pytest.raises(ConfigError, match="colour"):
        to_display(study, window="lung")
    with pytest.raises(ConfigError, match="out of range"):
        to_display(study, slice_index=2)
