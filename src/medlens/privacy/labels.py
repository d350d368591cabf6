"""Which burned-in text lines identify the patient and which are clinical labels to keep.

Blacking out every line destroys what a reader needs (the side marker, "SUPINE", the probe,
depth and gain read-outs, caliper values, ruler numbers), so each line read is decided on its
own, in this order (the first rule that fires wins):

1. ``redact_all``: every line goes (``--redact-all-text``).
2. **The study's own header values**, as Presidio's ``DicomImageRedactorEngine(use_metadata=
   True)`` does: the patient's and staff's names (each part, in any casing and order), IDs,
   accession and study numbers (also inside longer strings: "MRN48213377", one OCR confusion
   such as O/0 allowed), dates in the usual orders with and without separators or month
   names, institution and station names.
3. **PHI-shaped strings** and names, by the free-text scrubber's rules
   (:func:`medlens.privacy.text.find_phi`: dates, ID-like digit runs, phone numbers, DICOM
   person names, titles, census names), and pieces of dates the detector split off.
4. **Clinical text**: every word is a clinical or device term, a number or measurement, or a
   code of two letters at most: kept.
5. Anything else is redacted ("unrecognised"): a word nobody listed may be a name.

A short line left "unrecognised", and a two-letter code read unsure, are read again (their
other pages, the box looked along, tesseract) before the decision is final
(:func:`second_reading`).

The decision and its reason are recorded per line; the text itself never leaves memory.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medlens.privacy.ocr import OcrLine

NAME_KEYWORDS = (
    "PatientName",
    "OtherPatientNames",
    "PatientBirthName",
    "PatientMotherBirthName",
    "ResponsiblePerson",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy",
    "OperatorsName",
    "PhysiciansOfRecord",
    "RequestingPhysician",
    "ScheduledPerformingPhysicianName",
)
ID_KEYWORDS = (
    "PatientID",
    "OtherPatientIDs",
    "AccessionNumber",
    "StudyID",
    "AdmissionID",
    "MedicalRecordLocator",
    "DeviceSerialNumber",
    "RequestedProcedureID",
    "PerformedProcedureStepID",
)
DATE_KEYWORDS = (
    "PatientBirthDate",
    "StudyDate",
    "SeriesDate",
    "AcquisitionDate",
    "ContentDate",
    "InstanceCreationDate",
)
PLACE_KEYWORDS = (
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "StationName",
    "PatientAddress",
    "PatientTelephoneNumbers",
)

_GENERIC_PLACE_WORDS = frozenset(
    [
        "HOSPITAL",
        "GENERAL",
        "MEDICAL",
        "MEDICINE",
        "CENTER",
        "CENTRE",
        "CLINIC",
        "CLINICS",
        "UNIVERSITY",
        "UNIVERSITAIRE",
        "INSTITUTE",
        "HEALTH",
        "HEALTHCARE",
        "CARE",
        "COUNTY",
        "REGIONAL",
        "MEMORIAL",
        "COMMUNITY",
        "CHILDRENS",
        "CHILDREN",
        "RADIOLOGY",
        "IMAGING",
        "DEPARTMENT",
        "DEPT",
        "STREET",
        "AVENUE",
        "ROAD",
        "LANE",
        "DRIVE",
        "SAINT",
        "NATIONAL",
        "THE",
        "AND",
        "OF",
        "FOR",
    ]
)

# Clinical and device words that burned-in annotations are made of (anatomy, sides, views,
# positions, modality read-outs, measurement names and units). Matched on upper-case words.
CLINICAL_WORDS = frozenset(
    """
    L R LT RT LEFT RIGHT BILAT BILATERAL ANT POST SUP INF MED LAT PROX DIST MID UPPER LOWER
    AP PA LAO RAO LPO RPO OBL OBLIQUE LATERAL FRONTAL AXIAL AX COR CORONAL SAG SAGITTAL
    TRANS TRV TRANSVERSE LONG LONGITUDINAL SHORT AXIS VIEW
    PORTABLE SUPINE PRONE ERECT UPRIGHT DECUBITUS DECUB SEMI SITTING STANDING INSP EXP
    EXPIRATION INSPIRATION FLEX FLEXION EXT EXTENSION WEIGHT BEARING
    LIVER SPLEEN KIDNEY KIDNEYS RENAL PANCREAS GALLBLADDER GB CBD BLADDER UTERUS OVARY
    OVARIES PROSTATE TESTIS TESTES THYROID NECK BREAST AXILLA HEART CARDIAC AORTA IVC SVC
    PORTAL VEIN ARTERY CAROTID CCA ICA ECA VERTEBRAL JUGULAR IJV FEMORAL POPLITEAL
    LUNG LUNGS CHEST ABDOMEN ABD PELVIS PELVIC HEAD BRAIN SPINE CSPINE LSPINE TSPINE
    KNEE HIP SHOULDER ELBOW WRIST ANKLE FOOT HAND HUMERUS FEMUR TIBIA
    LYMPH NODE NODES MASS CYST LESION NODULE FLUID EFFUSION ASCITES STONE
    APEX BASE UPPER POLE LOBE LUL LLL RUL RML RLL SEGMENT
    FETUS FETAL CRL BPD HC AC FL EFW GA EDD AFI NT
    MV AV TV PV LV RV LA RA LVOT RVOT IVS LVPW EF FS SV CO
    GAIN DEPTH FREQ FRQ MHZ KHZ HZ DR DYN RANGE PWR POWER THI HAR HARM RES GEN PEN
    FR FPS CF CFM PW CW PD PDI PRF WF SVOL ANGLE DOPPLER COLOR COLOUR B M MODE 2D 3D 4D
    MI TIS TIB TIC CINE FRAME FRAMES ZOOM FOCUS FOC PROBE TRANSDUCER LINEAR CURVED
    PHASED SECTOR CONVEX ENDOCAVITY
    CM MM M2 CM2 CM3 ML CC S SEC MS BPM HR VEL CM/S M/S MMHG PSV EDV RI PI VTI TAMAX
    SLICE SL SLTHK THK KV KVP MA MAS KVP WL WW W C WINDOW LEVEL WIDTH CENTER CENTRE
    HU FOV MATRIX TR TE TI FA NEX ETL BW SE FSE TSE GRE FLAIR STIR DWI ADC T1 T2 PD
    PRE POST CONTRAST IV ORAL DELAYED ARTERIAL VENOUS PHASE SCOUT TOPOGRAM LOCALIZER
    SCALE RULER DIST DISTANCE AREA VOL VOLUME CIRC DIAM DIAMETER LENGTH WIDTH HEIGHT
    AVG MEAN MAX MIN SD STD RATIO INDEX
    MARKER MAG MAGNIFICATION X 10X 20X 40X 4X HE H&E STAIN IHC
    IM IMG IMAGE SE SER SERIES ACQ ACQUISITION NO OF PAGE UM NM
    """.split()  # noqa: SIM905 (a word list reads better as prose)
)

_MEASURE = re.compile(
    r"^(?:[+\-±<>=:~#*/]*)"
    r"(?:\d+(?:[.,:]\d+)*%?|[A-Z]{1,3}\d{0,2}[=:]?[+\-]?\d+(?:[.,]\d+)*%?[A-Z/%]{0,4}"
    r"|\d+(?:[.,]\d+)*[A-Z/%²³]{1,6}|\d+[A-Z]{1,2}\d+[A-Z]?)"
    r"(?:[+\-±<>=:~/]*)$"
)
"""A number, a number with its unit, a keyed read-out ("D1=3.2CM", "TIS0.4", "G52%"), a probe
code ("5C1", "L12"): clinical values, never identifying on their own."""


def normalise(text: str) -> str:
    """Upper-case letters and digits only: what two readings of a string share."""
    return re.sub(r"[^0-9A-Z]", "", text.upper())


_CONFUSED = str.maketrans("OQDILZSBG", "000112586")


def _confusable(text: str) -> str:
    """Letters OCR mistakes for digits made digits (O/0, I/1, S/5 ...), for matching IDs."""
    return text.translate(_CONFUSED)


def _date_forms(value: str) -> set[str]:
    """A DICOM date (YYYYMMDD) in the orders burned-in text uses, normalised: 20210603 →
    20210603, 03062021, 06032021, 210603, 030621, 060321, 03JUN2021, JUN032021, 2021JUN03."""
    try:
        day = dt.datetime.strptime(value.strip()[:8], "%Y%m%d").date()
    except ValueError:
        return set()
    formats = ("%Y%m%d", "%d%m%Y", "%m%d%Y", "%y%m%d", "%d%m%y", "%m%d%y", "%d%b%Y", "%b%d%Y")
    forms = {normalise(day.strftime(f)) for f in formats}
    forms |= {normalise(day.strftime("%Y%b%d")), normalise(day.strftime("%d%B%Y"))}
    forms |= {f"{day.day}{day.month}{day.year}", f"{day.month}{day.day}{day.year}"}
    return forms


def _name_parts(value: str) -> set[str]:
    parts = re.split(r"[\^\s,.\-/=]+", value.upper())
    return {normalise(p) for p in parts if len(normalise(p)) >= 2}


@dataclass(frozen=True)
class Identifiers:
    """The study's own identifying values, normalised, each with the attribute it came
    from: name parts (matched as words), IDs and dates (matched inside the line), and
    distinctive words of places (institution, station, address)."""

    names: Mapping[str, str] = field(default_factory=dict)
    ids: Mapping[str, str] = field(default_factory=dict)
    dates: Mapping[str, str] = field(default_factory=dict)
    places: Mapping[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.names or self.ids or self.dates or self.places)

    def whole_value(self, reason: str) -> bool:
        """Whether a line redacted for ``reason`` ("header:<Keyword>") showed an ID or a date
        of the header: values matched whole (a date form, an ID within one character), so
        the line was read to the value's end; a name is matched by any one of its parts."""
        keyword = reason.removeprefix("header:")
        return reason.startswith("header:") and (
            keyword in self.ids.values() or keyword in self.dates.values()
        )

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> Identifiers:
        """From attribute keyword → value(s) (a pydicom ``Dataset`` works too)."""
        names: dict[str, str] = {}
        ids: dict[str, str] = {}
        dates: dict[str, str] = {}
        places: dict[str, str] = {}
        order = {k: i for i, k in enumerate(NAME_KEYWORDS + ID_KEYWORDS + DATE_KEYWORDS)}
        for keyword, raw in sorted(values.items(), key=lambda kv: order.get(kv[0], len(order))):
            items = raw if isinstance(raw, (list, tuple)) else [raw]
            for item in items:
                text = str(item or "").strip()
                if not text:
                    continue
                if keyword in NAME_KEYWORDS:
                    for part in _name_parts(text):
                        names.setdefault(part, keyword)
                elif keyword in ID_KEYWORDS:
                    if len(normalise(text)) >= 4:
                        ids.setdefault(_confusable(normalise(text)), keyword)
                elif keyword in DATE_KEYWORDS:
                    for form in _date_forms(text):
                        dates.setdefault(form, keyword)
                elif keyword in PLACE_KEYWORDS:
                    digits = re.sub(r"\D", "", text)
                    if keyword == "PatientTelephoneNumbers" and len(digits) >= 7:
                        ids[digits] = keyword
                        continue
                    for word in _name_parts(text):
                        if len(word) >= 4 and word not in _GENERIC_PLACE_WORDS:
                            places[word] = keyword
        return cls(names, ids, dates, places)

    @classmethod
    def from_dataset(cls, ds: Any) -> Identifiers:
        """From a pydicom dataset before de-identification: the keywords above, and every
        other person name (PN) and date (DA) of the top level."""
        values: dict[str, Any] = {}
        wanted = set(NAME_KEYWORDS + ID_KEYWORDS + DATE_KEYWORDS + PLACE_KEYWORDS)
        for elem in ds:
            keyword = elem.keyword
            if not keyword or elem.VR == "SQ":
                continue
            if keyword in wanted:
                values[keyword] = elem.value
            elif elem.VR == "PN":
                values.setdefault("OtherPatientNames", elem.value)
            elif elem.VR == "DA":
                values.setdefault("InstanceCreationDate", elem.value)
        return cls.from_values(values)

    @classmethod
    def merge(cls, many: Iterable[Identifiers]) -> Identifiers:
        names: dict[str, str] = {}
        ids: dict[str, str] = {}
        dates: dict[str, str] = {}
        places: dict[str, str] = {}
        for one in many:
            names.update(one.names)
            ids.update(one.ids)
            dates.update(one.dates)
            places.update(one.places)
        return cls(names, ids, dates, places)

    def fingerprint(self) -> str:
        """Everything that decides a match, for cache keys (hashed by the caller)."""
        parts = [sorted(self.names), sorted(self.ids), sorted(self.dates), sorted(self.places)]
        return repr(parts)

    def match(self, text: str) -> str | None:
        """The attribute keyword whose value ``text`` shows, or None."""
        words = {normalise(w) for w in re.split(r"[\s\^,;:/|()\[\]]+", text)} - {""}
        for word in words:
            if word in self.names:
                return self.names[word]
            if word in self.places:
                return self.places[word]
        line = normalise(text)
        for form, keyword in self.dates.items():
            if form in line:
                return keyword
        confusable = _confusable(line)
        for value, keyword in self.ids.items():
            if value in confusable or (len(value) >= 6 and _near(value, confusable)):
                return keyword
        return None


