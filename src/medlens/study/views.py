"""3D → 2D: the images a vision-language model sees, each with the way back to the study.

Every ``View`` carries ``ViewRegion``s whose ``to_voxel`` matrix maps a view pixel to voxel
coordinates ``(col, row, slice)``, so a box a model draws can be located in the volume and,
through ``Study.affine``, in patient millimetres (``map_box_to_study``).

Conventions. View coordinates are continuous with pixel ``(i, j)`` covering
``[i, i+1) × [j, j+1)`` (as Pillow boxes); voxel coordinates are centred on indices (as the
affine is), so voxel ``v`` spans ``v ± 0.5``. Planes follow the radiological display
convention (patient axes in DICOM LPS): axial = looking from the feet (patient left on image
right, anterior up), coronal = from the front (superior up), sagittal = from the patient's
left (anterior on image left). The voxel axis closest to each patient axis is chosen from the
affine, so a sagittally stored MR still gives an axial view. Views are resampled so that a
view pixel is square in millimetres; studies without geometry (PNG, 2D images) are shown as
stored and only the "axial" (stored) plane exists. Slice labels drawn on montages are
1-based, as viewers number images; voxel indices are 0-based.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medlens.errors import ConfigError
from medlens.study.display import display_values
from medlens.types import Box, Study, View, ViewRegion, Window

if TYPE_CHECKING:
    from PIL import Image as PILImage

DEFAULT_MAX_SIZE = 1024
"""Longest side of a view in pixels unless a recipe says otherwise (most VLM image
processors resize to 336–1024 px; larger only costs tokens)."""

PLANES = ("axial", "coronal", "sagittal")
_PLANE_AXES = {
    # (patient axis, direction) of image x, of image y, and the normal's patient axis (LPS)
    "axial": ((0, 1), (1, 1), 2),
    "coronal": ((0, 1), (2, -1), 1),
    "sagittal": ((1, 1), (2, -1), 0),
}


@dataclass(frozen=True)
class PlaneGeometry:
    """Which voxel axis (0=col, 1=row, 2=slice) runs along image x and y, whether it runs
    backwards, and which one is the plane's normal."""

    x_axis: int
    x_flip: bool
    y_axis: int
    y_flip: bool
    normal: int
    shape: tuple[int, int, int]
    """Voxel counts along (col, row, slice)."""
    spacing: tuple[float, float, float]
    """Millimetres per voxel along (col, row, slice); 1 where unknown."""


def _voxel_spacing(study: Study) -> tuple[float, float, float]:
    if study.affine is not None:
        norms = np.linalg.norm(np.asarray(study.affine)[:3, :3], axis=0)
        return (float(norms[0]) or 1.0, float(norms[1]) or 1.0, float(norms[2]) or 1.0)
    ps = study.pixel_spacing or (1.0, 1.0)
    return (ps[1], ps[0], study.slice_spacing or study.slice_thickness or 1.0)


def _patient_axes(affine: np.ndarray) -> list[tuple[int, int]]:
    """For each voxel axis, the closest patient axis and its sign (greedy on the largest
    direction cosine, as nibabel's ``io_orientation`` does)."""
    cosines = np.abs(affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0))
    result: dict[int, tuple[int, int]] = {}
    work = cosines.copy()
    for _ in range(3):
        patient, voxel = np.unravel_index(int(np.argmax(work)), work.shape)
        result[int(voxel)] = (int(patient), 1 if affine[patient, voxel] >= 0 else -1)
        work[patient, :] = -1
        work[:, voxel] = -1
    return [result[a] for a in range(3)]


def plane_geometry(study: Study, plane: str = "axial") -> PlaneGeometry:
    """How ``plane`` is cut from ``study``'s voxel grid."""
    if plane not in PLANES:
        raise ConfigError(f"Unknown plane {plane!r}. Available: {', '.join(PLANES)}.")
    pixels = study.pixels
    shape = (int(pixels.shape[2]), int(pixels.shape[1]), int(pixels.shape[0]))
    spacing = _voxel_spacing(study)
    if study.affine is None or study.num_slices == 1:
        if plane != "axial":
            raise ConfigError(
                f"A {plane} view needs a volume with known geometry (DICOM positions or a "
                "NIfTI affine); this study has "
                + ("one slice." if study.num_slices == 1 else "no geometry.")
                + " Use plane='axial' (the slices as stored)."
            )
        return PlaneGeometry(0, False, 1, False, 2, shape, spacing)
    axes = _patient_axes(np.asarray(study.affine))
    (px, sx), (py, sy), pn = _PLANE_AXES[plane]
    by_patient = {patient: (voxel, sign) for voxel, (patient, sign) in enumerate(axes)}
    xv, xs = by_patient[px]
    yv, ys = by_patient[py]
    return PlaneGeometry(xv, xs * sx < 0, yv, ys * sy < 0, by_patient[pn][0], shape, spacing)


