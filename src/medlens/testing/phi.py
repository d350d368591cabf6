"""Synthetic studies with known PHI, to measure de-identification (benchmarks/deid_recall.py).

Each generated case knows exactly which identifying strings it carries and where:

- a DICOM dataset with every Table E.1-1 attribute pydicom knows filled with a unique marker,
  private tags and an overlay holding PHI, and PHI burned into the pixels;
- a PNG/JPEG "screenshot" (ultrasound screen, scanned request) with PHI text;
- images of many kinds (:data:`BACKGROUND_KINDS`: ultrasound speckle, Doppler colour, cine,
  CT and MR slices, pathology tiles, dark and bright fields, rulers and calipers) carrying
  PHI lines and the clinical labels such images show, which must survive;
- a free-text report mixing PHI with clinical text that must survive.

Text is drawn in varied fonts (DejaVu/Liberation when installed, else Pillow's scalable
default), sizes, positions, contrasts and rotations (0/90/180/270 and small skews), and the
ink mask of every string is kept, so that a redaction can be scored by the ink it covers as
well as by what OCR can still read. Names come from Faker in several locales, so many are
not in the census lists the scrubber uses.
"""

from __future__ import annotations

import datetime as dt
import string
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from medlens.errors import require

if TYPE_CHECKING:
    from pydicom import Dataset

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/truetype/liberation"))
LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pl_PL", "pt_BR")

CLINICAL_SENTENCES = (
    "There is a 7 mm nodule in the right upper lobe.",
    "No pleural effusion or pneumothorax.",
    "Heart size is within normal limits.",
    "Mild degenerative change at L4-L5 with disc height loss.",
    "T2 hyperintense lesion in the left frontal white matter.",
    "Foley catheter in place; the bladder is decompressed.",
    "Findings are consistent with Hodgkin lymphoma involving mediastinal nodes.",
    "Hounsfield units of the adrenal nodule measure 8.",
    "Endotracheal tube tip 4 cm above the carina.",
    "Compared with the prior study, the consolidation has improved.",
    "BI-RADS 4 mass at 2 o'clock, 3 cm from the nipple.",
    "Ejection fraction estimated at 55 percent.",
)
CLINICAL_TERMS = (
    "nodule",
    "lobe",
    "effusion",
    "pneumothorax",
    "Heart",
    "L4-L5",
    "T2",
    "hyperintense",
    "Foley",
    "catheter",
    "Hodgkin",
    "lymphoma",
    "Hounsfield",
    "adrenal",
    "carina",
    "consolidation",
    "BI-RADS",
    "mass",
    "Ejection",
    "55",
    "7 mm",
    "3 cm",
    "4 cm",
)


@dataclass(frozen=True)
class PHI:
    """The identifying facts of one synthetic patient and visit."""

    given: str
    family: str
    patient_id: str
    birth_date: dt.date
    study_date: dt.date
    accession: str
    ssn: str
    phone: str
    email: str
    street: str
    city: str
    zip_code: str
    physician: str
    institution: str
    age: int

    def burned_strings(self) -> list[str]:
        """What a screen or a scanned request shows of the patient."""
        return [
            f"{self.family.upper()}^{self.given.upper()}",
            f"ID {self.patient_id}",
            f"DOB {self.birth_date:%d/%m/%Y}",
            f"{self.study_date:%Y-%m-%d}",
            f"ACC {self.accession}",
            f"Dr {self.physician}",
        ]

    def screen_lines(self, rng: np.random.Generator) -> list[str]:
        """The four or five lines an ultrasound or workstation screen shows of the patient,
        in the spellings devices use (name in any order and casing, "MRN", "DOB", "Acc")."""
        name = str(
            rng.choice(
                [
                    f"{self.family.upper()}^{self.given.upper()}",
                    f"{self.family}, {self.given}",
                    f"{self.given} {self.family}",
                    f"{self.family.upper()} {self.given.upper()}",
                ]
            )
        )
        birth = self.birth_date.strftime(str(rng.choice(["%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y"])))
        return [
            name,
            f"MRN {self.patient_id}",
            f"DOB {birth}",
            f"Acc {self.accession}",
            f"{self.study_date:%Y-%m-%d}",
        ][: int(rng.integers(4, 6))]