def _near(value: str, line: str) -> bool:
    """Whether ``line`` holds ``value`` with one character wrong."""
    n = len(value)
    return any(
        sum(a != b for a, b in zip(value, line[i : i + n])) <= 1 for i in range(len(line) - n + 1)
    )


@dataclass(frozen=True)
class LineDecision:
    """Whether one text line is blacked out and why: ``"all-text"``, ``"header:<Keyword>"``,
    ``"phi:<KIND>"`` (a PHI-shaped string or a name), ``"unrecognised"``; kept lines say
    ``"clinical"``."""

    redact: bool
    reason: str


def _clinical_word(word: str) -> bool:
    upper = word.upper().strip(".,;:()[]")
    if not upper or upper in CLINICAL_WORDS or not any(ch.isalnum() for ch in upper):
        return True
    if len(normalise(upper)) <= 2 and not upper.isdigit():
        return True  # side markers, view codes
    return bool(_MEASURE.match(upper))


_DATE_PIECE = re.compile(r"^\W*\d{0,4}([/.\-])\d{1,4}\1\d{0,4}\W*$")


def _date_piece(text: str) -> bool:
    """Whether ``text`` is a piece of a date: digit groups joined twice by one separator,
    four digits at least ("/07/202", "08.07.", "-07-15"). The detector splits a date drawn
    down a column into pieces ("DOB 08/07/2023" at 90 degrees: "/07/202", "D", the rest
    unboxed); read alone such a piece is a number, kept as a ruler's or caliper's, and the
    date stayed readable (deid_recall --seed 3, Doppler). Measurements join digits once
    ("5.0", "120/80")."""
    return bool(_DATE_PIECE.match(text.strip())) and sum(ch.isdigit() for ch in text) >= 4


