"""De-identify a whole ``Study``: headers, pixels, metadata, and its prior, with audit records.

This is the step ``medlens.pipeline`` runs before any backend (DESIGN.md data flow); remote
backends refuse a study whose ``deidentified`` flag is not set (``require_deidentified``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from medlens.errors import PrivacyError
from medlens.privacy.policy import DeidPolicy
from medlens.types import REVIEW_AREA_SHARE, AuditRecord, RedactionSummary, Study

if TYPE_CHECKING:
    from medlens.privacy.labels import Identifiers
    from medlens.privacy.pixels import DetectorSettings, RegionCache, TextRegion

TEXT_PRONE_MODALITIES = frozenset({"US", "OT", "SC", "XA", "ES", "DOC", "IVUS", "OP", "XC"})
"""Modalities whose images usually show text on screen (ultrasound, secondary capture,
endoscopy/photographs, angiography screens): in "auto" mode they are searched by OCR when
BurnedInAnnotation is absent."""

NON_DICOM_FORMATS = frozenset({"png", "jpeg", "jpg", "tiff", "image", "video"})

_IDENTIFYING_METADATA = (
    "patient",
    "accession",
    "physician",
    "operator",
    "institution",
    "station",
    "birth",
    "address",
    "telephone",
    "name",
)
"""Metadata keys holding any of these words are dropped outright whatever the policy.
``Study.metadata`` should carry only clinical facts; this is the safety net."""


def ocr_reason(study: Study, policy: DeidPolicy) -> str | None:
    """Why this study's pixels must be searched for text, or None when they need not be."""
    if policy.ocr == "never":
        return None
    if policy.ocr_pixels_always:
        return "policy"
    if study.burned_in_annotation is True:
        return "burned-in-annotation"
    if study.burned_in_annotation is False:
        return None
    if study.source_format in NON_DICOM_FORMATS:
        return "image-source"
    if study.modality.upper() in TEXT_PRONE_MODALITIES:
        return "text-prone-modality"
    return None


def _merge_header_audits(records: Iterable[AuditRecord]) -> AuditRecord:
    """One header record for the slices of a series: attribute lists united, counts summed."""
    merged: dict[str, Any] = {}
    count = 0
    for record in records:
        count += 1
        for key, value in record.details.items():
            if isinstance(value, list) and key.endswith("_attributes"):
                merged[key] = sorted(set(merged.get(key, [])) | set(value))
            elif isinstance(value, int) and not isinstance(value, bool):
                merged[key] = merged.get(key, 0) + value
            else:
                merged.setdefault(key, value)
    merged["datasets"] = count
    return AuditRecord("header-deid", merged)


def _metadata_action(key: str, policy: DeidPolicy, dicom: bool) -> str:
    """What happens to one metadata entry: "drop", "scrub" or "keep".

    Entries named after a DICOM attribute follow that attribute's action under the policy
    (PS3.15 Table E.1-1), so metadata never keeps what the header loses; free-text
    descriptors of other sources (a NIfTI ``description``) follow Clean Descriptors; the rest
    (image format, frame counts) is kept, with strings scrubbed as a safety net."""
    from medlens.privacy.profile import is_descriptor, resolve_action

    if any(word in key.lower() for word in _IDENTIFYING_METADATA):
        return "drop"
    if dicom:
        from pydicom.datadict import dictionary_VR, tag_for_keyword

        tag = tag_for_keyword(key)
        if tag is not None:
            action, _ = resolve_action(tag, key, dictionary_VR(tag), policy.options)
            return {None: "keep", "K": "keep", "C": "scrub"}.get(action, "drop")
    if is_descriptor(key):
        return "scrub" if policy.has("clean-descriptors") else "drop"
    return "keep"


def scrub_metadata(
    metadata: Mapping[str, Any], policy: DeidPolicy, *, dicom: bool = False
) -> tuple[dict[str, Any], dict[str, int]]:
    """Drop identifying entries and free-text descriptors (unless Clean Descriptors), scrub
    the free text that stays; returns counts for the audit. ``dicom`` says the keys may be
    DICOM keywords (the source had headers)."""
    from medlens.privacy.text import scrub_text

    out: dict[str, Any] = {}
    dropped = scrubbed = 0
    for key, value in metadata.items():
        if _metadata_action(key, policy, dicom) == "drop":
            dropped += 1
            continue
        if isinstance(value, str):
            result = scrub_text(value)
            scrubbed += len(result.spans)
            value = result.text
        out[key] = value
    return out, {"metadata_keys_dropped": dropped, "metadata_spans_scrubbed": scrubbed}


def region_cache(policy: DeidPolicy) -> RegionCache | None:
    """The text-region cache of ``policy`` (None when it turns caching off)."""
    from medlens.privacy.pixels import RegionCache
    from medlens.privacy.policy import medlens_home

    if not policy.cache_regions:
        return None
    return RegionCache(medlens_home() / "cache" / "text-regions", policy.project_key)


