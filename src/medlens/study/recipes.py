"""Named, versioned preprocessing: how a study becomes the images a given model expects.

A model entry declares a recipe ("medgemma-ct@1"), a user may pick another or override its
parameters, and every ``View`` records the ``name@version`` that made it, so that results,
calibration profiles and reports can say exactly what the model saw. Changing what a recipe
does means a new version, never an edit of the old one.

Recipes:

- ``medgemma-ct@1``: MedGemma 1.5's CT input, from Google's notebook
  ``notebooks/high_dimensional_ct_hugging_face.ipynb`` (Google-Health/medgemma): values in
  HU; three windows stacked as R, G, B: wide (−1024, 1024), soft tissue (−135, 215), brain
  (0, 80), each clipped and scaled to 0..255 and rounded; at most 85 axial slices sampled as
  the notebook does (``round(i / 85 * (n − 1))`` for ``i = 1..85``); long side capped at
  896 px, the SigLIP input size of MedGemma/Gemma 3.
- ``single-window@1``: one slice with a preset or the header window.
- ``montage@1``: a numbered grid of evenly spaced slices in one image, for models with one
  image slot.
- ``xray@1``: a 2D projection radiograph: VOI LUT or window, MONOCHROME1 inverted, aspect
  kept from the pixel spacing, long side capped.
- ``slices@1``: evenly spaced slices, one image each.

Unless stated, the long side of every image is capped at ``views.DEFAULT_MAX_SIZE`` (1024).

Each recipe on a CT phantom (24 axial slices of 64 × 64, in HU) and a radiograph:

>>> import numpy as np
>>> from medlens.testing.studies import ct_affine, ct_phantom
>>> ct = Study(ct_phantom(slices=24, size=64), modality="CT", affine=ct_affine(slices=24, size=64))
>>> views = apply_recipe(ct, "medgemma-ct@1")
>>> len(views), views[0].image.mode, views[0].recipe
(24, 'RGB', 'medgemma-ct@1')
>>> np.asarray(views[0].image)[0, 0]  # air (-1000 HU) in the wide, soft-tissue, brain windows
array([3, 0, 0], dtype=uint8)
>>> [v.label for v in apply_recipe(ct, "slices@1", count=3)]
['axial 1/24', 'axial 13/24', 'axial 24/24']
>>> [(v.label, v.image.size) for v in apply_recipe(ct, "single-window@1", window="lung")]
[('axial 13/24', (64, 64))]
>>> [(v.label, v.image.size) for v in apply_recipe(ct, "montage@1", count=4)]
[('axial montage of 4', (512, 512))]
>>> cr = Study(np.arange(60_000, dtype=np.uint16).reshape(1, 300, 200), modality="DX",
...            photometric="MONOCHROME1", pixel_spacing=(0.2, 0.1))
>>> [xray] = apply_recipe(cr, "xray@1")  # rows of 0.2 mm, columns of 0.1 mm: aspect kept
>>> xray.image.size, xray.image.getpixel((0, 0))  # MONOCHROME1: the lowest value is white
((200, 600), 255)
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medlens.errors import ConfigError
from medlens.registry import Registry
from medlens.study.display import scale_range
from medlens.study.views import (
    DEFAULT_MAX_SIZE,
    montage_view,
    plane_geometry,
    slice_view,
    slice_views,
)
from medlens.types import Study, View

PROJECTION_MODALITIES = frozenset({"CR", "DX", "MG", "RF", "XA", "IO", "PX"})
"""Projection radiography modalities (2D by nature): they get ``xray@1``."""


@dataclass(frozen=True)
class Recipe:
    """A named, versioned way to turn a study into views; ``defaults`` lists the parameters
    a user may override."""

    name: str
    version: int
    description: str
    build: Callable[..., tuple[View, ...]]
    defaults: Mapping[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.name}@{self.version}"

    def __call__(self, study: Study, **overrides: Any) -> tuple[View, ...]:
        unknown = sorted(set(overrides) - set(self.defaults))
        if unknown:
            raise ConfigError(
                f"Recipe {self.id} has no parameter(s) {unknown}; it takes: "
                f"{', '.join(sorted(self.defaults)) or 'none'}."
            )
        views = self.build(study, **{**self.defaults, **overrides})
        return tuple(dataclasses.replace(v, recipe=self.id) for v in views)


RECIPES: Registry[Recipe] = Registry("recipe")


def register(recipe: Recipe) -> Recipe:
    RECIPES.register(recipe.id, recipe)
    return recipe


def get_recipe(name: str) -> Recipe:
    """``"name@version"``, or ``"name"`` for its latest version."""
    if "@" not in name:
        versions = [RECIPES.get(n) for n in RECIPES.names() if n.split("@")[0] == name.lower()]
        if versions:
            return max(versions, key=lambda r: r.version)
    return RECIPES.get(name)


def medgemma_slice_indices(total: int, max_slices: int) -> list[int]:
    """The slice sampling of Google's MedGemma CT notebook: all slices when there are at most
    ``max_slices``, else ``int(round(i / max_slices * (total - 1)))`` for i = 1..max_slices."""
    if total <= max_slices:
        return list(range(total))
    return [round(i / max_slices * (total - 1)) for i in range(1, max_slices + 1)]


def _medgemma_ct(
    study: Study,
    *,
    max_slices: int,
    max_size: int,
    windows: tuple[tuple[float, float], ...],
) -> tuple[View, ...]:
    if study.modality != "CT" or study.is_color:
        raise ConfigError(
            f"medgemma-ct expects a CT in Hounsfield units, and this study is "
            f"{study.modality}{' (colour)' if study.is_color else ''}. For a CT NIfTI load it "
            "with load_study(path, modality='CT'); for other studies use slices@1."
        )

    def render(values: np.ndarray) -> np.ndarray:
        channels = [scale_range(values, low, high) for low, high in windows]
        return np.round(np.stack(channels, axis=-1)).astype(np.uint8)

    geo = plane_geometry(study, "axial")
    indices = medgemma_slice_indices(geo.shape[geo.normal], max_slices)
    return tuple(
        slice_view(study, i, plane="axial", max_size=max_size, render=render) for i in indices
    )


def _single_window(study: Study, *, slice_index: int | None, window: Any, plane: str,
                   max_size: int) -> tuple[View, ...]:  # fmt: skip
    return (slice_view(study, slice_index, plane=plane, window=window, max_size=max_size),)


def _montage(study: Study, *, count: int, window: Any, plane: str, tile_size: int,
             max_size: int) -> tuple[View, ...]:  # fmt: skip
    return (montage_view(study, count, plane=plane, window=window, tile_size=tile_size,
                         max_size=max_size),)  # fmt: skip


def _xray(study: Study, *, window: Any, max_size: int) -> tuple[View, ...]:
    if study.is_volume:
        raise ConfigError(
            f"xray@1 is for 2D radiographs, and this study has {study.num_slices} slices. "
            "Use slices@1 or montage@1 for volumes and cine loops."
        )
    return (slice_view(study, 0, window=window, max_size=max_size),)


def _slices(study: Study, *, count: int, window: Any, plane: str,
            max_size: int) -> tuple[View, ...]:  # fmt: skip
    return slice_views(study, count, plane=plane, window=window, max_size=max_size)


MEDGEMMA_CT = register(Recipe(
    "medgemma-ct", 1,
    "MedGemma 1.5 CT: HU windows (-1024,1024), (-135,215), (0,80) as R,G,B; <= 85 axial "
    "slices sampled as Google's notebook does; long side <= 896 px.",
    _medgemma_ct,
    {"max_slices": 85, "max_size": 896,
     "windows": ((-1024.0, 1024.0), (-135.0, 215.0), (0.0, 80.0))},
))  # fmt: skip
register(Recipe(
    "single-window", 1, "One slice (middle by default) with a window preset or the header's.",
    _single_window,
    {"slice_index": None, "window": None, "plane": "axial", "max_size": DEFAULT_MAX_SIZE},
))  # fmt: skip
register(Recipe(
    "montage", 1, "Evenly spaced slices in one numbered grid image (single-image models).",
    _montage,
    {"count": 16, "window": None, "plane": "axial", "tile_size": 256,
     "max_size": DEFAULT_MAX_SIZE},
))  # fmt: skip
register(Recipe(
    "xray", 1, "A 2D radiograph: VOI LUT or window, MONOCHROME1 inverted, aspect kept.",
    _xray, {"window": None, "max_size": DEFAULT_MAX_SIZE},
))  # fmt: skip
register(Recipe(
    "slices", 1, "Evenly spaced slices, one image each.",
    _slices, {"count": 8, "window": None, "plane": "axial", "max_size": DEFAULT_MAX_SIZE},
))  # fmt: skip


def study_kind(study: Study) -> str:
    """The kind of study a recipe is chosen for: "ct-volume", "volume", "projection" (a 2D
    radiograph) or "image" (any other 2D image)."""
    if study.is_volume:
        return "ct-volume" if study.modality == "CT" and not study.is_color else "volume"
    return "projection" if study.modality in PROJECTION_MODALITIES else "image"


MODEL_RECIPES: Mapping[str, Mapping[str, str]] = {
    # MedGemma 1.5 was trained on CT as multi-window RGB slices (Google's CT notebook) and
    # takes several images per prompt.
    "google/medgemma*": {"ct-volume": "medgemma-ct@1", "volume": "slices@1"},
}
"""Model-id patterns (``fnmatch``, case-insensitive) → study kind → recipe id, for models
with a published preprocessing; kinds not listed use ``default_recipe_for``."""

DEFAULT_RECIPES: Mapping[str, str] = {
    "ct-volume": "montage@1",
    "volume": "montage@1",
    "projection": "xray@1",
    "image": "single-window@1",
}
"""Any model, by study kind: a volume as one montage (it fits models with one image slot)."""


def default_recipe_for(study: Study, model: str | None = None) -> str:
    """The recipe id for ``study``: the model's published recipe when ``MODEL_RECIPES``
    has one for this kind of study, else the default for the kind."""
    kind = study_kind(study)
    if model is not None:
        for pattern, by_kind in MODEL_RECIPES.items():
            if fnmatch.fnmatch(model.lower(), pattern.lower()) and kind in by_kind:
                return by_kind[kind]
    return DEFAULT_RECIPES[kind]


def apply_recipe(study: Study, name: str | None = None, **overrides: Any) -> tuple[View, ...]:
    """Run recipe ``name`` ("medgemma-ct@1", or "medgemma-ct" for the latest version; None
    for ``default_recipe_for(study)``) with parameter ``overrides``."""
    return get_recipe(name or default_recipe_for(study))(study, **overrides)
