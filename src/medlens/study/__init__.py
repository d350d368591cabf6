"""Reading studies and turning them into images a model can see.

``load_study`` reads PNG/JPEG/TIFF, DICOM (file, multi-frame, series folder) and NIfTI into a
``Study`` (medlens.types) that keeps modality values (Hounsfield units for CT) and geometry.
``to_display`` windows one slice for people; ``views`` makes 2D images from 3D studies with
the way back to voxels and millimetres; ``recipes`` are the named, versioned preprocessing
each model expects.
"""

from __future__ import annotations

from medlens.study.display import WINDOW_PRESETS, to_display
from medlens.study.load import DEFAULT_MAX_PIXELS, load_pair, load_study, study_notes
from medlens.study.recipes import (
    MODEL_RECIPES,
    RECIPES,
    Recipe,
    apply_recipe,
    default_recipe_for,
    get_recipe,
)
from medlens.study.views import StudyBox, map_box_to_study, save_images

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "MODEL_RECIPES",
    "RECIPES",
    "WINDOW_PRESETS",
    "Recipe",
    "StudyBox",
    "apply_recipe",
    "default_recipe_for",
    "get_recipe",
    "load_pair",
    "load_study",
    "map_box_to_study",
    "save_images",
    "study_notes",
    "to_display",
]