def _listed(text: str) -> bool:
    """Whether ``text`` (three letters or digits at least) is listed clinical or device
    words or measurements (:func:`_listed_words`): :func:`classify_line`'s clinical rules
    without the one that keeps any code of two letters (on a second reading, a misread
    shortened to two letters proves nothing)."""
    return len(normalise(text)) >= 3 and _listed_words(text)


def _listed_words(text: str) -> bool:
    words = [w.upper().strip(".,;:()[]") for w in text.split()]
    return bool(words) and (
        all(w in CLINICAL_WORDS or _MEASURE.match(w) for w in words) or _glued(text)
    )


def _glued(text: str) -> bool:
    """Whether ``text`` is read-outs the reader glued together ("GAIN52%DEPTH16CM"): split
    at its digit runs, every piece is a clinical word or a measurement."""
    pieces = [p for p in re.split(r"(\d+(?:[.,]\d+)*%?)", normalise(text)) if p]
    return bool(pieces) and all(p in CLINICAL_WORDS or _MEASURE.match(p) for p in pieces)


def labels_beside(words: list[str], identifiers: Identifiers | None = None) -> tuple[int, int]:
    """How many of a redacted line's ``words`` (in reading order), at its start and at its
    end, may be labels burned beside the PHI rather than part of it: each a clinical word
    with a letter and no digit (a side marker, "SUPINE"; a number beside a date may be its
    year), and the words between them still redacted for what they show (a header value or
    PHI, not as unrecognised). (0, 0) when there are none. Whether they stand apart (a gap
    wider than a word space) is the caller's to measure."""

    def label(word: str) -> bool:
        return (
            _clinical_word(word)
            and any(ch.isalpha() for ch in word)
            and not any(ch.isdigit() for ch in word)
        )

    count = len(words)
    head = next((k for k, word in enumerate(words) if not label(word)), count)
    tail = next((k for k, word in enumerate(reversed(words[head:])) if not label(word)), 0)
    if not head and not tail or head + tail >= count:
        return 0, 0
    rest = classify_line(" ".join(words[head : count - tail]), identifiers)
    return (head, tail) if rest.redact and rest.reason != "unrecognised" else (0, 0)


