"""DICOM header de-identification (PS3.15 Annex E, Basic Application Level Confidentiality
Profile with the options of ``DeidPolicy``).

What happens to a dataset, in order (PS3.15 E.1.1):

1. every element is given the action of Table E.1-1 (see ``medlens.privacy.profile``),
   recursively inside sequences; person names (PN) the table does not list are replaced too;
2. private elements are removed (all of them, or only the numeric ones under
   "retain-safe-private"), and so are the overlay (60xx) and curve (50xx) groups, which can
   carry text as bitmaps or strings;
3. UIDs are remapped with a keyed hash (``pydicom.uid.generate_uid`` with the project key as
   entropy), so the same original UID gives the same new one in every file and run;
4. dates are shifted by a per-patient number of days under
   "retain-longitudinal-modified-dates", so intervals between studies are kept;
5. PatientIdentityRemoved, DeidentificationMethod, DeidentificationMethodCodeSequence
   (CID 7050) and LongitudinalTemporalInformationModified record what was done.
"""

from __future__ import annotations

import datetime as _dt
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import medlens
from medlens.errors import PrivacyError, require
from medlens.privacy.policy import OPTION_CODES, DeidPolicy
from medlens.privacy.profile import TABLE_EDITION, Action, resolve_action
from medlens.privacy.text import scrub_text
from medlens.types import AuditRecord

if TYPE_CHECKING:
    from pydicom import Dataset
    from pydicom.dataelem import DataElement

_DUMMY_TEXT = "ANONYMIZED"
_NUMERIC_VRS = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "IS", "DS", "UV", "SV"})


@dataclass
class _Run:
    """State of one dataset's de-identification: the policy, the patient's date shift and
    what was done (keywords and counts only)."""

    policy: DeidPolicy
    patient_key: str
    shift_days: int
    actions: dict[str, set[str]] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)

    def note(self, action: str, elem: DataElement) -> None:
        name = elem.keyword or f"({elem.tag.group:04X},{elem.tag.element:04X})"
        self.actions.setdefault(action, set()).add(name)


def remap_uid(uid: str, policy: DeidPolicy) -> str:
    """The replacement of ``uid`` under the project key: ``2.25.`` followed by a 128-bit
    keyed hash as a decimal integer (the UUID-derived form of PS3.5 B.2), so the same
    original gives the same new UID in every file and run sharing the key.
    (``pydicom.uid.generate_uid(prefix=None)`` ignores its entropy sources, so it cannot.)"""
    return f"2.25.{int(policy.keyed_hash('uid', uid.strip())[:32], 16)}"


def pseudonym(value: str, policy: DeidPolicy, *, kind: str = "ID", length: int = 12) -> str:
    """A stable, keyed replacement for an identifier (patient id, accession number)."""
    return f"{kind}{policy.keyed_hash(kind, value.strip())[:length].upper()}"


def _shift_date(value: str, days: int) -> str | None:
    """Shift a DA (YYYYMMDD) or the date part of a DT; None when it is not a date."""
    text = value.strip()
    if len(text) < 8 or not text[:8].isdigit():
        return None
    try:
        day = _dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None
    return (day + _dt.timedelta(days=days)).strftime("%Y%m%d") + text[8:]


def _dummy(vr: str) -> Any:
    """A non-empty value valid for ``vr`` (action D)."""
    return {
        "DA": "19000101",
        "DT": "19000101000000",
        "TM": "000000",
        "PN": "ANONYMOUS",
        "AS": "000Y",
        "IS": "0",
        "DS": "0",
        "CS": _DUMMY_TEXT,
        "AE": _DUMMY_TEXT,
        "UI": None,
    }.get(vr, _DUMMY_TEXT if vr in {"LO", "SH", "ST", "LT", "UT", "UC", "UR"} else None)


def _map_values(elem: DataElement, fn: Any) -> None:
    """Apply ``fn`` to each value of a (possibly multi-valued) string element."""
    from pydicom.multival import MultiValue

    if isinstance(elem.value, (list, MultiValue)):
        elem.value = [fn(str(v)) for v in elem.value]
    elif elem.value not in (None, ""):
        elem.value = fn(str(elem.value))


