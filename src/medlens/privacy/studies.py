"""De-identify a whole ``Study``: headers, pixels, metadata, and its prior, with audit records.

This is the step ``medlens.pipeline`` runs before any backend (DESIGN.md data flow); remote
backends refuse a study whose ``deidentified`` flag is not set (``require_deidentified``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from medlens.errors import PrivacyError
from medlens.privacy.policy import DeidPolicy
from medlens.types import REVIEW_AREA_SHARE, AuditRecord, RedactionSummary, Study

if TYPE_CHECKING:
    from medlens.privacy.pixels import RegionCache

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


def redact_slices(
    pixels: np.ndarray, cache: RegionCache | None = None
) -> tuple[np.ndarray, RedactionSummary]:
    """Run ``redact_burned_in_text`` on every slice of a (slices, rows, cols[, 3]) array;
    returns the redacted copy and its summary (area share, whether it needs review)."""
    from medlens.privacy.pixels import body_overlap, redact_burned_in_text, redaction_mask

    out = pixels.copy()
    regions = blacked = 0
    reasons: set[str] = set()
    for index in range(pixels.shape[0]):
        cleaned, found = redact_burned_in_text(pixels[index], cache=cache)
        if found:
            out[index] = np.asarray(cleaned)
            regions += len(found)
            blacked += int(redaction_mask(pixels.shape[1:3], found).sum())
            if body_overlap(pixels[index], found):
                reasons.add("body")
    share = blacked / max(1, pixels.shape[0] * pixels.shape[1] * pixels.shape[2])
    if share > REVIEW_AREA_SHARE:
        reasons.add("area")
    summary = RedactionSummary(
        searched=True,
        regions=regions,
        redacted_share=share,
        needs_review=bool(reasons),
        review_reasons=tuple(sorted(reasons)),
    )
    return out, summary


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
        pixels, summary = redact_slices(study.pixels, region_cache(policy))
        details = {"reason": reason, "slices_searched": study.num_slices, **asdict(summary)}
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