@dataclass
class BurnedText:
    text: str
    mask: np.ndarray  # bool, the ink of this string
    angle: float


@dataclass
class SyntheticImage:
    pixels: np.ndarray  # uint8 (rows, cols) or (rows, cols, 3); (frames, rows, cols[, 3]) for cine
    texts: list[BurnedText] = field(default_factory=list)
    """PHI strings burned in."""
    labels: list[BurnedText] = field(default_factory=list)
    """Clinical, non-identifying labels burned in, which de-identification should keep."""
    kind: str = ""


@dataclass
class SyntheticReport:
    text: str
    phi: list[tuple[str, str]]  # (kind, string)
    clinical: list[str]


@lru_cache(maxsize=1)
def fonts() -> tuple[str, ...]:
    """TrueType fonts available here; empty means Pillow's built-in scalable font."""
    found = sorted(str(p) for d in FONT_DIRS if d.is_dir() for p in d.glob("*.ttf"))
    return tuple(p for p in found if "Math" not in p)


def _font(rng: np.random.Generator, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    available = fonts()
    if available:
        return ImageFont.truetype(available[int(rng.integers(len(available)))], size)
    return ImageFont.load_default(size=size)


def _faker(rng: np.random.Generator) -> Any:
    faker = require("faker", "bench", "The synthetic PHI generator")
    fake = faker.Faker(LOCALES[int(rng.integers(len(LOCALES)))])
    fake.seed_instance(int(rng.integers(2**31)))
    return fake


def make_phi(rng: np.random.Generator) -> PHI:
    fake = _faker(rng)
    birth = fake.date_of_birth(minimum_age=1, maximum_age=104)
    study = fake.date_between(start_date=dt.date(2005, 1, 1), end_date=dt.date(2025, 12, 31))
    digits = string.digits
    letters = string.ascii_uppercase
    return PHI(
        given=fake.first_name(),
        family=fake.last_name(),
        patient_id="".join(rng.choice(list(digits), 8)),
        birth_date=birth,
        study_date=study,
        accession="".join(rng.choice(list(letters), 2)) + "".join(rng.choice(list(digits), 7)),
        ssn=f"{rng.integers(100, 900)}-{rng.integers(10, 99)}-{rng.integers(1000, 9999)}",
        phone=f"({rng.integers(200, 999)}) {rng.integers(200, 999)}-{rng.integers(1000, 9999)}",
        email=f"{fake.user_name()}@{fake.free_email_domain()}",
        street=f"{rng.integers(1, 9999)} {fake.last_name()} {rng.choice(['Street', 'Avenue', 'Road', 'Lane', 'Drive'])}",
        city=fake.city(),
        zip_code=f"{rng.integers(10000, 99999)}",
        physician=f"{fake.first_name()} {fake.last_name()}",
        institution=f"{fake.last_name()} General Hospital",
        age=int(rng.integers(18, 104)),
    )


# ------------------------------------------------------------------------------------------
# Pixels
# ------------------------------------------------------------------------------------------


def background(
    rng: np.random.Generator, shape: tuple[int, int], source: Path | None = None
) -> np.ndarray:
    """A grey image to write on: a real radiograph from ``source`` (a folder of JPEG/PNG)
    when given, else smooth anatomy-like blobs with mild noise."""
    if source is not None:
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
        if files:
            with Image.open(files[int(rng.integers(len(files)))]) as im:
                return np.array(im.convert("L").resize(shape[::-1]), dtype=np.uint8)
    rows, cols = shape
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    img = np.full(shape, float(rng.uniform(5, 40)), np.float32)
    for _ in range(int(rng.integers(3, 8))):
        cy, cx = rng.uniform(0.2, 0.8) * rows, rng.uniform(0.2, 0.8) * cols
        ry, rx = rng.uniform(0.05, 0.3) * rows, rng.uniform(0.05, 0.3) * cols
        img += float(rng.uniform(30, 110)) * (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1)
    blurred = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(4)
    )
    noisy = np.asarray(blurred, np.float32) + rng.normal(0, 4, shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def burn_text(
    canvas: np.ndarray,
    text: str,
    rng: np.random.Generator,
    *,
    taken: np.ndarray | None = None,
    sizes: tuple[int, int] = (10, 30),
    upright: bool = False,
    color: tuple[float, float, float] | None = None,
) -> BurnedText | None:
    """Draw ``text`` into ``canvas`` (uint8, grey or RGB; a (frames, rows, cols[, 3]) stack
    gets it on every frame) in place with a random font, size in ``sizes``, contrast,
    position and rotation (none when ``upright``); ``color`` scales the RGB of the ink (a
    yellow or green overlay); None when it does not fit without overlapping."""
    if canvas.ndim == 4 or (canvas.ndim == 3 and canvas.shape[-1] != 3):
        first = burn_text(
            canvas[0], text, rng, taken=taken, sizes=sizes, upright=upright, color=color
        )
        if first is not None:
            from scipy import ndimage as ndi

            edge = ndi.binary_dilation(first.mask, iterations=2)  # anti-aliased rim too
            for frame in canvas[1:]:
                frame[edge] = canvas[0][edge]
        return first
    rows, cols = canvas.shape[:2]
    size = int(rng.integers(*sizes))
    font = _font(rng, size)
    _left, _top, right, bottom = font.getbbox(text)
    layer = Image.new("L", (int(right) + 4, int(bottom) + 4), 0)
    ImageDraw.Draw(layer).text((2, 2), text, fill=255, font=font)
    roll = 0.0 if upright else rng.random()
    angle = (
        0.0
        if roll < 0.55
        else float(rng.choice([90, 270]))
        if roll < 0.75
        else (180.0 if roll < 0.82 else float(rng.uniform(-8, 8)))
    )
    if angle:
        layer = layer.rotate(angle, expand=True, resample=Image.Resampling.BICUBIC)
    ink = np.asarray(layer) > 96
    h, w = ink.shape
    if h >= rows - 4 or w >= cols - 4:
        return None
    for _ in range(20):
        y, x = int(rng.integers(2, rows - h - 2)), int(rng.integers(2, cols - w - 2))
        if taken is None or not taken[max(0, y - 3) : y + h + 3, max(0, x - 3) : x + w + 3].any():
            break
    else:
        return None
    mask = np.zeros((rows, cols), bool)
    mask[y : y + h, x : x + w] = ink
    region = canvas[y : y + h, x : x + w].astype(np.float32)
    local = float(region.mean())
    contrast = float(rng.uniform(70, 200))
    level = (
        local + contrast if local + contrast <= 255 or local - contrast < 0 else local - contrast
    )
    level = float(np.clip(level, 0, 255))
    alpha = (
        np.asarray(layer, np.float32)[..., None] / 255.0
        if canvas.ndim == 3
        else (np.asarray(layer, np.float32) / 255.0)
    )
    tint = color or (1.0, 0.9, 0.6)
    ink_color = np.array(level) if canvas.ndim == 2 else level * np.array(tint)
    canvas[y : y + h, x : x + w] = np.clip(region * (1 - alpha) + ink_color * alpha, 0, 255).astype(
        np.uint8
    )
    if taken is not None:
        taken[y : y + h, x : x + w] = True
    return BurnedText(text, mask, angle)


def synthetic_image(
    phi: PHI,
    rng: np.random.Generator,
    *,
    shape: tuple[int, int] = (512, 512),
    color: bool = False,
    source: Path | None = None,
) -> SyntheticImage:
    """An image with the patient's PHI burned in (4-6 strings) at random places."""
    grey = background(rng, shape, source)
    canvas = np.stack([grey] * 3, axis=-1) if color else grey
    taken = np.zeros(shape, bool)
    out = SyntheticImage(canvas)
    strings = phi.burned_strings()
    for text in rng.permutation(strings)[: int(rng.integers(4, len(strings) + 1))]:
        burned = burn_text(canvas, str(text), rng, taken=taken)
        if burned is not None:
            out.texts.append(burned)
    return out


# ------------------------------------------------------------------------------------------
# Backgrounds of many kinds, with the clinical labels they show
# ------------------------------------------------------------------------------------------

BACKGROUND_KINDS = (
    "radiograph",
    "speckle",
    "doppler",
    "cine",
    "ct",
    "mr",
    "pathology",
    "dark",
    "bright",
    "ruler",
)
"""Image kinds :func:`kind_image` makes. "radiograph", "ct" and "mr" use real images when a
source folder of that kind is given (VQA-RAD radiographs, SLAKE CT and MR slices); the others
are drawn: ultrasound sectors of Rayleigh speckle (Wagner et al., IEEE Trans. Sonics Ultrason.
1983), with Doppler colour, as a cine loop, with a depth ruler and calipers; H&E-like tissue;
near-black and near-white fields."""

CLINICAL_LABELS: dict[str, tuple[str, ...]] = {
    "radiograph": ("PORTABLE", "UPRIGHT", "AP", "R", "SUPINE"),
    "speckle": ("LIVER L", "RT KIDNEY", "GAIN 52%", "DEPTH 16cm", "5C1", "THI", "FR 23Hz"),
    "doppler": ("PRF 2.5kHz", "WF 100Hz", "LT CCA", "GAIN 60%", "CF 4.4MHz", "PSV 82 cm/s"),
    "cine": ("LV", "CINE 45/120", "FR 48Hz", "MI 1.1", "TIS 0.4", "4D"),
    "ct": ("W 400 L 40", "AXIAL", "SL 5.0mm", "120 kV", "SUPINE", "R"),
    "mr": ("T2 AX", "FLAIR", "TR 4000 TE 90", "SAG T1", "FOV 240mm"),
    "pathology": ("H&E 20x", "40X", "100 um", "IHC"),
    "dark": ("L", "SUPINE", "W 2048 L 1024", "AP"),
    "bright": ("PA", "ERECT", "R", "INSP"),
    "ruler": ("D1 2.34 cm", "D2 1.12 cm", "DIST 4.1 cm", "AREA 3.2 cm2"),
}
"""Text such images carry that identifies nobody, which de-identification should keep."""


def _speckle(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Fully developed speckle: Rayleigh amplitudes, smoothed to a resolution cell of a few
    pixels, over a few tissue regions of different echogenicity, fading with depth."""
    from scipy import ndimage as ndi

    rows, cols = shape
    amplitude = ndi.gaussian_filter(rng.rayleigh(1.0, shape), (1.6, 1.0))
    tissue = ndi.gaussian_filter(rng.uniform(0.4, 1.2, (8, 8)), 1.0)
    tissue = np.asarray(
        Image.fromarray((tissue * 100).astype(np.uint8)).resize(
            (cols, rows), Image.Resampling.BILINEAR
        ),
        np.float32,
    )
    depth = np.linspace(1.0, 0.55, rows)[:, None]
    return np.asarray(amplitude * tissue * depth * 1.3, np.float32)


def _sector(shape: tuple[int, int], spread: float = 38.0) -> np.ndarray:
    """The fan an ultrasound probe images: apex at the top centre, ``spread`` degrees each
    side, from 6 % to 92 % of the height."""
    rows, cols = shape
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    apex_y, apex_x = -0.05 * rows, cols / 2
    radius = np.hypot(yy - apex_y, xx - apex_x)
    angle = np.degrees(np.arctan2(xx - apex_x, yy - apex_y))
    return np.asarray(
        (np.abs(angle) < spread) & (radius > 0.11 * rows) & (radius < 0.97 * rows), dtype=bool
    )


def ultrasound(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A grey ultrasound screen: speckle inside a sector on black."""
    image = np.where(_sector(shape), _speckle(rng, shape), 0.0)
    return np.clip(image, 0, 255).astype(np.uint8)


def doppler(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """An ultrasound screen with colour-Doppler flow (red towards, blue away from the probe)
    in a few vessels inside the sector."""
    grey = ultrasound(rng, shape).astype(np.float32)
    rgb = np.stack([grey] * 3, axis=-1)
    rows, cols = shape
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    sector = _sector(shape)
    for _ in range(int(rng.integers(2, 4))):
        cy, cx = rng.uniform(0.35, 0.8) * rows, rng.uniform(0.35, 0.65) * cols
        ry, rx = rng.uniform(0.02, 0.06) * rows, rng.uniform(0.08, 0.2) * cols
        vessel = (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1) & sector
        flow = rng.uniform(120, 255, vessel.sum())
        towards = rng.random() < 0.5
        rgb[vessel] = np.stack(
            [flow, flow * 0.25, flow * 0.1] if towards else [flow * 0.1, flow * 0.3, flow], -1
        )
    return np.clip(rgb, 0, 255).astype(np.uint8)


def cine(rng: np.random.Generator, shape: tuple[int, int], frames: int = 8) -> np.ndarray:
    """A (frames, rows, cols) ultrasound loop: the tissue drifts and its speckle decorrelates
    from frame to frame, the sector stays."""
    first = _speckle(rng, shape)
    sector = _sector(shape)
    out = []
    for k in range(frames):
        moved = np.roll(first, (2 * k, k), axis=(0, 1)) * 0.7 + 0.3 * _speckle(rng, shape)
        out.append(np.clip(np.where(sector, moved, 0.0), 0, 255).astype(np.uint8))
    return np.stack(out)


def pathology(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """An H&E-like tile: pink stroma with fibres, purple nuclei, white gaps."""
    from scipy import ndimage as ndi

    rows, cols = shape
    fibres = ndi.gaussian_filter(rng.normal(0, 1, shape), (2, 6))
    rgb = np.empty((rows, cols, 3), np.float32)
    rgb[..., 0] = 225 + 18 * fibres
    rgb[..., 1] = 165 + 25 * fibres
    rgb[..., 2] = 200 + 15 * fibres
    nuclei = ndi.gaussian_filter((rng.random(shape) < 0.004).astype(np.float32), 3.0)
    nuclei = nuclei > 0.6 * nuclei.max() * rng.uniform(0.08, 0.15)
    rgb[nuclei] = (95, 55, 140)
    gaps = ndi.gaussian_filter(rng.normal(0, 1, shape), 25) > 0.04
    rgb[gaps] = (245, 240, 245)
    noise = rng.normal(0, 4, (rows, cols, 1))
    return np.clip(rgb + noise, 0, 255).astype(np.uint8)


def _field(rng: np.random.Generator, shape: tuple[int, int], bright: bool) -> np.ndarray:
    from scipy import ndimage as ndi

    base = ndi.gaussian_filter(rng.normal(0, 1, shape), 30) * 120
    level = rng.uniform(228, 246) if bright else rng.uniform(3, 14)
    return np.asarray(np.clip(level + base + rng.normal(0, 2.5, shape), 0, 255), dtype=np.uint8)


def _real(files: list[Path], rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    with Image.open(files[int(rng.integers(len(files)))]) as im:
        return np.array(im.convert("L").resize(shape[::-1]), dtype=np.uint8)


def _ruler(canvas: np.ndarray, rng: np.random.Generator, taken: np.ndarray) -> list[BurnedText]:
    """A depth ruler down the right edge (ticks every centimetre, numbered every 5) and two
    caliper crosses on the image: their numbers are clinical."""
    rows, cols = canvas.shape[:2]
    x = cols - int(rng.integers(40, 70))
    step = rows // 18
    labels: list[BurnedText] = []
    for k in range(1, 17):
        y = k * step
        length = 12 if k % 5 == 0 else 6
        canvas[y : y + 2, x : x + length] = 230
        taken[y - 2 : y + 4, x : x + length] = True
    for k in (5, 10, 15):
        y = k * step
        label = _burn_at(canvas, str(k), rng, (y - 8, x + 16), taken)
        if label is not None:
            labels.append(label)
    for _ in range(2):
        cy, cx = int(rng.uniform(0.3, 0.8) * rows), int(rng.uniform(0.3, 0.7) * cols)
        canvas[cy - 6 : cy + 7, cx : cx + 1] = 255
        canvas[cy : cy + 1, cx - 6 : cx + 7] = 255
    return labels


def _burn_at(
    canvas: np.ndarray,
    text: str,
    rng: np.random.Generator,
    at: tuple[int, int],
    taken: np.ndarray,
) -> BurnedText | None:
    """Draw ``text`` upright at (row, col), bright, 12-16 px."""
    font = _font(rng, int(rng.integers(12, 17)))
    _left, _top, right, bottom = font.getbbox(text)
    layer = Image.new("L", (int(right) + 4, int(bottom) + 4), 0)
    ImageDraw.Draw(layer).text((2, 2), text, fill=255, font=font)
    alpha = np.asarray(layer, np.float32) / 255.0
    h, w = alpha.shape
    y, x = at
    if y < 0 or x < 0 or y + h > canvas.shape[0] or x + w > canvas.shape[1]:
        return None
    region = canvas[y : y + h, x : x + w].astype(np.float32)
    weight = alpha if canvas.ndim == 2 else alpha[..., None]
    canvas[y : y + h, x : x + w] = np.clip(region * (1 - weight) + 235 * weight, 0, 255).astype(
        np.uint8
    )
    mask = np.zeros(canvas.shape[:2], bool)
    mask[y : y + h, x : x + w] = alpha > 0.38
    taken[y : y + h, x : x + w] = True
    return BurnedText(text, mask, 0.0)


def kind_image(
    kind: str,
    phi: PHI,
    rng: np.random.Generator,
    *,
    shape: tuple[int, int] = (768, 1024),
    sources: dict[str, list[Path]] | None = None,
    text: bool = True,
) -> SyntheticImage:
    """One image of ``kind`` (:data:`BACKGROUND_KINDS`) with the patient's screen lines
    (:meth:`PHI.screen_lines`) and two or three of the kind's clinical labels burned in, or
    none with ``text=False`` (the same background, to measure what redaction takes from an
    image that carries no text). ``sources`` maps "radiograph", "ct" and "mr" to real image
    files; kinds without files fall back to drawn speckle or fields."""
    files = (sources or {}).get(kind, [])
    if kind in ("radiograph", "ct", "mr") and files:
        canvas = _real(files, rng, shape)
    elif kind in ("speckle", "ruler", "radiograph", "ct", "mr"):
        canvas = ultrasound(rng, shape)
    elif kind == "doppler":
        canvas = doppler(rng, shape)
    elif kind == "cine":
        canvas = cine(rng, shape)
    elif kind == "pathology":
        canvas = pathology(rng, shape)
    elif kind in ("dark", "bright"):
        canvas = _field(rng, shape, bright=kind == "bright")
    else:
        raise ValueError(f"unknown background kind {kind!r}; known: {', '.join(BACKGROUND_KINDS)}")
    out = SyntheticImage(canvas, kind=kind)
    if not text:
        return out
    taken = np.zeros(shape, bool)
    if kind == "ruler":
        out.labels += _ruler(canvas if canvas.ndim != 4 else canvas[0], rng, taken)
    tint = (1.0, 1.0, 0.3) if kind == "doppler" else None  # yellow overlay on colour flow
    for line in phi.screen_lines(rng):
        burned = burn_text(canvas, line, rng, taken=taken, sizes=(9, 36), color=tint)
        if burned is not None:
            out.texts.append(burned)
    labels = CLINICAL_LABELS[kind]
    for label in rng.permutation(labels)[: int(rng.integers(2, 4))]:
        burned = burn_text(canvas, str(label), rng, taken=taken, sizes=(12, 30), upright=True)
        if burned is not None:
            out.labels.append(burned)
    return out


# ------------------------------------------------------------------------------------------
# DICOM
# ------------------------------------------------------------------------------------------


def _marker(rng: np.random.Generator, n: int = 10) -> str:
    return "Q" + "".join(rng.choice(list(string.ascii_uppercase + string.digits), n - 1))


def synthetic_dataset(
    phi: PHI, rng: np.random.Generator, image: SyntheticImage | None = None
) -> tuple[Dataset, dict[int, str]]:
    """A Secondary Capture dataset with every Table E.1-1 attribute pydicom can encode filled
    with PHI, private tags and an overlay carrying PHI. Returns the dataset and, by tag, the
    string that must not survive de-identification in that attribute."""
    pydicom = require("pydicom", "dicom", "The synthetic DICOM generator")
    from pydicom.datadict import dictionary_VR, keyword_for_tag
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    from medlens.privacy.profile import basic_profile

    ds = pydicom.Dataset()
    filled: dict[int, str] = {}
    exact, _ = basic_profile()
    for tag in sorted(exact):
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            continue
        keyword = keyword_for_tag(tag)
        if (
            not keyword
            or tag >> 16 in (0x0000, 0x0002)
            or vr in ("SQ", "OB", "OW", "OF", "UN", "US or SS")
        ):
            continue
        made = _value_for(vr, phi, rng)
        if made is None:
            continue
        setattr(ds, keyword, made[0])
        filled[tag] = made[1]
    ds.PatientName = f"{phi.family}^{phi.given}"
    ds.PatientID = phi.patient_id
    ds.PatientBirthDate = f"{phi.birth_date:%Y%m%d}"
    ds.StudyDate = f"{phi.study_date:%Y%m%d}"
    ds.AccessionNumber = phi.accession
    ds.PatientAddress = f"{phi.street}, {phi.city} {phi.zip_code}"
    ds.PatientTelephoneNumbers = phi.phone
    ds.ReferringPhysicianName = phi.physician.replace(" ", "^")
    ds.InstitutionName = phi.institution
    ds.StudyDescription = f"CT CHEST for {phi.given} {phi.family}"
    ds.SeriesDescription = f"Axial {phi.study_date:%d.%m.%Y} {phi.accession}"
    ds.ImageComments = f"Patient {phi.given} {phi.family}, tel {phi.phone}"
    for keyword in (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "StudyDate",
        "AccessionNumber",
        "PatientAddress",
        "PatientTelephoneNumbers",
        "ReferringPhysicianName",
        "InstitutionName",
    ):
        filled[int(ds[keyword].tag)] = str(ds[keyword].value)
    filled[int(ds["ReferringPhysicianName"].tag)] = phi.physician.split()[-1]
    filled[int(ds["PatientName"].tag)] = phi.family
    # Descriptors are kept and cleaned under Clean Descriptors: score the PHI inside them.
    filled[int(ds["StudyDescription"].tag)] = phi.family
    filled[int(ds["SeriesDescription"].tag)] = phi.accession
    filled[int(ds["ImageComments"].tag)] = phi.family
    person = pydicom.Dataset()
    person.PersonName = phi.physician.replace(" ", "^")
    ds.ContentSequence = [person]
    block = ds.private_block(0x0009, "ACME PHI", create=True)
    block.add_new(0x10, "LO", f"{phi.given} {phi.family}")
    block.add_new(0x11, "LO", phi.ssn)
    block.add_new(0x12, "DS", "1.5")
    filled[0x00091010] = f"{phi.given} {phi.family}"
    filled[0x00091011] = phi.ssn
    ds.SOPClassUID = SecondaryCaptureImageStorage
    for keyword in (
        "SOPInstanceUID",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "FrameOfReferenceUID",
    ):
        setattr(ds, keyword, generate_uid(entropy_srcs=[phi.patient_id, keyword]))
        filled[int(ds[keyword].tag)] = str(getattr(ds, keyword))
    ds.Modality = "US" if image is not None else "OT"
    if image is not None:
        pixels = image.pixels
        ds.Rows, ds.Columns = pixels.shape[:2]
        ds.SamplesPerPixel = 3 if pixels.ndim == 3 else 1
        ds.PhotometricInterpretation = "RGB" if pixels.ndim == 3 else "MONOCHROME2"
        if pixels.ndim == 3:
            ds.PlanarConfiguration = 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.PixelData = pixels.tobytes()
        ds.BurnedInAnnotation = "YES"
        ds.add_new(0x60000010, "US", ds.Rows)
        ds.add_new(0x60000011, "US", ds.Columns)
        ds.add_new(0x60000022, "LO", f"{phi.family} overlay")
        filled[0x60000022] = f"{phi.family} overlay"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds, filled


def _value_for(vr: str, phi: PHI, rng: np.random.Generator) -> tuple[Any, str] | None:
    """A value for one attribute and the part of it that must not survive: long text holds
    the patient's name after a label (what a descriptor really leaks), short strings a
    unique marker, names the patient's name, dates and UIDs themselves."""
    if vr in ("LO", "ST", "LT", "UT", "UC"):
        return f"Patient {phi.given} {phi.family}", f"{phi.given} {phi.family}"
    if vr in ("SH", "CS", "AE"):
        marker = _marker(rng, 10)
        return marker, marker
    if vr == "PN":
        return f"{phi.family}^{phi.given}", phi.family
    if vr == "DA":
        value = f"{rng.integers(1950, 2024)}{rng.integers(1, 13):02d}{rng.integers(1, 29):02d}"
        return value, value
    if vr == "DT":
        value = f"{rng.integers(1950, 2024)}{rng.integers(1, 13):02d}{rng.integers(1, 29):02d}1011"
        return value, value
    if vr == "UI":
        value = f"1.2.826.0.1.3680043.9.{rng.integers(10**8, 10**9)}.{rng.integers(10**8, 10**9)}"
        return value, value
    if vr == "UR":
        value = f"http://{_marker(rng, 8).lower()}.example.org"
        return value, value
    return None


# ------------------------------------------------------------------------------------------
# Free text
# ------------------------------------------------------------------------------------------


def synthetic_report(phi: PHI, rng: np.random.Generator) -> SyntheticReport:
    """A radiology report with PHI in the places real reports put it, between clinical
    sentences whose key terms (``clinical``) must survive scrubbing."""
    fake_date = phi.study_date.strftime(
        str(rng.choice(["%m/%d/%Y", "%d.%m.%Y", "%B %d, %Y", "%d %b %Y", "%Y-%m-%d"]))
    )
    prior = (phi.study_date - dt.timedelta(days=int(rng.integers(30, 900)))).strftime("%d/%m/%Y")
    phi_lines: list[tuple[str, list[tuple[str, str]]]] = [
        (f"Patient: {phi.family}, {phi.given}", [("NAME", phi.family), ("NAME", phi.given)]),
        (
            f"MRN: {phi.patient_id}   Accession #{phi.accession}",
            [("ID", phi.patient_id), ("ID", phi.accession)],
        ),
        (
            f"DOB: {phi.birth_date:%m/%d/%Y}   Exam date: {fake_date}",
            [("DATE", f"{phi.birth_date:%m/%d/%Y}"), ("DATE", fake_date)],
        ),
        (
            f"History: {phi.age}-year-old with cough.",
            [("AGE", str(phi.age))] if phi.age > 89 else [],
        ),
        (
            f"Referring physician: Dr. {phi.physician}",
            [("NAME", n) for n in phi.physician.split() if n[:1].isupper()],
        ),
        (
            f"Address: {phi.street}, {phi.city} {phi.zip_code}",
            [("ADDRESS", phi.street), ("ADDRESS", phi.zip_code)],
        ),
        (
            f"Contact {phi.phone} or {phi.email}; SSN {phi.ssn}.",
            [("PHONE", phi.phone), ("EMAIL", phi.email), ("SSN", phi.ssn)],
        ),
        (f"Comparison: prior exam of {prior}.", [("DATE", prior)]),
        (
            f"Results discussed with {phi.given} {phi.family} by telephone.",
            [("NAME", phi.given), ("NAME", phi.family)],
        ),
        (
            f"Electronically signed by {phi.physician}, {phi.institution}.",
            [("NAME", n) for n in phi.physician.split() if n[:1].isupper()],
        ),
    ]
    chosen = [phi_lines[i] for i in sorted(rng.permutation(len(phi_lines))[:7])]
    clinical = [str(s) for s in rng.choice(CLINICAL_SENTENCES, 4, replace=False)]
    lines = (
        [line for line, _ in chosen[:4]]
        + ["FINDINGS:"]
        + clinical
        + [line for line, _ in chosen[4:]]
    )
    terms = [t for t in CLINICAL_TERMS if any(t in s for s in clinical)]
    return SyntheticReport("\n".join(lines), [p for _, ps in chosen for p in ps], terms)
