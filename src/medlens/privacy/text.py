"""Free-text PHI scrubbing: questions, prior reports, descriptors, OCR'd text, model outputs.

No named-entity model runs offline here (spaCy, Presidio, stanza, flair and GLiNER all
download their weights from a hub), so names are found by context and a gazetteer, the way
rule-based clinical scrubbers (Philter, the MIT deid package of Neamatullah et al. 2008) do:

- patterns for the HIPAA Safe Harbor identifiers that have a shape: dates (every element
  but the year), phone/fax, e-mail, URL, IP address, SSN, record/account/accession numbers
  (labelled, or long digit runs), street addresses and postcodes, ages over 89;
- names after a title or a label ("Dr.", "Patient:", "signed by", "discussed with"), DICOM
  person names (``LAST^FIRST``), "Last, First", and title-case tokens found in the 1990 US
  Census first- and last-name lists (shipped by the ``names`` package) unless they stand
  before a clinical head noun (Hodgkin lymphoma, Foley catheter). Census names that are also
  anatomy, finding or colour words of DICOM PS3.16 ("Colon", "Kidney", "Eye", "Stem",
  "Little", "Gray": :func:`clinical_vocabulary`) are no evidence of a name by themselves;
  they are part of one next to a name that is not such a word ("Maria Colon") or as a census
  first name followed by a census last name ("Iris Brown").

Every match becomes a typed placeholder ("[NAME]", "[DATE]", ...), so a model still sees that
something was there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

PLACEHOLDERS = ("NAME", "DATE", "ID", "SSN", "PHONE", "EMAIL", "URL", "IP", "ADDRESS", "AGE")


@dataclass(frozen=True)
class Span:
    """A removed piece of PHI: its kind and where it was in the original text."""

    kind: str
    start: int
    end: int


@dataclass(frozen=True)
class ScrubResult:
    text: str
    spans: tuple[Span, ...]

    def counts(self) -> dict[str, int]:
        """Spans per kind, for audit records (no values)."""
        out: dict[str, int] = {}
        for span in self.spans:
            out[span.kind] = out.get(span.kind, 0) + 1
        return out


_MONTHS = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
_DAY = r"(?:0?[1-9]|[12]\d|3[01])(?:st|nd|rd|th)?"
_YEAR = r"(?:19|20)\d{2}"
# Latin letters with diacritics (Gröttner, Łyjak, Câmara): names are not ASCII.
_UP = "A-ZÀ-ÖØ-ÞĀĂĄĆĈĊČĎĐĒĔĖĘĚĜĞĠĢĤĦĨĪĬĮİĴĶĹĻĽĿŁŃŅŇŌŎŐŒŔŖŘŚŜŞŠŢŤŦŨŪŬŮŰŲŴŶŸŹŻŽ"
_LOW = "a-zß-öø-ÿā-žſ"
_PARTICLE = (
    r"(?:van|von|de|da|do|del|della|der|den|di|du|dos|das|le|la|ten|ter|het|'t|op|am|an|en|und|zu"
    r"|al|el|bin"
    r"|ibn)"
)
# A capitalised word, with capitals inside (McKenzie, Hans-Heinrich, DiMaggio).
_WORD = rf"[{_UP}][{_LOW}'\-]+(?:[{_UP}][{_LOW}'\-]+)*"
_CAP = rf"(?:{_PARTICLE}\s+)*(?:{_WORD}|[IVX]{{2,4}}\b)"
_NAME_WORD = rf"(?:{_PARTICLE}\s+)*(?:{_WORD}|[{_UP}]\.|[{_UP}]{{2,}}(?![{_LOW}]))"
# Between capitalised words of a name or place, a short lowercase word no list holds ("auch",
# "vorm", "upon"), unless it is an English function word ("Dr Smith for CT"), or a single
# capital ("Torre A Mare", "John A Smith").
_JOIN = (
    rf"[ \t]+(?:(?!(?:and|or|for|the|via|with|at|on|in|of|to|by|per|from|was|is|are|has|had"
    rf"|not|but|as|re|who|may)\b)[{_LOW}]{{2,4}}[ \t]+|[{_UP}][ \t]+)?"
)
_PERSON = rf"{_NAME_WORD}(?:{_JOIN}{_NAME_WORD}){{0,3}}"

_ID_LABEL = (
    r"(?:MRN|MR\s?#|MR\s?No\.?|Medical\s+Record(?:\s+(?:Number|No\.?|#))?|Record\s*(?:No\.?|#|"
    r"Number)|Account(?:\s*(?:No\.?|#|Number))?|Acct\.?(?:\s*(?:No\.?|#))?|Accession"
    r"(?:\s*(?:No\.?|#|Number))?|Acc\.?\s*(?:No\.?|#)|Patient\s+ID|PID|ID|Encounter(?:\s+ID)?"
    r"|Visit(?:\s+(?:No\.?|#|ID))?|Case(?:\s+(?:No\.?|#))|Specimen(?:\s+(?:No\.?|#|ID))?"
    r"|Member(?:\s+ID)?|Policy(?:\s+(?:No\.?|#))?|Insurance(?:\s+(?:No\.?|#|ID))?"
    r"|Health\s+Plan(?:\s+(?:No\.?|#|ID))?|Licen[cs]e(?:\s+(?:No\.?|#))?|Serial(?:\s+No\.?)?"
    r"|Study\s+ID|Order(?:\s+(?:No\.?|#))?|Ref(?:erence)?\.?\s*(?:No\.?|#))"
)
_PERSON_LABEL = (
    r"(?:Patient(?:'s)?(?:\s+name)?|Pt\.?|Name|Referred\s+by|Referring(?:\s+(?:physician|"
    r"doctor|provider))?|Ordering(?:\s+(?:physician|provider))?|Attending(?:\s+physician)?|"
    r"Signed(?:\s+by)?|Electronically\s+signed\s+by|Dictated\s+by|Reported\s+by|Read\s+by|"
    r"Reviewed\s+by|Transcribed\s+by|Verified\s+by|Approved\s+by|Physician|Radiologist|"
    r"Technologist|Sonographer|Tech|Resident|Fellow|Nurse|cc|Contact|Emergency\s+contact|"
    r"Next\s+of\s+kin|Guardian|Mother|Father|Wife|Husband|Son|Daughter|Spouse|Informant|"
    r"Discussed\s+with|discussed\s+with|spoke\s+(?:with|to)|called\s+to|communicated\s+to|"
    r"seen\s+by|examined\s+by|accompanied\s+by|Operator|Performed\s+by|Author)"
)
_TITLE = r"(?:Mr|Mrs|Ms|Mx|Miss|Dr|Prof|Doctor|Sr|Sister|Rev)\.?"
_STREET = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl"
    r"|Terrace|Ter|Circle|Cir|Parkway|Pkwy|Highway|Hwy|Square|Sq|Close|Crescent|Gardens"
    r"|Row|Alley|Trail|Walk|Strasse|Straße|Weg|Rue|Via|Calle)\.?"
)

# (kind, compiled pattern, group holding the PHI; 0 = whole match)
_PATTERNS: list[tuple[str, re.Pattern[str], int]] = [
    ("EMAIL", re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"), 0),
    ("URL", re.compile(r"\b(?:https?://|www\.)[^\s<>\"]+", re.IGNORECASE), 0),
    ("IP", re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"), 0),
    ("SSN", re.compile(r"\b\d{3}-\d{2}-\d{4}\b"), 0),
    (
        "SSN",
        re.compile(
            r"\b(?:SSN|Social\s+Security(?:\s+(?:No\.?|Number|#))?)\s*[:#]?\s*(\d[\d -]{7,10}\d)",
            re.IGNORECASE,
        ),
        1,
    ),
    (
        "PHONE",
        re.compile(
            r"(?<![\w.])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)\s?|\d{2,4}[\s.-])\d{3,4}[\s.-]\d{3,4}"
            r"(?:\s*(?:x|ext\.?)\s*\d{1,5})?(?![\w])"
        ),
        0,
    ),
    (
        "PHONE",
        re.compile(
            r"\b(?:Tel|Phone|Ph|Fax|Mobile|Cell|Pager)\.?\s*[:#]?\s*(\+?[\d][\d\s().-]{5,}\d)",
            re.IGNORECASE,
        ),
        1,
    ),
    # Dates: ISO, numeric with / . -, month names both orders, DICOM DA (YYYYMMDD).
    ("DATE", re.compile(rf"\b{_YEAR}[-/.](?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12]\d|3[01])\b"), 0),
    (
        "DATE",
        re.compile(
            r"\b(?:0?[1-9]|[12]\d|3[01])[-/.](?:0?[1-9]|[12]\d|3[01])[-/.](?:\d{4}|\d{2})\b"
        ),
        0,
    ),
    (
        "DATE",
        re.compile(
            rf"\b{_DAY}[\s-]+(?:of\s+)?{_MONTHS}\.?,?[\s-]+(?:{_YEAR}|'?\d{{2}})\b", re.IGNORECASE
        ),
        0,
    ),
    (
        "DATE",
        re.compile(rf"\b{_MONTHS}\.?[\s-]+{_DAY},?[\s-]+(?:{_YEAR}|'\d{{2}})\b", re.IGNORECASE),
        0,
    ),
    ("DATE", re.compile(rf"\b{_MONTHS}\.?\s+{_DAY}\b(?!\s*(?:mm|cm|%))", re.IGNORECASE), 0),
    ("DATE", re.compile(rf"\b{_DAY}\s+{_MONTHS}\b", re.IGNORECASE), 0),
    ("DATE", re.compile(rf"\b{_MONTHS}\.?,?\s+{_YEAR}\b", re.IGNORECASE), 0),
    ("DATE", re.compile(r"\b(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\b"), 0),
    (
        "AGE",
        re.compile(
            r"\b((?:9\d|1[0-4]\d))(?:\s*|-)(?:years?|yrs?|y\.?o\.?|yo|y/o|Y)\b(?:[\s-]*old)?",
            re.IGNORECASE,
        ),
        0,
    ),
    ("AGE", re.compile(r"\b(?:age[d]?|Age)\s*[:]?\s*(9\d|1[0-4]\d)\b"), 1),
    ("AGE", re.compile(r"\b0?(9\d|1[0-4]\d)Y\b"), 0),
    (
        "ID",
        re.compile(
            rf"\b{_ID_LABEL}\s*[:#=]?\s*(?:is\s+)?([A-Z0-9][A-Z0-9\-/]*\d[A-Z0-9\-/]*)",
            re.IGNORECASE,
        ),
        1,
    ),
    ("ID", re.compile(r"\b(?=[A-Z0-9-]*\d{4})(?=[A-Z0-9-]*[A-Z])[A-Z0-9]{2,}(?:-[A-Z0-9]+)*\b"), 0),
    ("ID", re.compile(r"\b\d{6,}\b"), 0),
    ("ID", re.compile(r"\b\d{2,5}(?:-\d{2,6}){2,}\b"), 0),
    (
        "ADDRESS",
        re.compile(
            rf"\b\d{{1,5}}[A-Za-z]?\s+(?:{_CAP}\s+){{0,3}}{_STREET}\b"
            rf"(?:,?\s*(?:Apt|Apartment|Suite|Ste|Unit|Flat|#)\.?\s*\w+)?"
            rf"(?:,\s*{_CAP}(?:{_JOIN}{_CAP}){{0,5}})?(?:,?\s*[A-Z]{{2}}\b)?(?:,?\s*\d{{4,5}}(?:-\d{{4}})?)?"
        ),
        0,
    ),
    (
        "ADDRESS",
        re.compile(rf"\b(?:{_CAP}\s?){{1,3}},\s*[A-Z]{{2}}\s+\d{{5}}(?:-\d{{4}})?\b"),
        0,
    ),
    ("ADDRESS", re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]?\s+\d[A-Z]{2}\b"), 0),
    (
        "ADDRESS",
        re.compile(r"\b(?:P\.?O\.?\s+Box|ZIP|Zip\s*code|Postcode)\s*:?\s*\w+", re.IGNORECASE),
        0,
    ),
    # DICOM person names (PS3.5 6.2: family^given^middle^prefix^suffix), in any script.
    ("NAME", re.compile(r"(?<![\w'\-])[^\W\d_][\w'\-]*\^[^\W\d_][\w'\-]*(?:\^[\w'\-.]*)*"), 0),
    ("NAME", re.compile(rf"\b{_TITLE}\s+({_PERSON})"), 1),
    ("NAME", re.compile(rf"\b{_PERSON_LABEL}\s*[:\-]?\s*(?:{_TITLE}\s+)?({_PERSON})"), 1),
    (
        "NAME",
        re.compile(
            rf"\b{_PERSON_LABEL}\s*[:\-]?\s*((?:[{_LOW}]{{2,4}}\s+)?{_PERSON}(?:\s+{_PARTICLE})?,"
            rf"\s*{_PERSON})"
        ),
        1,
    ),
]

_CLINICAL_HEADS = re.compile(
    r"^(?:'s\b|\s+(?:disease|syndrome|sign|fracture|lesion|cyst|tumou?r|sarcoma|lymphoma|"
    r"procedure|catheter|tube|units?|malformation|classification|score|scale|criteria|line|"
    r"view|position|esophagus|deformity|palsy|node|canal|duct|ligament|space|angle|"
    r"formula|method|test|maneuver|manoeuvre|anomaly|hernia|ulcer|cell|body|bodies))",
    re.IGNORECASE,
)

_NOT_NAMES = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "from",
        "has",
        "have",
        "he",
        "her",
        "his",
        "in",
        "into",
        "is",
        "it",
        "its",
        "no",
        "not",
        "of",
        "on",
        "or",
        "she",
        "that",
        "the",
        "their",
        "there",
        "they",
        "this",
        "to",
        "was",
        "were",
        "will",
        "with",
        "left",
        "right",
        "normal",
        "mild",
        "moderate",
        "severe",
        "small",
        "large",
        "chest",
        "lung",
        "lungs",
        "heart",
        "liver",
        "brain",
        "head",
        "neck",
        "abdomen",
        "pelvis",
        "spine",
        "bone",
        "bones",
        "mass",
        "masses",
        "no",
        "new",
        "old",
        "stable",
        "unchanged",
        "acute",
        "chronic",
        "history",
        "impression",
        "findings",
        "comparison",
        "technique",
        "indication",
        "clinical",
        "report",
        "patient",
        "exam",
        "study",
        "image",
        "images",
        "series",
        "contrast",
        "view",
        "views",
        "ct",
        "mri",
        "mr",
        "xray",
        "x-ray",
        "us",
        "pet",
        "cr",
        "dx",
        "axial",
        "coronal",
        "sagittal",
        "frontal",
        "lateral",
        "upper",
        "lower",
        "anterior",
        "posterior",
        "superior",
        "inferior",
        "medial",
        "distal",
        "proximal",
    ]
)


@lru_cache(maxsize=1)
def name_gazetteer() -> tuple[frozenset[str], frozenset[str]]:
    """(first names, last names) in upper case from the 1990 US Census lists that the
    ``names`` package ships; last names are limited to the 20,000 most frequent so rare
    surnames that are ordinary words ("MASS", "CHEST") do not count."""
    from medlens.errors import require

    package = require("names", "core", "Name detection in free text")
    folder = Path(str(package.__file__)).parent

    def read(name: str, limit: int | None = None) -> frozenset[str]:
        lines = (folder / name).read_text().splitlines()[:limit]
        return frozenset(line.split()[0] for line in lines if line.strip())

    first = read("dist.female.first") | read("dist.male.first")
    last = read("dist.all.last", 20000)
    stop = {w.upper() for w in _NOT_NAMES}
    return first - stop, last - stop


@lru_cache(maxsize=1)
def clinical_vocabulary() -> frozenset[str]:
    """Anatomy, finding and colour words (upper case) of the SNOMED CT code meanings in DICOM
    PS3.16's context groups, as pydicom ships them; ``clinical_words.txt`` is generated by
    ``scripts/make_clinical_words.py``, which says how (eponyms such as "Hodgkin" or "Willis"
    are left out: SNOMED never writes them in lower case)."""
    lines = (Path(__file__).parent / "clinical_words.txt").read_text().splitlines()
    return frozenset(line for line in lines if line and not line.startswith("#"))


_TOKEN = re.compile(r"[^\W\d_](?:[^\W\d_]|['\-])*")
_SENTENCE_END = re.compile(r"(?:^|[.!?:;\n]\s*|\n)$")
_X_RAY = re.compile(r"\bX[ \t-]?$", re.IGNORECASE)
""""X Ray", "x-Ray": the modality, not a man called Ray."""


def _gazetteer_spans(text: str) -> list[Span]:
    """Title-case tokens that are census names, grouped into runs of adjacent tokens; a run is
    a name when it has two or more name-like tokens, or one that is not at a sentence start,
    unless a clinical head noun follows (eponyms). Clinical words (:func:`clinical_vocabulary`)
    count as name-like only in a census first name + last name pair ("Iris Brown")."""
    first, last = name_gazetteer()
    tokens = list(_TOKEN.finditer(text))
    spans: list[Span] = []
    i = 0
    while i < len(tokens):
        run: list[re.Match[str]] = []
        j = i
        while j < len(tokens):
            tok = tokens[j].group()
            upper = tok.upper()
            title_case = tok[:1].isupper() and (tok[1:].islower() or len(tok) == 1)
            if not (title_case or tok.isupper()) or upper.lower() in _NOT_NAMES:
                break
            if run and text[tokens[j - 1].end() : tokens[j].start()].strip() not in ("", ","):
                break
            if upper not in first and upper not in last and not (run and len(tok) > 1):
                break
            if upper == "RAY" and _X_RAY.search(text[: tokens[j].start()]):
                break
            run.append(tokens[j])
            j += 1
        if not run:
            i += 1
            continue
        words = [t.group().upper() for t in run]
        clinical = clinical_vocabulary() if any(w in first or w in last for w in words) else ()
        census = [w for w in words if w in first or w in last]
        known = [w for w in census if w not in clinical]
        has_first = any(w in first for w in known)
        given_family = len(words) >= 2 and words[0] in first and words[1] in last
        at_start = bool(_SENTENCE_END.search(text[: run[0].start()]))
        eponym = bool(_CLINICAL_HEADS.match(text[run[-1].end() :]))
        if all(t.group().isupper() for t in run):
            is_name = (len(census) >= 2 and has_first) or given_family
        elif len(run) >= 2:
            is_name = has_first or len(known) >= 2 or given_family
        else:
            is_name = bool(known) and not at_start
        start = run[0].start()
        if is_name and words[0] in known and words[0] in first and i > 0:
            # "Hoareau, Daniel": a family name no list holds, before a comma and a given name.
            before = tokens[i - 1]
            word = before.group()
            if (
                text[before.end() : start].strip() == ","
                and (word.isupper() or word[:1].isupper() and word[1:].islower())
                and word.lower() not in _NOT_NAMES
                and word.upper() not in clinical_vocabulary()
            ):
                start = before.start()
        if is_name and not eponym:
            spans.append(Span("NAME", start, run[-1].end()))
        i = j
    return spans


def find_phi(text: str, *, names: bool = True) -> list[Span]:
    """All PHI spans in ``text``, overlapping ones merged (the longer kind wins)."""
    found: list[Span] = []
    for kind, pattern, group in _PATTERNS:
        for match in pattern.finditer(text):
            start, end = match.span(group)
            if start < end:
                found.append(Span(kind, start, end))
    if names:
        found.extend(_gazetteer_spans(text))
    found.sort(key=lambda s: (s.start, -(s.end - s.start)))
    merged: list[Span] = []
    for span in found:
        if merged and span.start < merged[-1].end:
            prev = merged[-1]
            if span.end > prev.end:
                longer = span if span.end - span.start > prev.end - prev.start else prev
                merged[-1] = Span(longer.kind, prev.start, span.end)
            continue
        merged.append(span)
    return merged


def scrub_text(text: str, *, names: bool = True) -> ScrubResult:
    """Replace every PHI span of ``text`` with a typed placeholder such as "[NAME]".

    >>> scrub_text("Seen by Dr. Ann Lee on 03/04/2021, MRN 123456.").text
    'Seen by Dr. [NAME] on [DATE], MRN [ID].'
    """
    spans = find_phi(text, names=names)
    pieces: list[str] = []
    cursor = 0
    for span in spans:
        pieces.append(text[cursor : span.start])
        pieces.append(f"[{span.kind}]")
        cursor = span.end
    pieces.append(text[cursor:])
    return ScrubResult("".join(pieces), tuple(spans))