def _clean(elem: DataElement, run: _Run) -> None:
    """Action C: keep the element but remove identifying content from it."""
    if elem.VR in ("DA", "DT"):
        shifted = []

        def shift(v: str) -> str:
            new = _shift_date(v, run.shift_days)
            shifted.append(new is not None)
            return new or ""

        _map_values(elem, shift)
        run.counts["dates_shifted"] += sum(shifted)
    elif elem.VR == "SQ":
        for item in elem.value:
            _walk(item, run, clean_text=True)
    elif elem.VR == "PN":
        elem.value = _dummy("PN")
    elif isinstance(elem.value, (str, list)) or elem.VR in ("LO", "SH", "ST", "LT", "UT", "UC"):
        scrubbed = []

        def scrub(v: str) -> str:
            result = scrub_text(v)
            scrubbed.append(len(result.spans))
            return result.text

        _map_values(elem, scrub)
        run.counts["text_spans_scrubbed"] += sum(scrubbed)


def _replace(elem: DataElement, run: _Run) -> None:
    """Action D: a dummy value; identifiers get keyed pseudonyms so studies stay linked."""
    keyword = elem.keyword
    if elem.VR == "SQ":
        elem.value = []
    elif keyword == "PatientID":
        elem.value = pseudonym(run.patient_key, run.policy, kind="ML")
    elif keyword == "PatientName":
        elem.value = f"ANON^{pseudonym(run.patient_key, run.policy, kind='P', length=8)}"
    elif elem.VR in ("DA", "DT") and run.policy.has("retain-longitudinal-modified-dates"):
        _clean(elem, run)
    elif elem.VR == "UI":
        _map_values(elem, lambda v: remap_uid(v, run.policy))
    else:
        value = _dummy(elem.VR)
        elem.value = value if value is not None else (b"" if elem.VR.startswith("O") else None)


def _apply(ds: Dataset, elem: DataElement, action: Action, run: _Run) -> None:
    if action == "X":
        del ds[elem.tag]
    elif action == "Z":
        elem.value = [] if elem.VR == "SQ" else (b"" if elem.VR.startswith("O") else None)
    elif action == "D":
        _replace(elem, run)
    elif action == "C":
        _clean(elem, run)
    elif action == "U":
        if elem.VR == "SQ":  # X/Z/U*: descend and remap the UIDs inside
            for item in elem.value:
                _walk(item, run, clean_text=False)
            return
        if elem.VR != "UI":
            elem.value = None
        else:
            _map_values(elem, lambda v: remap_uid(v, run.policy) if v else v)
            run.counts["uids_remapped"] += 1
    elif action == "K":
        if elem.keyword == "PatientAge" and str(elem.value or "")[:3].isdigit():
            # HIPAA Safe Harbor: ages over 89 are aggregated into one category.
            if str(elem.value).endswith("Y") and int(str(elem.value)[:3]) > 89:
                elem.value = "090Y"
        elif elem.VR == "SQ":
            for item in elem.value:
                _walk(item, run, clean_text=False)


def _is_well_known_uid(value: str) -> bool:
    from pydicom._uid_dict import UID_dictionary

    return value.strip() in UID_dictionary


def _walk(ds: Dataset, run: _Run, *, clean_text: bool) -> None:
    """Apply the profile to every element of ``ds`` and of its sequences."""
    from pydicom.datadict import dictionary_VR

    recipe = run.policy.recipe
    for elem in list(ds):
        tag = int(elem.tag)
        group = elem.tag.group
        override = recipe.header_action(tag, elem.keyword or "") if recipe else None
        if override is not None:
            run.note(override, elem)
            run.counts["rule:recipe"] += 1
            _apply(ds, elem, override, run)
            continue
        if elem.tag.is_private:
            if run.policy.has("retain-safe-private") and elem.VR in _NUMERIC_VRS:
                continue
            if elem.tag.element < 0x0100 and elem.tag.element >= 0x0010:
                run.counts["private_creators_removed"] += 1
            else:
                run.counts["private_removed"] += 1
            del ds[elem.tag]
            continue
        if 0x5000 <= group <= 0x50FF or 0x6000 <= group <= 0x60FF:
            run.note("X", elem)
            del ds[elem.tag]
            continue
        vr = elem.VR
        if vr in ("UN", None):
            try:
                vr = dictionary_VR(tag)
            except KeyError:
                vr = "UN"
        action, rule = resolve_action(tag, elem.keyword or "", vr, run.policy.options)
        if action is None:
            action = _unlisted_action(elem, run, clean_text)
        if action is None:
            continue
        if action != "K" or rule != "basic":
            run.note(action, elem)
        run.counts[f"rule:{rule}"] += 1
        _apply(ds, elem, action, run)


