"""Sanity and robustness probes: controlled changes to what the model sees or reads.

Image probes are view transforms (``Callable[[View], View]``), the ``view_transform`` of
``medlens.pipeline.prepare``/``run``; question shifts are ``Callable[[str], str]`` applied to
an item's question. Both are registries of factories taking the shift's parameters, so a run
names them as ``"jpeg:quality=10"`` (``parse_probe``).

Sanity ("does the image matter?", Agrawal et al. 2018; Goyal et al. 2017): ``blank``,
``noise-image`` and ``swap`` (an image of another sample) replace the image; the accuracy drop
from the real image is the model's *image reliance*, to be read beside the prior baseline
(``medlens.trust.sections.sanity_section``). The "no image at all" run is not a view
transform: it needs a request without images.

Robustness (Hendrycks & Dietterich, ICLR 2019, corruption families): ``gaussian-noise``,
``blur``, ``contrast``, ``jpeg``, ``resolution``, ``rotation``; ``SEVERITIES`` lists default
levels. Random probes are seeded from ``seed`` and the image's pixels, so a probe gives the same
image every time (runs are reproducible and cacheable). Probes keep the view's size, label,
recipe and regions; for grounding, ``rotation`` moves content away from the region mapping.

Question shifts: ``typos`` (seeded character edits) and ``paraphrase`` (English rewrite rules;
see its docstring for what it does not cover).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from medlens.errors import ConfigError
from medlens.registry import Registry
from medlens.types import View

if TYPE_CHECKING:
    from PIL import Image

ViewTransform = Callable[[View], View]
QuestionShift = Callable[[str], str]

PROBES: Registry[Callable[..., ViewTransform]] = Registry("image probe")
QUESTION_SHIFTS: Registry[Callable[..., QuestionShift]] = Registry("question shift")

SANITY_PROBES = ("blank", "noise-image", "swap")
SEVERITIES: dict[str, tuple[dict[str, float], ...]] = {
    "gaussian-noise": ({"sigma": 10}, {"sigma": 25}, {"sigma": 50}),
    "blur": ({"radius": 1}, {"radius": 2}, {"radius": 4}),
    "contrast": ({"factor": 0.5}, {"factor": 0.25}),
    "jpeg": ({"quality": 30}, {"quality": 10}),
    "resolution": ({"scale": 0.5}, {"scale": 0.25}),
    "rotation": ({"degrees": 10}, {"degrees": 30}),
    "typos": ({"rate": 0.05}, {"rate": 0.15}),
    "paraphrase": ({},),
}
"""Default levels per shift, mildest first."""


def _rng(seed: int, *parts: bytes) -> np.random.Generator:
    digest = hashlib.sha256(str(seed).encode())
    for part in parts:
        digest.update(part)
    return np.random.default_rng(int.from_bytes(digest.digest()[:8], "little"))


def _mapped(fn: Callable[[Image.Image], Image.Image]) -> ViewTransform:
    def transform(view: View) -> View:
        return replace(view, image=fn(view.image))

    return transform


# --------------------------------------------------------------------------------------------
# Sanity: replace the image
# --------------------------------------------------------------------------------------------


@PROBES.register("blank")
def blank(value: int = 0) -> ViewTransform:
    """An image of one grey level (black by default), same size and mode.

    >>> from PIL import Image
    >>> view = View(Image.new("L", (64, 48), 200), "AP", ())
    >>> blanked = make_probe("blank")(view)
    >>> blanked.image.size, blanked.image.getextrema(), blanked.label
    ((64, 48), (0, 0), 'AP')
    """
    from PIL import Image

    return _mapped(lambda im: Image.new(im.mode, im.size, _fill(im.mode, value)))


def _fill(mode: str, value: int) -> Any:
    bands = len(mode) if mode in ("RGB", "RGBA") else 1
    return value if bands == 1 else (value,) * bands


@PROBES.register("noise-image")
def noise_image(seed: int = 0) -> ViewTransform:
    """Uniform random pixels, same size and mode (seeded by the original pixels).

    >>> from PIL import Image
    >>> view = View(Image.new("L", (64, 48), 200), "AP", ())
    >>> noise = make_probe("noise-image")(view).image
    >>> noise.getextrema(), noise.tobytes() == make_probe("noise-image")(view).image.tobytes()
    ((0, 255), True)
    """
    from PIL import Image

    def make(im: Image.Image) -> Image.Image:
        shape = np.asarray(im).shape
        pixels = _rng(seed, im.tobytes()).integers(0, 256, size=shape, dtype=np.uint8)
        return Image.fromarray(pixels).convert(im.mode)

    return _mapped(make)


@PROBES.register("swap")
def swap(pool: Sequence[Image.Image | str | os.PathLike[str]], seed: int = 0) -> ViewTransform:
    """The image of another sample: one of ``pool`` (images or image file paths, e.g. the
    views of other questions of the benchmark), chosen by the view's pixels and ``seed``,
    never one with identical pixels; resized to the view's size.

    >>> from PIL import Image
    >>> view = View(Image.new("L", (64, 48), 200), "AP", ())
    >>> other = Image.new("L", (32, 32), 90)  # another question's image
    >>> swapped = make_probe("swap", pool=[view.image, other])(view).image
    >>> swapped.size, swapped.getextrema()
    ((64, 48), (90, 90))
    """
    if not pool:
        raise ConfigError("The 'swap' probe needs a pool of other samples' images.")
    from PIL import Image

    def open_image(item: Image.Image | str | os.PathLike[str]) -> Image.Image:
        return item if isinstance(item, Image.Image) else Image.open(item)

    def make(im: Image.Image) -> Image.Image:
        start = int(_rng(seed, im.tobytes()).integers(0, len(pool)))
        for step in range(len(pool)):
            other = open_image(pool[(start + step) % len(pool)]).convert(im.mode)
            other = other.resize(im.size)
            if other.tobytes() != im.tobytes():
                return other
        raise ConfigError("Every image of the 'swap' pool equals the view; give other images.")

    return _mapped(make)


# --------------------------------------------------------------------------------------------
# Robustness: degrade the image
# --------------------------------------------------------------------------------------------


@PROBES.register("gaussian-noise")
def gaussian_noise(sigma: float = 25.0, seed: int = 0) -> ViewTransform:
    """Additive Gaussian noise of standard deviation ``sigma`` grey levels (0-255).

    >>> from PIL import Image
    >>> view = View(Image.new("L", (64, 48), 128), "AP", ())
    >>> noisy = np.asarray(make_probe("gaussian-noise:sigma=10")(view).image, dtype=float)
    >>> round(float((noisy - 128).std()))
    10
    """
    from PIL import Image

    def make(im: Image.Image) -> Image.Image:
        pixels = np.asarray(im).astype(float)
        noise = _rng(seed, im.tobytes()).normal(0.0, sigma, size=pixels.shape)
        return Image.fromarray(
            np.rint(np.clip(pixels + noise, 0, 255)).astype(np.uint8), mode=im.mode
        )

    return _mapped(make)


@PROBES.register("blur")
def blur(radius: float = 2.0) -> ViewTransform:
    """Gaussian blur of ``radius`` pixels (PIL ``GaussianBlur``).

    >>> from PIL import Image
    >>> edge = np.repeat(np.array([[0] * 32 + [255] * 32], dtype=np.uint8), 48, axis=0)
    >>> blurred = make_probe("blur:radius=2")(View(Image.fromarray(edge), "AP", ())).image
    >>> [blurred.getpixel((x, 0)) for x in (28, 31, 32, 35)]  # was 0, 0, 255, 255
    [10, 103, 152, 245]
    """
    from PIL import ImageFilter

    return _mapped(lambda im: im.filter(ImageFilter.GaussianBlur(radius)))


@PROBES.register("contrast")
def contrast(factor: float = 0.5) -> ViewTransform:
    """Contrast scaled by ``factor`` around the mean grey (PIL ``ImageEnhance.Contrast``;
    1 keeps the image, 0 makes it flat grey).

    >>> from PIL import Image
    >>> ramp = Image.fromarray(np.tile(np.arange(0, 256, 4, dtype=np.uint8), (48, 1)))
    >>> make_probe("contrast")(View(ramp, "AP", ())).image.getextrema()  # was (0, 252)
    (63, 189)
    """
    from PIL import ImageEnhance

    return _mapped(lambda im: ImageEnhance.Contrast(im).enhance(factor))


@PROBES.register("jpeg")
def jpeg(quality: int = 10) -> ViewTransform:
    """A JPEG round trip at ``quality`` (1-95): block and ringing artefacts.

    >>> from PIL import Image
    >>> ramp = Image.fromarray(np.tile(np.arange(0, 256, 4, dtype=np.uint8), (48, 1)))
    >>> coded = make_probe("jpeg:quality=10")(View(ramp, "AP", ())).image
    >>> coded.size, coded.mode, int(np.abs(np.asarray(coded, int) - np.asarray(ramp, int)).max())
    ((64, 48), 'L', 8)
    """
    from PIL import Image

    def make(im: Image.Image) -> Image.Image:
        buffer = io.BytesIO()
        im.convert("L" if im.mode in ("L", "I", "I;16", "F") else "RGB").save(
            buffer, format="JPEG", quality=int(quality)
        )
        return Image.open(io.BytesIO(buffer.getvalue())).convert(im.mode)

    return _mapped(make)


@PROBES.register("resolution")
def resolution(scale: float = 0.5) -> ViewTransform:
    """Down-sample by ``scale`` and back to the original size: detail is lost, size kept.

    >>> from PIL import Image
    >>> checker = Image.fromarray((np.indices((48, 64)).sum(axis=0) % 2 * 255).astype(np.uint8))
    >>> coarse = make_probe("resolution:scale=0.25")(View(checker, "AP", ())).image
    >>> coarse.size, coarse.getextrema()  # the one-pixel checkerboard is grey now
    ((64, 48), (127, 128))
    """
    from PIL import Image

    def make(im: Image.Image) -> Image.Image:
        small = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        return im.resize(small, Image.Resampling.BILINEAR).resize(
            im.size, Image.Resampling.BILINEAR
        )

    return _mapped(make)


@PROBES.register("rotation")
def rotation(degrees: float = 15.0) -> ViewTransform:
    """Rotation by ``degrees`` counter-clockwise about the centre, same size, black corners.

    >>> from PIL import Image
    >>> ramp = Image.fromarray(np.tile(np.arange(0, 256, 4, dtype=np.uint8), (48, 1)))
    >>> turned = make_probe("rotation:degrees=90")(View(ramp, "AP", ())).image
    >>> turned.size, turned.getpixel((32, 0)), turned.getpixel((32, 47))  # dark left is down
    ((64, 48), 220, 32)
    """
    from PIL import Image

    return _mapped(lambda im: im.rotate(degrees, resample=Image.Resampling.BILINEAR))


# --------------------------------------------------------------------------------------------
# Question shifts
# --------------------------------------------------------------------------------------------

_KEYBOARD = ["qwertyuiop", "asdfghjkl", "zxcvbnm"]


def _neighbour(ch: str, rng: np.random.Generator) -> str:
    for row in _KEYBOARD:
        i = row.find(ch.lower())
        if i >= 0:
            options = [row[j] for j in (i - 1, i + 1) if 0 <= j < len(row)]
            return str(options[int(rng.integers(0, len(options)))])
    return ch


@QUESTION_SHIFTS.register("typos")
def typos(rate: float = 0.05, seed: int = 0) -> QuestionShift:
    """Each word of three letters or more gets, with probability ``rate``, one edit: swap two
    neighbouring letters, drop one, double one, or hit a keyboard neighbour. Seeded by
    ``seed`` and the question, so a question always gets the same typos.

    >>> make_question_shift("typos:rate=0.3,seed=2")("Is there a pneumothorax on the left?")
    'Is there a pnuemothorax on the left?'
    """

    def shift(question: str) -> str:
        rng = _rng(seed, question.encode())

        def edit(match: re.Match[str]) -> str:
            word = match.group(0)
            if rng.uniform() >= rate:
                return word
            i = int(rng.integers(0, len(word) - 1))
            kind = int(rng.integers(0, 4))
            if kind == 0:
                return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
            if kind == 1:
                return word[:i] + word[i + 1 :]
            if kind == 2:
                return word[:i] + word[i] + word[i:]
            return word[:i] + _neighbour(word[i], rng) + word[i + 1 :]

        return re.sub(r"[A-Za-z]{3,}", edit, question)

    return shift


_PARAPHRASES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), template)
    for pattern, template in (
        (r"^is there (?:an? |any )?(.+?)\??$", r"Does the image show any \1?"),
        (r"^are there (?:any )?(.+?)\??$", r"Does the image show any \1?"),
        (r"^does (?:this|the) image show (.+?)\??$", r"Is there \1 in the image?"),
        (r"^what organ (.+?)\??$", r"Which organ \1?"),
        (r"^which organ (.+?)\??$", r"What organ \1?"),
        (r"^where is (.+?)\??$", r"In which location is \1?"),
        (r"^how many (.+?)\??$", r"Can you count how many \1?"),
        (r"^what modality (.+?)\??$", r"Which imaging modality \1?"),
        (r"^what (?:kind|type) of (.+?)\??$", r"Which \1?"),
        (r"^is (?:this|the image) (?:an? )?(.+?)\??$", r"Would you say the image is \1?"),
    )
)


@QUESTION_SHIFTS.register("paraphrase")
def paraphrase() -> QuestionShift:
    """Rewrite a question by the first matching English template ("Is there X?" -> "Does
    the image show any X?", "How many X?" -> "Can you count how many X?", ...); a question no
    template matches is prefixed with "Looking at the image, ". Limits: English only; a
    template can change emphasis ("any" for "a"); compound questions and other languages
    (SLAKE's Chinese rows) only get the prefix.

    >>> rewrite = make_question_shift("paraphrase")
    >>> rewrite("Is there a pneumothorax?")
    'Does the image show any pneumothorax?'
    >>> rewrite("Which side is the effusion on?")
    'Looking at the image, which side is the effusion on?'
    """

    def shift(question: str) -> str:
        text = question.strip()
        for pattern, template in _PARAPHRASES:
            if pattern.match(text):
                return pattern.sub(template, text)
        return f"Looking at the image, {text[:1].lower()}{text[1:]}"

    return shift


# --------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------


def parse_probe(spec: str) -> tuple[str, dict[str, Any]]:
    """``"jpeg:quality=10"`` -> ``("jpeg", {"quality": 10})``; numbers become int or float."""
    name, _, rest = spec.partition(":")
    params: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = part.partition("=")
        if not sep:
            raise ConfigError(f"Probe parameter '{part}' in '{spec}' is not key=value.")
        try:
            params[key.strip()] = int(value) if re.fullmatch(r"-?\d+", value) else float(value)
        except ValueError:
            params[key.strip()] = value
    return name.strip().lower(), params


def probe_name(name: str, params: dict[str, Any]) -> str:
    """The canonical spec of a probe, the inverse of ``parse_probe`` (report labels)."""
    inner = ",".join(f"{k}={v}" for k, v in sorted(params.items()))
    return f"{name}:{inner}" if inner else name


def make_probe(spec: str, **extra: Any) -> ViewTransform:
    """The view transform a spec names; ``extra`` supplies non-scalar arguments (``pool``)."""
    name, params = parse_probe(spec)
    return PROBES.get(name)(**params, **extra)


def make_question_shift(spec: str) -> QuestionShift:
    """The question shift a spec names (``"typos:rate=0.1,seed=1"``, ``"paraphrase"``)."""
    name, params = parse_probe(spec)
    return QUESTION_SHIFTS.get(name)(**params)
