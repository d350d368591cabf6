"""Views: planes with radiological orientation, square-mm resampling, MIP, montage, and the
numerical round trip voxel → view pixel → voxel, down to patient millimetres."""

from __future__ import annotations

import numpy as np
import pytest

from medlens.errors import ConfigError
from medlens.study import map_box_to_study
from medlens.study.views import (
    evenly_spaced,
    mip_view,
    montage_view,
    slice_view,
    slice_views,
    view_to_voxel,
    voxel_to_view,
)
from medlens.testing.studies import lesion_location
from medlens.types import Box, Study

LESION = lesion_location()
NORMAL_AXIS = {"axial": 2, "coronal": 1, "sagittal": 0}


def _index(plane: str) -> int:
    return round(LESION.voxel[NORMAL_AXIS[plane]])


@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
def test_lesion_round_trip_in_every_plane(ct_study: Study, plane: str) -> None:
    view = slice_view(ct_study, _index(plane), plane=plane, window="lung")
    (region,) = view.regions
    voxel = list(LESION.voxel)
    voxel[NORMAL_AXIS[plane]] = _index(plane)
    x, y = voxel_to_view(region, tuple(voxel))  # type: ignore[arg-type]
    np.testing.assert_allclose(view_to_voxel(region, x, y), voxel, atol=1e-9)
    image = np.asarray(view.image)
    assert image[int(y), int(x)] > 170  # the 40 HU nodule, bright in the lung window
    # lung (dark) 33 mm anterior of it (sagittal) or 22 mm toward the midline (others)
    lung = list(voxel)
    if plane == "sagittal":
        lung[1] -= 12
    else:
        lung[0] += 8
    lx, ly = voxel_to_view(region, tuple(lung))  # type: ignore[arg-type]
    assert image[int(ly), int(lx)] < 120


def test_radiological_orientation(ct_study: Study) -> None:
    axial = slice_view(ct_study, _index("axial"))
    x, _ = voxel_to_view(axial.regions[0], LESION.voxel)
    assert x < axial.image.width / 2  # the patient's right lung is on the image left
    coronal = slice_view(ct_study, _index("coronal"), plane="coronal")
    _, y_top = voxel_to_view(coronal.regions[0], (64, _index("coronal"), 23))
    _, y_bottom = voxel_to_view(coronal.regions[0], (64, _index("coronal"), 0))
    assert y_top < y_bottom  # superior up
    spine_row = round(np.linalg.solve(ct_study.affine, [0, 80, 0, 1])[1])
    sagittal = slice_view(ct_study, 64, plane="sagittal")
    x_spine, _ = voxel_to_view(sagittal.regions[0], (64, spine_row, 12))
    assert x_spine > sagittal.image.width / 2  # posterior on the right, anterior on the left


def test_views_have_square_millimetre_pixels(ct_study: Study) -> None:
    axial = slice_view(ct_study)
    assert axial.image.size == (128, 128)
    coronal = slice_view(ct_study, plane="coronal")
    # 24 slices × 5 mm = 120 mm tall, at 350/128 mm per pixel
    assert coronal.image.size == (128, round(120 / (350 / 128)))
    to_voxel = np.asarray(coronal.regions[0].to_voxel)
    assert to_voxel[2, 1] == pytest.approx(-24 / coronal.image.height)  # slices per pixel, up
    small = slice_view(ct_study, 5, max_size=64)
    assert small.image.size == (64, 64)
    # voxel centre (c, r) sits at view pixel centre ((c + 0.5) / 2, (r + 0.5) / 2)
    assert voxel_to_view(small.regions[0], (10, 20, 5)) == pytest.approx((5.25, 10.25))


def test_anisotropic_2d_image_is_resampled() -> None:
    pixels = np.arange(100 * 200, dtype=np.uint16).reshape(1, 100, 200)
    study = Study(pixels=pixels, pixel_spacing=(2.0, 1.0), modality="DX")
    view = slice_view(study)
    assert view.image.size == (200, 200)
    (region,) = view.regions
    np.testing.assert_allclose(view_to_voxel(region, 100.5, 101.0), [100.0, 50.0, 0.0])
    with pytest.raises(ConfigError, match="known geometry"):
        slice_view(study, plane="coronal")
    with pytest.raises(ConfigError, match="Unknown plane"):
        slice_view(study, plane="oblique")