def _unlisted_action(elem: DataElement, run: _Run, clean_text: bool) -> Action | None:
    """Elements Table E.1-1 does not list: person names are replaced and instance UIDs
    remapped anyway (they are identifying whatever their tag); text inside cleaned
    structures is scrubbed; sequences are descended into."""
    if elem.VR == "PN":
        return "D"
    if elem.VR == "UI":
        values = elem.value if isinstance(elem.value, list) else [elem.value]
        unknown = any(v and not _is_well_known_uid(str(v)) for v in values)
        if unknown and not run.policy.has("retain-uids"):
            return "U"
        return None
    if elem.VR == "SQ":
        for item in elem.value:
            _walk(item, run, clean_text=clean_text)
        return None
    if clean_text and elem.VR in ("LO", "SH", "ST", "LT", "UT", "UC"):
        return "C"
    return None


def _record_method(ds: Dataset, policy: DeidPolicy) -> None:
    from pydicom import Dataset
    from pydicom.sr.codedict import codes

    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = [
        f"medlens {medlens.__version__}",
        "DICOM PS3.15 E.1 Basic Profile",
        *[o[:64] for o in policy.options],
    ]
    items = []
    for keyword in ("BasicApplicationConfidentialityProfile",) + tuple(
        OPTION_CODES[o] for o in policy.options
    ):
        code = getattr(codes.DCM, keyword)
        item = Dataset()
        item.CodeValue = code.value
        item.CodingSchemeDesignator = code.scheme_designator
        item.CodeMeaning = code.meaning
        items.append(item)
    ds.DeidentificationMethodCodeSequence = items
    if policy.has("retain-longitudinal-full-dates"):
        ds.LongitudinalTemporalInformationModified = "UNMODIFIED"
    elif policy.has("retain-longitudinal-modified-dates"):
        ds.LongitudinalTemporalInformationModified = "MODIFIED"
    else:
        ds.LongitudinalTemporalInformationModified = "REMOVED"


def patient_key(ds: Dataset) -> str:
    """What identifies the patient for pseudonyms and the date shift: PatientID, else the
    name, else the study UID (one "patient" per study when nothing else is known)."""
    for keyword in ("PatientID", "PatientName", "StudyInstanceUID"):
        value = str(ds.get(keyword, "") or "").strip()
        if value:
            return f"{keyword}:{value}"
    return "unknown"


def deidentify_dataset(
    ds: Dataset, policy: DeidPolicy | None = None
) -> tuple[Dataset, AuditRecord]:
    """De-identify a copy of ``ds`` (its PixelData untouched, see ``redact_burned_in_text``)
    and say what was done: keywords per action and counts, never values."""
    require("pydicom", "dicom", "DICOM de-identification")
    import copy

    policy = policy or DeidPolicy()
    out = copy.deepcopy(ds)
    key = patient_key(ds)
    run = _Run(policy, key, policy.date_shift_days(key))
    _walk(out, run, clean_text=False)
    meta = getattr(out, "file_meta", None)
    if meta is not None and "MediaStorageSOPInstanceUID" in meta:
        if "SOPInstanceUID" in out:
            meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
        else:
            meta.MediaStorageSOPInstanceUID = remap_uid(meta.MediaStorageSOPInstanceUID, policy)
    _record_method(out, policy)
    if (
        "PatientName" in ds
        and "PatientName" in out
        and str(ds.PatientName) == str(out.PatientName)
        and str(ds.PatientName).strip()
    ):
        raise PrivacyError("De-identification left PatientName unchanged; refusing the output.")
    details: dict[str, Any] = {
        "profile": f"DICOM PS3.15 Table E.1-1 ({TABLE_EDITION})",
        "options": list(policy.options),
        **{f"{a}_attributes": sorted(names) for a, names in sorted(run.actions.items())},
        **{k: v for k, v in sorted(run.counts.items())},
    }
    return out, AuditRecord("header-deid", details)
