"""The typed contract between the stages of DESIGN.md's data flow.

``Study`` (medlens.study) → ``Request`` (medlens.tasks) → ``Generation`` (medlens.backends)
→ ``Answer`` (medlens.tasks, with ``Confidence`` from medlens.trust).

All are frozen dataclasses: a stage returns a new object (``dataclasses.replace``) instead of
mutating what it was given, so provenance (audit records, fingerprints) cannot be lost.
Arrays and images are carried as they are; classes holding them use ``eq=False``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

AnswerKind = Literal["closed", "open", "choice", "report", "grounding"]
"""closed: yes/no; open: free short answer; choice: multiple choice; report: findings and
impression; grounding: boxes on the image."""


# --------------------------------------------------------------------------------------------
# Studies
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """A display window in stored (e.g. Hounsfield) units: values in ``center ± width/2``
    map to black..white, as DICOM PS3.3 C.11.2.1.2 (linear VOI LUT function) defines."""

    center: float
    width: float
    name: str = ""


REVIEW_AREA_SHARE = 0.10
"""A redaction covering more than this share of an image marks the study "needs review":
burned-in text rarely takes a tenth of a screen, so more means anatomy may be gone."""


@dataclass(frozen=True)
class RedactionSummary:
    """What pixel de-identification did to one study, in the terms a person checks: shown
    beside each answer (CLI, HTTP, web page) as "N regions, X % of the image redacted".

    A study "needs review" when the redaction may have destroyed what the model is asked
    about or may be incomplete (``review_reasons``: ``"area"`` above
    ``REVIEW_AREA_SHARE``, ``"body"`` a box over the body region, ``"reading-budget"`` a
    conservative fallback where an image's recogniser passes ran out, ``"time-budget"``
    frames of a long stack the study's seconds did not reach), so nobody is told silently
    that a study is fine."""

    searched: bool
    """Whether the pixels were searched for burned-in text at all."""
    regions: int = 0
    """Boxes blacked out, over all slices/frames."""
    redacted_share: float = 0.0
    """Share (0-1) of the pixel area blacked out, over the slices/frames searched."""
    lines_kept: int = 0
    """Text lines found and kept as clinical, non-identifying labels."""
    needs_review: bool = False
    review_reasons: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line for people: "2 regions, 1.4 % of the image redacted (needs review:
        body)"."""
        if not self.searched:
            return "pixels not searched for burned-in text"
        text = (
            f"{self.regions} region{'s' if self.regions != 1 else ''}, "
            f"{100 * self.redacted_share:.1f} % of the image redacted"
        )
        if self.lines_kept:
            text += f", {self.lines_kept} clinical label{'s' if self.lines_kept != 1 else ''} kept"
        if self.needs_review:
            text += f" (needs review: {', '.join(self.review_reasons)})"
        return text


@dataclass(frozen=True)
class AuditRecord:
    """What a protective step did to a study, without the PHI itself.

    ``action`` is e.g. "header-deid", "pixel-redaction", "text-scrub"; ``details`` counts and
    names of attributes/regions changed (never their original values). A "pixel-redaction"
    record also carries its ``redaction`` summary (its fields are in ``details`` too, for
    JSON output).
    """

    action: str
    details: Mapping[str, Any] = field(default_factory=dict)
    redaction: RedactionSummary | None = None


@dataclass(frozen=True, eq=False)
class Study:
    """One imaging study (or series) as medlens holds it.

    ``pixels`` keeps the *stored modality values* after rescale slope/intercept (Hounsfield
    units for CT), shaped ``(slices, rows, cols)`` for grey images and
    ``(slices, rows, cols, 3)`` for colour; a 2D image has one slice. Display (windowing,
    MONOCHROME1 inversion) happens later, in ``medlens.study.display``, so that a recipe can
    choose several windows of the same data.

    ``affine`` maps voxel indices ``(col, row, slice, 1)`` to patient millimetres in DICOM's
    LPS frame (NIfTI's RAS is converted on load); ``None`` when the geometry is unknown
    (plain PNG/JPEG), in which case only ``pixel_spacing`` may be known.
    """

    pixels: np.ndarray
    modality: str = "OT"
    """DICOM modality code: CT, MR, CR, DX, US, PT, NM, XA, SM (pathology), OT (other)."""
    photometric: str = "MONOCHROME2"
    """MONOCHROME1 (higher value = darker, shown inverted), MONOCHROME2, RGB."""
    body_part: str | None = None
    pixel_spacing: tuple[float, float] | None = None
    """(row spacing, column spacing) in mm."""
    slice_thickness: float | None = None
    slice_spacing: float | None = None
    """Distance between slice centres in mm (from geometry, not the header's claim)."""
    affine: np.ndarray | None = None
    windows: tuple[Window, ...] = ()
    """Windows the source proposed (DICOM WindowCenter/Width), first is the default."""
    voi_lut: np.ndarray | None = None
    """A DICOM VOI LUT table applied instead of a window when present."""
    source_format: str = "image"
    """"png", "jpeg", "tiff", "dicom", "dicom-series", "nifti"."""
    headers: tuple[Any, ...] = ()
    """The pydicom datasets behind the slices (without PixelData), for de-identification.
    Empty for non-DICOM sources."""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    """Clinical, non-identifying facts: StudyDescription, SeriesDescription, kVp, ..."""
    prior: Study | None = None
    """An earlier study of the same patient for comparison (prior/current pairs)."""
    deidentified: bool = False
    audit: tuple[AuditRecord, ...] = ()
    burned_in_annotation: bool | None = None
    """DICOM BurnedInAnnotation (None when the source does not say)."""

    @property
    def redaction(self) -> RedactionSummary | None:
        """The summary of this study's pixel redaction (its last "pixel-redaction" audit
        record; the prior study has its own), or None before de-identification."""
        for record in reversed(self.audit):
            if record.redaction is not None:
                return record.redaction
        return None

    @property
    def num_slices(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def is_volume(self) -> bool:
        return self.num_slices > 1

    @property
    def is_color(self) -> bool:
        return self.pixels.ndim == 4

    def summary(self) -> dict[str, Any]:
        """Non-identifying description for logs, JSON output and reports."""
        shape = tuple(int(s) for s in self.pixels.shape)
        return {
            "modality": self.modality,
            "body_part": self.body_part,
            "format": self.source_format,
            "shape": shape,
            "pixel_spacing": self.pixel_spacing,
            "slice_thickness": self.slice_thickness,
            "slice_spacing": self.slice_spacing,
            "deidentified": self.deidentified,
            "has_prior": self.prior is not None,
            "redaction": None
            if self.redaction is None
            else {**vars(self.redaction), "text": self.redaction.describe()},
        }


@dataclass(frozen=True)
class ViewRegion:
    """A rectangle of a view image and how its pixels map back to the study's voxels.

    ``to_voxel`` is a 4×3 matrix: ``[col, row, slice, 1] = to_voxel @ [x, y, 1]`` for a
    view pixel ``(x, y)``. ``projected_axis`` names the voxel axis (0=col, 1=row, 2=slice)
    a projection (MIP) collapsed; that coordinate is then undefined.
    """

    x0: int
    y0: int
    x1: int
    y1: int
    to_voxel: tuple[tuple[float, float, float], ...]
    label: str = ""
    projected_axis: int | None = None


@dataclass(frozen=True, eq=False)
class View:
    """One 2D image made for a model from a study, with the way back to the study."""

    image: Image.Image
    label: str
    regions: tuple[ViewRegion, ...]
    recipe: str = ""
    """Name@version of the recipe that made it."""


# --------------------------------------------------------------------------------------------
# Requests and generations
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ImagePart:
    image: Image.Image


@dataclass(frozen=True)
class TextPart:
    text: str


@dataclass(frozen=True, eq=False)
class Message:
    role: Literal["system", "user", "assistant"]
    content: tuple[TextPart | ImagePart, ...]


@dataclass(frozen=True)
class GenerationOptions:
    """Decoding settings; part of a calibration fingerprint."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    """0 means greedy."""
    top_p: float = 1.0
    num_samples: int = 1
    """>1 draws several answers (self-consistency); needs temperature > 0."""
    seed: int | None = None
    logprobs: bool = True
    top_logprobs: int = 5
    stop: tuple[str, ...] = ()
    score_candidates: bool = False
    """Closed/multiple-choice only: return each candidate's log-likelihood from one forward
    pass instead of (or, for backends that cannot, besides) generating text."""


@dataclass(frozen=True, eq=False)
class Request:
    """What a backend is asked: chat messages with images, plus what the task knows.

    ``candidates`` lists the answer strings of a closed or multiple-choice question so that a
    backend able to score them (forward-only log-likelihood) can do so. ``question`` and
    ``kind`` let baselines (prior, random) answer without reading the messages.
    """

    id: str
    messages: tuple[Message, ...]
    kind: AnswerKind
    question: str
    options: GenerationOptions = GenerationOptions()
    candidates: tuple[str, ...] = ()
    deidentified: bool = False
    """True only when every image and text in ``messages`` went through medlens.privacy.
    Remote backends refuse a request where it is False unless the user built them with
    ``allow_identified=True`` (what ``--no-deid`` does)."""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    """Task facts a baseline may use (question category, modality); never PHI."""

    @property
    def images(self) -> list[Image.Image]:
        return [p.image for m in self.messages for p in m.content if isinstance(p, ImagePart)]


@dataclass(frozen=True)
class TokenLogprob:
    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()
    """The most likely alternatives at this position, (token, logprob), best first."""


@dataclass(frozen=True)
class Timings:
    """Seconds spent per phase; backends fill what they can measure."""

    queue_s: float = 0.0
    preprocess_s: float = 0.0
    prefill_s: float = 0.0
    decode_s: float = 0.0
    total_s: float = 0.0


@dataclass(frozen=True)
class Generation:
    """A backend's answer to one request, before parsing."""

    request_id: str
    text: str
    model: str
    backend: str
    tokens: tuple[TokenLogprob, ...] = ()
    """Per-token log-probabilities of ``text`` when the backend exposes them."""
    candidate_logprobs: Mapping[str, float] = field(default_factory=dict)
    """Log-likelihood of each request candidate (scoring mode), unnormalised."""
    samples: tuple[str, ...] = ()
    """Extra sampled answers when ``num_samples > 1`` (``text`` is the first)."""
    finish_reason: str = "stop"
    """"stop", "length", "scored" (scoring mode, no generation) or "error"."""
    timings: Timings = Timings()
    error: str | None = None
    prompt_tokens: int = 0
    """Tokens of the prompt as the model read it (text and image tokens; 0 when unknown):
    the ``usage.prompt_tokens`` the OpenAI-compatible API reports."""

    @classmethod
    def failed(
        cls, request_id: str, model: str, backend: str, error: str, timings: Timings = Timings()
    ) -> Generation:
        """The generation of a request that got no answer: empty text, ``finish_reason``
        "error" and why, so that a batch is never lost to one bad request."""
        return cls(
            request_id, "", model, backend, finish_reason="error", timings=timings, error=error
        )


# --------------------------------------------------------------------------------------------
# Answers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Box:
    """A box in view-image pixels (x0, y0) top-left, (x1, y1) bottom-right."""

    x0: float
    y0: float
    x1: float
    y1: float
    label: str = ""
    view_index: int = 0
    score: float | None = None


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``(x0, y0, x1, y1)`` boxes (0 for boxes without area):
    the one overlap measure of grounding scores, rewards and burned-in text lines.

    >>> box_iou((0, 0, 10, 10), (5, 0, 15, 10))
    0.3333333333333333
    """
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class Confidence:
    """How sure the answer is, and how that number was obtained.

    ``method``: "candidates" (normalised candidate likelihoods), "sequence" (answer
    likelihood), "consistency" (agreement of k samples), "verbalized" (the model's words),
    "none". ``calibrated`` says whether a calibration profile was applied.
    """

    value: float
    method: str
    calibrated: bool = False
    candidate_probs: Mapping[str, float] = field(default_factory=dict)
    profile: str | None = None


@dataclass(frozen=True)
class Answer:
    """A parsed answer. ``parsed`` is False when the raw text could not be read as the task
    expects; the raw text is always kept, and an unparsed answer is its own outcome in every
    metric, never mapped to an option."""

    kind: AnswerKind
    raw: str
    parsed: bool
    text: str | None = None
    """The normalised short answer ("yes", "left lung", the chosen option's text)."""
    choice: str | None = None
    """Option letter for multiple choice."""
    rationale: str | None = None
    boxes: tuple[Box, ...] = ()
    sections: Mapping[str, str] = field(default_factory=dict)
    """Report sections: findings, impression."""
    confidence: Confidence | None = None
    abstained: bool = False
    abstain_reason: str | None = None
    parse_error: str | None = None