def _plane_values(study: Study, geo: PlaneGeometry, index: int | None) -> np.ndarray:
    """The 2D array ``[y, x(, 3)]`` of one plane (``index`` along the normal), or the
    maximum-intensity projection through the normal when ``index`` is None."""
    voxels = np.moveaxis(study.pixels, (0, 1, 2), (2, 1, 0))  # (col, row, slice[, 3])
    cut = np.moveaxis(voxels, (geo.y_axis, geo.x_axis, geo.normal), (0, 1, 2))
    values = cut[:, :, index] if index is not None else cut.max(axis=2)
    if geo.x_flip:
        values = values[:, ::-1]
    if geo.y_flip:
        values = values[::-1]
    return np.ascontiguousarray(values)


def _square_mm_size(geo: PlaneGeometry) -> tuple[float, float]:
    """The (width, height) in pixels that makes a pixel square in mm at the finer spacing."""
    nx, ny = geo.shape[geo.x_axis], geo.shape[geo.y_axis]
    sx, sy = geo.spacing[geo.x_axis], geo.spacing[geo.y_axis]
    fine = min(sx, sy)
    return nx * sx / fine, ny * sy / fine


def _fit(width: float, height: float, scale: float) -> tuple[int, int]:
    return max(1, round(width * scale)), max(1, round(height * scale))


def _to_voxel(
    geo: PlaneGeometry, x0: int, y0: int, width: int, height: int, index: int | None
) -> tuple[tuple[float, float, float], ...]:
    """The 4×3 matrix of a region: ``[col, row, slice, 1] = M @ [x, y, 1]``."""
    rows = [[0.0, 0.0, 0.0] for _ in range(3)]
    for axis, flip, offset, size, column in (
        (geo.x_axis, geo.x_flip, x0, width, 0),
        (geo.y_axis, geo.y_flip, y0, height, 1),
    ):
        n = geo.shape[axis]
        k = size / n  # view pixels per voxel
        row = [0.0, 0.0, 0.0]
        row[column] = -1.0 / k if flip else 1.0 / k
        row[2] = n - 0.5 + offset / k if flip else -0.5 - offset / k
        rows[axis] = row
    rows[geo.normal] = [0.0, 0.0, float(index) if index is not None else 0.0]
    return tuple((r[0], r[1], r[2]) for r in [*rows, [0.0, 0.0, 1.0]])


def view_to_voxel(region: ViewRegion, x: float, y: float) -> np.ndarray:
    """Voxel coordinates ``(col, row, slice)`` of view point ``(x, y)``; the projected axis
    of a MIP comes back as NaN."""
    voxel: np.ndarray = (np.asarray(region.to_voxel) @ np.array([x, y, 1.0]))[:3]
    if region.projected_axis is not None:
        voxel[region.projected_axis] = np.nan
    return voxel


def voxel_to_view(region: ViewRegion, voxel: tuple[float, float, float]) -> tuple[float, float]:
    """The view point of voxel coordinates (the inverse of ``view_to_voxel`` in-plane)."""
    matrix = np.asarray(region.to_voxel)[:3]
    rows = [a for a in range(3) if a != region.projected_axis and np.any(matrix[a, :2])]
    target = np.array([voxel[a] - matrix[a, 2] for a in rows])
    solution = np.linalg.lstsq(matrix[rows, :2], target, rcond=None)[0]
    return float(solution[0]), float(solution[1])


def box_to_view(view: View, box: Sequence[float]) -> tuple[float, float, float, float]:
    """A box ``(x0, y0, x1, y1)`` in pixels of a 2D image (edges: pixel ``i`` spans ``i`` to
    ``i + 1``, as benchmark boxes are given) in pixels of ``view``, through its first region.
    Gold boxes are compared in the frame the model was shown, however the recipe resized it."""
    region = view.regions[0]
    corners = [voxel_to_view(region, (x - 0.5, y - 0.5, 0.0)) for x, y in (box[:2], box[2:4])]
    (ax, ay), (bx, by) = corners
    return min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)


def _image(values: np.ndarray, size: tuple[int, int]) -> PILImage.Image:
    from PIL import Image

    image = Image.fromarray(values, mode="RGB" if values.ndim == 3 else "L")
    if image.size != size:
        image = image.resize(size, Image.Resampling.BILINEAR)
    return image