SHORT = 8
"""Letters and digits of a first read up to which an "unrecognised" line is read again."""


def needs_second_reading(text: str, decision: LineDecision) -> bool:
    """Whether a line's first read leaves its decision to a guess a second reading settles
    (:func:`second_reading`): "unrecognised" with at most :data:`SHORT` letters and digits
    (a short label misread by a glyph, "IHI" for "THI"), or kept only as a code of two
    letters nobody listed ("OT" read of a three-letter word)."""
    letters = len(normalise(text))
    if decision.reason == "unrecognised":
        return letters <= SHORT
    return not decision.redact and letters <= 2 and not _listed_words(text)


def second_reading(
    first: OcrLine,
    decision: LineDecision,
    reads: Iterable[OcrLine],
    identifiers: Identifiers | None = None,
) -> tuple[LineDecision, OcrLine | None]:
    """The decision on a line after its other confident ``reads``
    (:func:`medlens.privacy.ocr.second_reads`), with the read that settled it. A read that
    shows a header value or PHI redacts the line for that reason. An "unrecognised" line is
    kept as "clinical" at the first read that is :func:`_listed` in full with at least as
    many letters and digits as ``first`` (a label read whole: "IHI" is "THI", "AIR" is
    "FLAIR" on the line looked along), else stays redacted. A two-letter code goes
    ("unrecognised") when the first confident read is not clinical ("OTT" of a code read
    "OT"), or when no read is confident and neither was its first (below PP-OCR's
    :data:`medlens.privacy.ocr.CONFIDENT`). A failed read never keeps a line."""
    from medlens.privacy.ocr import CONFIDENT

    letters = len(normalise(first.text))
    for read in reads:
        again = classify_line(read.text, identifiers)
        if again.redact and again.reason != "unrecognised":
            return again, read
        if not decision.redact:
            return (again if again.redact else decision), read
        if _listed(read.text) and len(normalise(read.text)) >= letters:
            return LineDecision(False, "clinical"), read
    if decision.redact or first.score >= CONFIDENT:
        return decision, None
    return LineDecision(True, "unrecognised"), None


def classify_line(
    text: str, identifiers: Identifiers | None = None, *, redact_all: bool = False
) -> LineDecision:
    """Decide one line read from the pixels (module docstring, rules 1-5)."""
    from medlens.privacy.text import find_phi

    if redact_all:
        return LineDecision(True, "all-text")
    if identifiers:
        keyword = identifiers.match(text)
        if keyword:
            return LineDecision(True, f"header:{keyword}")
    spans = find_phi(text)
    if spans:
        return LineDecision(True, f"phi:{spans[0].kind}")
    if _date_piece(text):
        return LineDecision(True, "phi:DATE")
    words = [w for w in re.split(r"\s+", text.strip()) if w]
    if all(_clinical_word(w) for w in words) or _glued(text):
        return LineDecision(False, "clinical")
    return LineDecision(True, "unrecognised")