FRAME_SAMPLE = 8
"""Frames read in a multi-frame image before deciding whether its text is static."""


def _distinct(regions: Iterable[TextRegion]) -> list[TextRegion]:
    """One region per line found on several frames: regions of the same decision whose
    boxes overlap by half become one, over the union of their boxes (the detector's box
    moves by a pixel or two with the texture under the text)."""
    from dataclasses import replace as copy_with

    from medlens.privacy.pixels import overlap

    out: list[TextRegion] = []
    for r in regions:
        box = (r.x0, r.y0, r.x1, r.y1)
        for k, other in enumerate(out):
            if (
                other.redact == r.redact
                and overlap(box, (other.x0, other.y0, other.x1, other.y1)) >= 0.5
            ):
                out[k] = copy_with(
                    other,
                    x0=min(r.x0, other.x0),
                    y0=min(r.y0, other.y0),
                    x1=max(r.x1, other.x1),
                    y1=max(r.y1, other.y1),
                )
                break
        else:
            out.append(r)
    return out


def _static(pixels: np.ndarray, frames: list[int], regions: list[TextRegion]) -> bool:
    """Whether every region to redact shows the same pixels (within 2 grey levels on
    average) on all of ``frames``: a burned-in overlay, not moving anatomy."""
    for r in regions:
        if not r.redact:
            continue
        crops = pixels[frames, r.y0 : r.y1, r.x0 : r.x1].astype(np.float32)
        if float(np.abs(crops - crops[:1]).mean()) > 2.0:
            return False
    return True


