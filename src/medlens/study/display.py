"""From modality values to 8-bit display values.

The grey pipeline follows DICOM PS3.3 C.11: the values in a ``Study`` are already past the
Modality LUT; here a VOI LUT (C.11.2) or a window (the linear VOI function of C.11.2.1.2.1)
maps them to 0..255, and MONOCHROME1 images are inverted last (the presentation step,
C.11.6), so that higher values always look brighter on screen. Without a window, values are
stretched between robust percentiles (0.5 % and 99.5 %), and 8-bit images are kept as they
are. Colour images pass through.

Window presets are centre/width pairs in Hounsfield units from Radiopaedia's "Windowing (CT)"
article (https://radiopaedia.org/articles/windowing-ct).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from medlens.errors import ConfigError
from medlens.registry import Registry
from medlens.types import Window

if TYPE_CHECKING:
    from medlens.types import Study

WINDOW_PRESETS: Registry[Window] = Registry("window preset")
for _preset in (
    Window(-600, 1500, "lung"),
    Window(50, 350, "mediastinum"),
    Window(50, 400, "soft-tissue"),  # abdomen soft tissues
    Window(400, 1800, "bone"),
    Window(40, 80, "brain"),
    Window(75, 215, "subdural"),
    Window(32, 8, "stroke"),
    Window(30, 150, "liver"),
    Window(600, 2800, "temporal-bone"),
):
    WINDOW_PRESETS.register(_preset.name, _preset)

ROBUST_PERCENTILES = (0.5, 99.5)


def resolve_window(window: str | Window) -> Window:
    """A preset name (case-insensitive, "did you mean" on typos) or a ``Window``."""
    return WINDOW_PRESETS.get(window) if isinstance(window, str) else window


def apply_window(values: np.ndarray, window: Window) -> np.ndarray:
    """DICOM's linear VOI function (PS3.3 C.11.2.1.2.1) to 0..255 floats:
    ``x <= c - 0.5 - (w-1)/2`` → 0, ``x > c - 0.5 + (w-1)/2`` → 255, else
    ``((x - (c - 0.5)) / (w - 1) + 0.5) * 255``."""
    c, w = float(window.center), max(float(window.width), 1.0)
    x = values.astype(np.float64, copy=False)
    if w == 1.0:  # the standard's limit: a threshold at c - 0.5
        return np.where(x > c - 0.5, 255.0, 0.0)
    y = ((x - (c - 0.5)) / (w - 1.0) + 0.5) * 255.0
    return np.clip(y, 0.0, 255.0)


def scale_range(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Clip to ``[low, high]`` and scale to 0..255 floats (the plain min/max window many
    model recipes use, e.g. MedGemma's CT notebook)."""
    x = np.clip(values.astype(np.float64, copy=False), low, high)
    return (x - low) / max(high - low, 1e-12) * 255.0


def apply_voi_lut(values: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """A VOI LUT as loaded (``(n, 2)``: input value, output 0..1) to 0..255 floats; inputs
    below/above the table take its first/last entry (PS3.3 C.11.2.1.1)."""
    mapped = np.interp(values.astype(np.float64, copy=False), lut[:, 0], lut[:, 1])
    return np.asarray(mapped, dtype=np.float64) * 255.0


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.asarray(np.rint(values), dtype=np.uint8)


def _color_to_uint8(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype == np.uint8:
        return pixels
    top = float(pixels.max(initial=0)) or 1.0
    return _to_uint8(np.clip(pixels.astype(np.float64) / top * 255.0, 0, 255))


def display_values(
    study: Study,
    values: np.ndarray,
    window: str | Window | None = None,
    *,
    reference: np.ndarray | None = None,
) -> np.ndarray:
    """Map modality ``values`` of ``study`` (a slice, a projection or the volume) to uint8.

    ``window``: a preset name, a ``Window``, or None for the study's own VOI LUT, else its
    first header window, else a robust percentile stretch computed on ``reference`` (default
    ``values``; pass the whole volume so that every slice gets the same mapping).
    """
    if study.is_color:
        if window is not None:
            raise ConfigError(
                "Windowing applies to grey images, and this study is colour (RGB). Leave "
                "window=None to show its colours as they are."
            )
        return _color_to_uint8(values)
    if window is not None:
        shown = apply_window(values, resolve_window(window))
    elif study.voi_lut is not None:
        shown = apply_voi_lut(values, study.voi_lut)
    elif study.windows:
        shown = apply_window(values, study.windows[0])
    elif values.dtype == np.uint8:
        shown = values.astype(np.float64)
    else:
        ref = (values if reference is None else reference).ravel()
        ref = ref[:: max(1, ref.size // 1_000_000)]  # a 1M-sample estimate is plenty
        low, high = np.percentile(ref, ROBUST_PERCENTILES)
        shown = scale_range(values, float(low), float(high)) if high > low else values * 0.0
    if study.photometric == "MONOCHROME1":
        shown = 255.0 - shown
    return _to_uint8(shown)


def to_display(
    study: Study,
    *,
    window: str | Window | None = None,
    slice_index: int | None = None,
) -> np.ndarray:
    """One slice (``slice_index``) or every slice (None) of ``study`` as uint8 display
    values: ``(rows, cols[, 3])`` or ``(slices, rows, cols[, 3])``. See ``display_values``.

    >>> to_display(ct, window="lung", slice_index=12).dtype  # doctest: +SKIP
    dtype('uint8')
    """
    if slice_index is None:
        return display_values(study, study.pixels, window)
    if not -study.num_slices <= slice_index < study.num_slices:
        raise ConfigError(
            f"slice_index={slice_index} is out of range: the study has {study.num_slices} "
            f"slice(s) (0..{study.num_slices - 1})."
        )
    return display_values(study, study.pixels[slice_index], window, reference=study.pixels)
