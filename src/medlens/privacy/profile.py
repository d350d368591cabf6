"""The action table of the DICOM Basic Application Level Confidentiality Profile.

The Basic Profile column of PS3.15 Annex E Table E.1-1 is not typed by hand here: it comes
from ``dicomanonymizer`` (Kitware's dicom-anonymizer), whose tables are generated from the
published standard (edition 2026c). That package does not carry the option columns, so the
options are applied as rules over the same table, following the definitions of PS3.15 E.3:

- Retain UIDs (E.3.9): every ``U`` becomes ``K``;
- Retain Longitudinal Temporal Information (E.3.6): dates and times are kept (full dates) or
  shifted by a per-patient offset (modified dates), by the VR of the element (DA, DT, TM);
- Retain Patient Characteristics (E.3.7), Device Identity (E.3.8), Institution Identity
  (E.3.12): the attributes of those categories become ``K``;
- Clean Descriptors (E.3.5), Structured Content (E.3.4), Graphics (E.3.3): the free-text
  descriptors, SR content tree and graphic annotations become ``C`` (cleaned, not removed).

Actions (PS3.15 E.1.1): D replace with a dummy, Z empty, X remove, K keep, C clean, U remap
UID. Combined actions are resolved to the one that keeps the object valid without relying on
IOD-specific knowledge: Z/D → D, X/Z → Z, X/D → D, X/Z/D → D, X/Z/U* → U (sequences are
descended into, other VRs emptied).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal

from medlens.errors import require

Action = Literal["D", "Z", "X", "K", "C", "U"]

_GROUPS: dict[str, Action] = {
    "D_TAGS": "D",
    "Z_TAGS": "Z",
    "X_TAGS": "X",
    "U_TAGS": "U",
    "Z_D_TAGS": "D",
    "X_Z_TAGS": "Z",
    "X_D_TAGS": "D",
    "X_Z_D_TAGS": "D",
    "X_Z_U_STAR_TAGS": "U",
}

TABLE_EDITION = "dicomfields_2026c"
"""The edition of Table E.1-1 used; recorded in the audit."""

DATE_VRS = frozenset({"DA", "DT"})
TEXT_VRS = frozenset({"LO", "ST", "LT", "UT", "UC"})
"""Free-text VRs that Clean Descriptors scrubs; SH (16 characters) is too short to be worth
keeping and too long to be safe, so short strings follow the Basic Profile."""

PATIENT_CHARACTERISTICS = frozenset(
    {
        "PatientAge",
        "PatientSex",
        "PatientSexNeutered",
        "PatientSize",
        "PatientWeight",
        "EthnicGroup",
        "EthnicGroupCodeSequence",
        "PregnancyStatus",
        "SmokingStatus",
        "Allergies",
        "MedicalAlerts",
        "SpecialNeeds",
        "PatientState",
    }
)
"""PS3.15 E.3.7 names age, sex, size, weight and the physiological state (pregnancy,
smoking, allergies, alerts) as the characteristics this option keeps."""

_DEVICE = re.compile(
    r"^(Station(Name|AETitle)|Device(SerialNumber|UID|Description|Label|AlternateIdentifier)"
    r"|ManufacturerDevice\w*|DetectorID|XRayDetectorID|XRaySourceID|GantryID|GeneratorID"
    r"|PlateID|CassetteID|SourceSerialNumber|TreatmentMachineName"
    r"|HardcopyCreationDeviceID|(Scheduled|Performed)Station\w*)$"
)
_INSTITUTION = re.compile(r"^Institution(Name|Address|CodeSequence|alDepartment\w*)$")
_DESCRIPTOR = re.compile(
    r"(Description|Comments?|History|Diagnos\w*|Impressions|Notes|Reason\w*|Narrative"
    r"|ProtocolName|TreatmentSite)$",
    re.IGNORECASE,
)
_DESCRIPTOR_EXTRA = frozenset({"ContrastBolusAgent"})
_STRUCTURED = frozenset({"ContentSequence", "AcquisitionContextSequence"})
_GRAPHICS = frozenset({"GraphicAnnotationSequence", "WaveformAnnotationSequence"})


def is_descriptor(keyword: str) -> bool:
    """Whether ``keyword`` names a free-text descriptor in the sense of Clean Descriptors
    (PS3.15 E.3.5): descriptions, comments, history, reasons, protocol names."""
    return bool(_DESCRIPTOR.search(keyword)) or keyword in _DESCRIPTOR_EXTRA


@lru_cache(maxsize=1)
def basic_profile() -> tuple[dict[int, Action], tuple[tuple[int, int, int, int, Action], ...]]:
    """Basic Profile actions by tag, plus the masked repeating groups (curves 50xx, overlays
    60xx) as ``(group, element, group_mask, element_mask, action)``."""
    fields = require(
        f"dicomanonymizer.dicom_anonymization_databases.{TABLE_EDITION}",
        "dicom",
        "The PS3.15 Table E.1-1 action table",
    )
    exact: dict[int, Action] = {}
    masked: list[tuple[int, int, int, int, Action]] = []
    for group_name, action in _GROUPS.items():
        for entry in getattr(fields, group_name):
            if len(entry) == 2:
                exact[(entry[0] << 16) | entry[1]] = action
            else:
                masked.append((entry[0], entry[1], entry[2], entry[3], action))
    return exact, tuple(masked)


def basic_action(tag: int) -> Action | None:
    """The Basic Profile action for ``tag``, or None when the table does not list it."""
    exact, masked = basic_profile()
    if tag in exact:
        return exact[tag]
    group, element = tag >> 16, tag & 0xFFFF
    for g, e, gmask, emask, action in masked:
        if group & gmask == g and element & emask == e:
            return action
    return None


def resolve_action(
    tag: int, keyword: str, vr: str, options: tuple[str, ...]
) -> tuple[Action | None, str]:
    """The action for one element under ``options``; also says which rule decided
    ("basic", the option name, or "vr-date" for dates the table does not list)."""
    action = basic_action(tag)
    is_date = vr in DATE_VRS or (vr == "TM" and action is not None)
    if is_date:
        if "retain-longitudinal-full-dates" in options:
            return "K", "retain-longitudinal-full-dates"
        if "retain-longitudinal-modified-dates" in options:
            # Times stay: a whole-day shift keeps the time of day meaningful (E.3.6).
            kept: Action = "K" if vr == "TM" else "C"
            return kept, "retain-longitudinal-modified-dates"
        if action is None:
            return "Z", "vr-date"
    if action is None:
        return None, "unlisted"
    if action == "U" and "retain-uids" in options:
        return "K", "retain-uids"
    rules = (
        ("retain-patient-characteristics", keyword in PATIENT_CHARACTERISTICS, "K"),
        ("retain-device-identity", bool(_DEVICE.match(keyword)), "K"),
        ("retain-institution-identity", bool(_INSTITUTION.match(keyword)), "K"),
        ("clean-structured-content", keyword in _STRUCTURED, "C"),
        ("clean-graphics", keyword in _GRAPHICS, "C"),
        (
            "clean-descriptors",
            vr in TEXT_VRS and is_descriptor(keyword),
            "C",
        ),
    )
    for option, applies, new_action in rules:
        if applies and option in options:
            return new_action, option  # type: ignore[return-value]
    return action, "basic"