def _render(
    study: Study, geo: PlaneGeometry, index: int | None, window: str | Window | None
) -> np.ndarray:
    values = _plane_values(study, geo, index)
    return display_values(study, values, window, reference=study.pixels)


def evenly_spaced(total: int, count: int) -> list[int]:
    """``count`` indices spread evenly over ``range(total)``, both ends included."""
    if count <= 0:
        raise ConfigError(f"count={count}: ask for at least one slice.")
    if count >= total:
        return list(range(total))
    if count == 1:
        return [total // 2]
    return sorted({round(i * (total - 1) / (count - 1)) for i in range(count)})


def _check_index(geo: PlaneGeometry, index: int, plane: str) -> int:
    n = geo.shape[geo.normal]
    if not -n <= index < n:
        raise ConfigError(f"{plane} slice {index} is out of range: there are {n} (0..{n - 1}).")
    return index % n


def slice_view(
    study: Study,
    index: int | None = None,
    *,
    plane: str = "axial",
    window: str | Window | None = None,
    max_size: int = DEFAULT_MAX_SIZE,
    render: Callable[[np.ndarray], np.ndarray] | None = None,
) -> View:
    """One slice (default: the middle one) of ``plane``, square pixels in mm, long side at
    most ``max_size``. ``render`` replaces windowing: it maps the slice's modality values
    ``[y, x]`` to a uint8 ``[y, x]`` or ``[y, x, 3]`` array (multi-window recipes)."""
    geo = plane_geometry(study, plane)
    n = geo.shape[geo.normal]
    index = n // 2 if index is None else _check_index(geo, index, plane)
    width, height = _square_mm_size(geo)
    size = _fit(width, height, min(1.0, max_size / max(width, height)))
    shown = (
        render(_plane_values(study, geo, index))
        if render is not None
        else _render(study, geo, index, window)
    )
    image = _image(shown, size)
    label = f"{plane} {index + 1}/{n}"
    region = ViewRegion(0, 0, size[0], size[1], _to_voxel(geo, 0, 0, *size, index), label)
    return View(image=image, label=label, regions=(region,))


def slice_views(
    study: Study,
    count: int = 8,
    *,
    plane: str = "axial",
    window: str | Window | None = None,
    max_size: int = DEFAULT_MAX_SIZE,
    indices: list[int] | None = None,
) -> tuple[View, ...]:
    """``count`` evenly spaced slices (or the given ``indices``), one view each."""
    geo = plane_geometry(study, plane)
    chosen = indices if indices is not None else evenly_spaced(geo.shape[geo.normal], count)
    return tuple(slice_view(study, i, plane=plane, window=window, max_size=max_size)
                 for i in chosen)  # fmt: skip


def mip_view(
    study: Study,
    *,
    plane: str = "axial",
    window: str | Window | None = None,
    max_size: int = DEFAULT_MAX_SIZE,
) -> View:
    """Maximum-intensity projection through ``plane``'s normal (bright structures: bone,
    contrast, nodules in lung); the collapsed axis is ``projected_axis`` of the region."""
    geo = plane_geometry(study, plane)
    width, height = _square_mm_size(geo)
    size = _fit(width, height, min(1.0, max_size / max(width, height)))
    image = _image(_render(study, geo, None, window), size)
    label = f"{plane} MIP"
    region = ViewRegion(
        0, 0, size[0], size[1], _to_voxel(geo, 0, 0, *size, None), label, geo.normal
    )
    return View(image=image, label=label, regions=(region,))


def montage_view(
    study: Study,
    count: int = 16,
    *,
    plane: str = "axial",
    window: str | Window | None = None,
    columns: int | None = None,
    tile_size: int = 256,
    max_size: int = DEFAULT_MAX_SIZE,
    indices: list[int] | None = None,
) -> View:
    """A grid of evenly spaced slices in one image, each tile numbered (1-based) in its
    top-left corner: for models that take a single image."""
    from PIL import Image, ImageDraw, ImageFont

    geo = plane_geometry(study, plane)
    n = geo.shape[geo.normal]
    chosen = indices if indices is not None else evenly_spaced(n, count)
    cols = columns or math.ceil(math.sqrt(len(chosen)))
    grid_rows = math.ceil(len(chosen) / cols)
    width, height = _square_mm_size(geo)
    scale = min(
        tile_size / max(width, height), max_size / (cols * width), max_size / (grid_rows * height)
    )
    tile_w, tile_h = max(1, int(width * scale)), max(1, int(height * scale))
    mode = "RGB" if study.is_color else "L"
    canvas = Image.new(mode, (cols * tile_w, grid_rows * tile_h))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=max(8, min(tile_w, tile_h) // 10))
    white = (255, 255, 255) if mode == "RGB" else 255
    black = (0, 0, 0) if mode == "RGB" else 0
    regions = []
    for position, index in enumerate(chosen):
        index = _check_index(geo, index, plane)
        x0, y0 = (position % cols) * tile_w, (position // cols) * tile_h
        canvas.paste(_image(_render(study, geo, index, window), (tile_w, tile_h)), (x0, y0))
        draw.text((x0 + 2, y0 + 1), str(index + 1), fill=white, font=font, stroke_width=1,
                  stroke_fill=black)  # fmt: skip
        label = f"{plane} {index + 1}/{n}"
        to_voxel = _to_voxel(geo, x0, y0, tile_w, tile_h, index)
        regions.append(ViewRegion(x0, y0, x0 + tile_w, y0 + tile_h, to_voxel, label))
    return View(image=canvas, label=f"{plane} montage of {len(chosen)}", regions=tuple(regions))


@dataclass(frozen=True)
class StudyBox:
    """A view box located in the study.

    ``cols``/``rows``/``slices`` are (low, high) voxel coordinates (index-centred, so a
    box covering voxels 3..5 reads (2.5, 5.5)); the axis a MIP collapsed is None.
    ``corners_mm`` are the 8 corners of the box in patient LPS millimetres (a collapsed axis
    spans the whole volume), ``center_mm`` its centre; both None without geometry.
    """

    cols: tuple[float, float] | None
    rows: tuple[float, float] | None
    slices: tuple[float, float] | None
    region: str
    corners_mm: tuple[tuple[float, float, float], ...] | None = None
    center_mm: tuple[float, float, float] | None = None
    label: str = ""


def _region_at(view: View, x: float, y: float) -> ViewRegion:
    for region in view.regions:
        if region.x0 <= x < region.x1 and region.y0 <= y < region.y1:
            return region
    raise ConfigError(
        f"The box centre ({x:.1f}, {y:.1f}) lies outside every region of view "
        f"'{view.label}' (size {view.image.size}); it does not point at the study."
    )


def map_box_to_study(study: Study, view: View, box: Box) -> StudyBox:
    """Locate ``box`` (view pixels) in ``study``: voxel ranges and patient-mm corners. The
    region holding the box centre is used, and the box is clipped to it."""
    cx, cy = (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2
    region = _region_at(view, cx, cy)
    x0, x1 = sorted((max(region.x0, box.x0), min(region.x1, box.x1)))
    y0, y1 = sorted((max(region.y0, box.y0), min(region.y1, box.y1)))
    a = view_to_voxel(region, x0, y0)
    b = view_to_voxel(region, x1, y1)
    ranges: list[tuple[float, float] | None] = []
    for axis in range(3):
        if axis == region.projected_axis:
            ranges.append(None)
        else:
            low, high = sorted((float(a[axis]), float(b[axis])))
            ranges.append((low, high))
    corners = center = None
    if study.affine is not None:
        shape = (study.pixels.shape[2], study.pixels.shape[1], study.pixels.shape[0])
        spans = [r if r is not None else (-0.5, shape[i] - 0.5) for i, r in enumerate(ranges)]
        grid = np.array([[c, r, s, 1.0] for c in spans[0] for r in spans[1] for s in spans[2]])
        mm = (np.asarray(study.affine) @ grid.T).T[:, :3]
        corners = tuple(tuple(float(v) for v in p) for p in mm)
        center = tuple(float(v) for v in mm.mean(axis=0))
    return StudyBox(ranges[0], ranges[1], ranges[2], region.label, corners, center, box.label)  # type: ignore[arg-type]


def save_images(
    images: Sequence[PILImage.Image], folder: str | os.PathLike[str], labels: Sequence[str] = ()
) -> list[Path]:
    """Write ``images`` as lossless PNGs into ``folder``, numbered in the order given (for a
    request: the order the model receives them), named after their ``labels``; returns the
    paths. What a model saw can then be checked by eye, pixel for pixel."""
    target = Path(folder).expanduser()
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"Cannot create the folder '{target}' for the images: {exc}") from exc
    paths = []
    for index, image in enumerate(images):
        label = labels[index] if index < len(labels) else f"image {index + 1}"
        stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in label).strip("-")
        path = target / f"{index:02d}-{stem or 'image'}.png"
        image.save(path, format="PNG")
        paths.append(path)
    return paths