def test_mip_collapses_the_normal_axis(ct_study: Study) -> None:
    view = mip_view(ct_study, plane="coronal", window="bone")
    (region,) = view.regions
    assert region.projected_axis == 1
    voxel = view_to_voxel(region, 64.5, 20.0)
    assert np.isnan(voxel[1]) and not np.isnan(voxel[0])
    # the spine (700 HU) runs through every slice: bright along the whole MIP column
    x, _ = voxel_to_view(region, (63.5, 0.0, 12.0))
    assert np.asarray(view.image)[:, int(x)].min() > 150


def test_slice_views_are_evenly_spaced(ct_study: Study) -> None:
    assert evenly_spaced(24, 4) == [0, 8, 15, 23]
    assert evenly_spaced(3, 8) == [0, 1, 2]
    assert evenly_spaced(24, 1) == [12]
    views = slice_views(ct_study, 4)
    assert [v.label for v in views] == ["axial 1/24", "axial 9/24", "axial 16/24", "axial 24/24"]
    assert [v.regions[0].to_voxel[2][2] for v in views] == [0, 8, 15, 23]


def test_montage_regions_and_labels(ct_study: Study) -> None:
    view = montage_view(ct_study, 6, tile_size=100, max_size=1024)
    assert len(view.regions) == 6 and view.image.size == (300, 200)  # 3 × 2 tiles
    image = np.asarray(view.image)
    for region, index in zip(view.regions, evenly_spaced(24, 6)):
        assert region.label == f"axial {index + 1}/24"
        x, y = voxel_to_view(region, (64, 64, index))
        assert region.x0 <= x < region.x1 and region.y0 <= y < region.y1
        np.testing.assert_allclose(view_to_voxel(region, x, y), [64, 64, index], atol=1e-9)
        corner = image[region.y0 : region.y0 + 12, region.x0 : region.x0 + 12]
        assert corner.max() > 200  # the slice number drawn over air (0 in the header window)
    assert np.asarray(slice_view(ct_study, 0).image)[:12, :12].max() == 0


def test_box_maps_to_voxels_and_millimetres(ct_study: Study) -> None:
    view = slice_view(ct_study, _index("axial"), max_size=64)  # half resolution
    (region,) = view.regions
    x, y = voxel_to_view(region, LESION.voxel)
    box = Box(x - 2, y - 2, x + 2, y + 2, label="nodule")
    located = map_box_to_study(ct_study, view, box)
    assert located.label == "nodule" and located.region == "axial 13/24"
    assert located.cols is not None and located.rows is not None
    assert located.cols[0] < LESION.voxel[0] < located.cols[1]
    assert located.cols[1] - located.cols[0] == pytest.approx(8.0)  # 4 view px × 2 voxels
    assert located.slices == (12.0, 12.0)
    np.testing.assert_allclose(located.center_mm, LESION.mm, atol=1e-6)
    assert located.corners_mm is not None and len(located.corners_mm) == 8
    with pytest.raises(ConfigError, match="outside every region"):
        map_box_to_study(ct_study, view, Box(100, 100, 120, 120))


def test_box_on_a_mip_spans_the_collapsed_axis(ct_study: Study) -> None:
    view = mip_view(ct_study)
    (region,) = view.regions
    x, y = voxel_to_view(region, LESION.voxel)
    located = map_box_to_study(ct_study, view, Box(x - 3, y - 3, x + 3, y + 3))
    assert located.slices is None
    assert located.corners_mm is not None
    zs = sorted({round(c[2], 6) for c in located.corners_mm})
    assert zs == pytest.approx([-60 - 2.5, -60 + 23 * 5 + 2.5])  # the whole volume's extent