def redact_slices(
    pixels: np.ndarray,
    cache: RegionCache | None = None,
    *,
    identifiers: Identifiers | None = None,
    redact_all: bool = False,
    key: bytes = b"",
    fixed: list[TextRegion] | None = None,
    budget_s: float = 30.0,
    settings: DetectorSettings | None = None,
) -> tuple[np.ndarray, RedactionSummary, list[TextRegion]]:
    """Redact burned-in text on every slice/frame of a (frames, rows, cols[, 3]) array;
    returns the redacted copy, its summary and the distinct lines found.

    A stack of more than ``FRAME_SAMPLE`` frames (a cine loop, a volume) is read on that
    many evenly spaced frames, and on every frame when the text to redact is not static
    there (the same pixels on each frame read). The union of the boxes found is blacked out
    on every frame: exact for burned-in text, which does not move, conservative where text
    does. Frames the ``budget_s`` seconds did not reach are covered by that union too, and
    the summary says "time-budget"; it says "reading-budget" when a frame's own budget
    (``settings.reading_budget``) left lines unread or not looked along (``hurried``).
    ``fixed`` regions (a recipe's) go on every frame."""
    from medlens.privacy.pixels import body_overlap, detect_text, redaction_mask

    count = int(pixels.shape[0])
    start = time.perf_counter()
    reasons: set[str] = set()
    sample = sorted({round(i) for i in np.linspace(0, count - 1, min(count, FRAME_SAMPLE))})

    def read(index: int) -> list[TextRegion]:
        return detect_text(
            pixels[index],
            settings=settings,
            cache=cache,
            identifiers=identifiers,
            redact_all=redact_all,
            key=key,
        )

    found: dict[int, list[TextRegion]] = {}
    for index in sample:
        if found and time.perf_counter() - start > budget_s:
            reasons.add("time-budget")
            break
        found[index] = read(index)
    union = _distinct(r for regions in found.values() for r in regions)
    if count > len(sample) and not _static(pixels, list(found), union):
        for index in range(count):
            if index in found:
                continue
            if time.perf_counter() - start > budget_s:
                reasons.add("time-budget")
                break
            found[index] = read(index)
        union = _distinct(r for regions in found.values() for r in regions)
    extra = list(fixed or [])
    out = pixels.copy()
    blacked = 0
    for index in range(count):
        # The union on every frame: text found on one frame is blacked out on all of them
        # (conservative where text moves; exact where it is static, as burned-in text is).
        mask = redaction_mask(pixels.shape[1:3], union + extra)
        if mask.any():
            out[index][mask] = pixels[index].min()
            blacked += int(mask.sum())
    if any(r.hurried for regions in found.values() for r in regions):
        reasons.add("reading-budget")
    middle = found.get(sample[len(sample) // 2], union)
    if body_overlap(pixels[sample[len(sample) // 2]], middle + extra):
        reasons.add("body")
    share = blacked / max(1, count * pixels.shape[1] * pixels.shape[2])
    if share > REVIEW_AREA_SHARE:
        reasons.add("area")
    lines = _distinct(union + extra)
    summary = RedactionSummary(
        searched=True,
        regions=sum(r.redact for r in lines),
        redacted_share=share,
        lines_kept=sum(not r.redact for r in lines),
        needs_review=bool(reasons),
        review_reasons=tuple(sorted(reasons)),
    )
    return out, summary, lines


def recipe_regions(policy: DeidPolicy, ds: Any, pixels: np.ndarray) -> list[TextRegion]:
    """The recipe's fixed regions for the device of ``ds`` and the size of ``pixels``
    (frames, rows, cols[, 3])."""
    from medlens.privacy.pixels import fixed_regions

    if policy.recipe is None:
        return []
    rows, cols = int(pixels.shape[1]), int(pixels.shape[2])
    return [
        region
        for name, box in policy.recipe.pixel_boxes(ds, rows, cols)
        for region in fixed_regions([box], (rows, cols), f"recipe:{name}")
    ]


def _mark_pixels_clean(headers: tuple[Any, ...]) -> None:
    """Record the Clean Pixel Data option (CID 7050 113101) in headers whose pixels were
    searched and redacted, and clear BurnedInAnnotation."""
    from pydicom import Dataset
    from pydicom.sr.codedict import codes

    code = codes.DCM.CleanPixelDataOption
    for ds in headers:
        ds.BurnedInAnnotation = "NO"
        items = list(ds.get("DeidentificationMethodCodeSequence", []))
        if not any(getattr(i, "CodeValue", "") == code.value for i in items):
            item = Dataset()
            item.CodeValue, item.CodingSchemeDesignator = code.value, code.scheme_designator
            item.CodeMeaning = code.meaning
            items.append(item)
            ds.DeidentificationMethodCodeSequence = items


def deidentify(study: Study, *, policy: DeidPolicy | None = None) -> Study:
    """A new ``Study`` with headers de-identified (PS3.15 Annex E), burned-in text redacted
    when BurnedInAnnotation is YES or the policy/source calls for OCR, metadata scrubbed,
    ``deidentified=True`` and audit records appended (counts and keywords, never values).
    The prior study, if any, is de-identified with the same policy (same date shift)."""
    policy = policy or DeidPolicy()
    records: list[AuditRecord] = []
    headers = study.headers
    if headers:
        from medlens.privacy.header import deidentify_dataset

        pairs = [deidentify_dataset(ds, policy) for ds in headers]
        headers = tuple(ds for ds, _ in pairs)
        records.append(_merge_header_audits(record for _, record in pairs))
    reason = ocr_reason(study, policy)
    pixels = study.pixels
    burned = study.burned_in_annotation
    if reason is None:
        why = "ocr=never" if policy.ocr == "never" else "BurnedInAnnotation=NO or not text-prone"
        unsearched = RedactionSummary(searched=False)
        records.append(
            AuditRecord("pixel-redaction", {**asdict(unsearched), "reason": why}, unsearched)
        )
        if study.burned_in_annotation is True:
            records.append(AuditRecord("warning", {"pixels": "BurnedInAnnotation=YES kept"}))
    else:
        from medlens.privacy.labels import Identifiers

        identifiers = Identifiers.merge(Identifiers.from_dataset(ds) for ds in study.headers)
        pixels, summary, lines = redact_slices(
            study.pixels,
            region_cache(policy),
            identifiers=identifiers,
            redact_all=policy.redact_all_text,
            key=policy.project_key,
            fixed=recipe_regions(policy, study.headers[0] if study.headers else None, study.pixels),
            budget_s=policy.time_budget_s,
        )
        details = {
            "reason": reason,
            "slices_searched": study.num_slices,
            **asdict(summary),
            "lines": [line.audit() for line in lines],
        }
        records.append(AuditRecord("pixel-redaction", details, summary))
        if headers:
            _mark_pixels_clean(headers)
        burned = False
    metadata, meta_counts = scrub_metadata(study.metadata, policy, dicom=bool(study.headers))
    records.append(AuditRecord("text-scrub", meta_counts))
    prior = deidentify(study.prior, policy=policy) if study.prior is not None else None
    return replace(
        study,
        pixels=pixels,
        headers=headers,
        metadata=metadata,
        prior=prior,
        deidentified=True,
        burned_in_annotation=burned,
        audit=study.audit + tuple(records),
    )


def require_deidentified(study: Study, *, destination: str = "a remote backend") -> None:
    """Raise ``PrivacyError`` unless ``study`` (and its prior) went through ``deidentify``."""
    for item, label in ((study, "study"), (study.prior, "prior study")):
        if item is not None and not item.deidentified:
            raise PrivacyError(
                f"The {label} was not de-identified, so it may not be sent to {destination}. "
                "Run medlens.privacy.deidentify(study) first, or turn de-identification off "
                "explicitly (deidentify=False / --no-deid) if the data holds no PHI."
            )
