"""Recipes: MedGemma's CT recipe against its published definition, caps, overrides, and the
choice of recipe per model and study."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medlens.errors import ConfigError, UnknownNameError
from medlens.study import (
    MODEL_RECIPES,
    RECIPES,
    apply_recipe,
    default_recipe_for,
    get_recipe,
    load_study,
    to_display,
)
from medlens.study.recipes import medgemma_slice_indices
from medlens.testing.studies import write_xray_dicom
from medlens.types import Study

HU = [-2000, -1024, -800, 0, 40, 80, 215, 1024, 3000]
# Google's notebook: clip to each window, scale to 0..255, round; R wide, G soft tissue, B brain
EXPECTED_RGB = [
    (0, 0, 0),
    (0, 0, 0),
    (28, 0, 0),
    (128, 98, 0),
    (132, 128, 128),
    (137, 157, 255),
    (154, 255, 255),
    (255, 255, 255),
    (255, 255, 255),
]


def _ct(slices: int, rows: int, cols: int, values: np.ndarray | None = None) -> Study:
    pixels = values if values is not None else np.zeros((slices, rows, cols), np.int16)
    return Study(pixels=pixels, modality="CT", affine=np.eye(4), pixel_spacing=(1.0, 1.0))


def test_medgemma_ct_channels_match_the_published_windows() -> None:
    values = np.tile(np.array(HU, np.int16), (3, 2, 1))
    views = apply_recipe(_ct(3, 2, 9, values), "medgemma-ct")
    assert len(views) == 3 and all(v.recipe == "medgemma-ct@1" for v in views)
    image = np.asarray(views[0].image)
    assert views[0].image.mode == "RGB" and image.shape == (2, 9, 3)
    assert [tuple(int(c) for c in px) for px in image[0]] == EXPECTED_RGB


def test_medgemma_ct_slice_cap_follows_the_notebook() -> None:
    assert medgemma_slice_indices(10, 4) == [2, 4, 7, 9]  # round(i/4*9), i = 1..4
    assert medgemma_slice_indices(5, 85) == [0, 1, 2, 3, 4]
    views = apply_recipe(_ct(200, 4, 4), "medgemma-ct@1")
    chosen = [int(v.regions[0].to_voxel[2][2]) for v in views]
    assert len(views) == 85 and chosen[0] == 2 and chosen[-1] == 199
    assert chosen == sorted(set(chosen))
    assert len(apply_recipe(_ct(200, 4, 4), "medgemma-ct", max_slices=10)) == 10


def test_image_size_is_capped() -> None:
    views = apply_recipe(_ct(3, 1000, 1200), "medgemma-ct")
    assert max(views[0].image.size) == 896 and views[0].image.size == (896, 747)
    assert max(apply_recipe(_ct(3, 1000, 1200), "slices", count=1)[0].image.size) == 1024
    assert apply_recipe(_ct(3, 1000, 1200), "single-window", max_size=300)[0].image.size == (
        300,
        250,
    )


def test_medgemma_ct_needs_ct() -> None:
    mr = Study(pixels=np.zeros((4, 8, 8), np.int16), modality="MR")
    with pytest.raises(ConfigError, match="modality='CT'"):
        apply_recipe(mr, "medgemma-ct")


def test_names_versions_and_overrides(ct_study: Study) -> None:
    assert get_recipe("montage").id == "montage@1"
    with pytest.raises(UnknownNameError, match="Did you mean 'montage@1'"):
        get_recipe("montag@1")
    with pytest.raises(ConfigError, match="no parameter.*'slice'"):
        apply_recipe(ct_study, "single-window", slice=3)
    views = apply_recipe(ct_study, "slices", count=3, window="lung", plane="coronal")
    assert [v.label for v in views] == ["coronal 1/128", "coronal 65/128", "coronal 128/128"]
    assert {v.recipe for v in views} == {"slices@1"}
    single = apply_recipe(ct_study, "single-window", slice_index=5, window="bone")
    np.testing.assert_array_equal(
        np.asarray(single[0].image), to_display(ct_study, window="bone", slice_index=5)
    )


def test_recipe_choice_per_model_and_study(ct_study: Study, tmp_path: Path) -> None:
    medgemma = "google/medgemma-1.5-4b-it"
    assert default_recipe_for(ct_study) == "montage@1"
    assert default_recipe_for(ct_study, model=medgemma) == "medgemma-ct@1"
    assert default_recipe_for(ct_study, model="Qwen/Qwen2.5-VL-3B-Instruct") == "montage@1"
    mr = Study(pixels=np.zeros((4, 8, 8), np.int16), modality="MR")
    assert default_recipe_for(mr, model=medgemma) == "slices@1"
    xray = load_study(write_xray_dicom(tmp_path / "x.dcm", monochrome1=True))
    assert default_recipe_for(xray) == default_recipe_for(xray, model=medgemma) == "xray@1"
    photo = Study(pixels=np.zeros((1, 8, 8, 3), np.uint8), photometric="RGB")
    assert default_recipe_for(photo) == "single-window@1"
    assert "google/medgemma*" in MODEL_RECIPES
    (view,) = apply_recipe(xray)
    assert view.recipe == "xray@1"
    np.testing.assert_array_equal(np.asarray(view.image), to_display(xray, slice_index=0))
    with pytest.raises(ConfigError, match="2D radiographs"):
        apply_recipe(ct_study, "xray")


def test_every_recipe_runs_and_stamps_its_views(ct_study: Study, tmp_path: Path) -> None:
    """One conformance check for every registered recipe."""
    xray = load_study(write_xray_dicom(tmp_path / "x.dcm"))
    for name in RECIPES:
        recipe = RECIPES.get(name)
        study = xray if recipe.name == "xray" else ct_study
        views = recipe(study)
        assert views and all(v.recipe == recipe.id == name for v in views)
        assert all(max(v.image.size) <= 1024 and v.regions for v in views)
        assert recipe.description
