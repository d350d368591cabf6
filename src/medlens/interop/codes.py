"""Coded findings from an answer: what was asked about (a finding), whether the model said it
is there (present/absent), and where (the organ and side named).

Every code is the standard's own: SNOMED CT concepts looked up by keyword in pydicom's copy of
the DICOM PS3.16 code dictionary (``pydicom.sr.codedict.codes.SCT``), plus two chest findings
that dictionary lacks, written with their SNOMED CT identifiers. A word that maps to no code
stays free text only; nothing is guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydicom.sr.coding import Code

    from medlens.types import Answer

FINDING_WORDS = {
    "pneumothorax": "Pneumothorax",
    "pleural effusion": "PleuralEffusion",
    "effusion": "Effusion",
    "cardiomegaly": "Cardiomegaly",
    "nodule": "Nodule",
    "nodules": "Nodule",
    "mass": "Mass",
    "masses": "Mass",
    "tumor": "Tumor",
    "tumour": "Tumor",
    "neoplasm": "Neoplasm",
    "lesion": "Lesion",
    "lesions": "Lesion",
    "cyst": "Cyst",
    "edema": "Edema",
    "oedema": "Edema",
    "hemorrhage": "Hemorrhage",
    "haemorrhage": "Hemorrhage",
    "abscess": "Abscess",
    "thrombus": "Thrombus",
    "stenosis": "Stenosis",
    "aneurysm": "Aneurysm",
    "metastasis": "Metastasis",
    "metastases": "Metastasis",
    "embolism": "Embolism",
    "pulmonary embolism": "PulmonaryEmbolism",
    "stroke": "Stroke",
    "lymphadenopathy": "Lymphadenopathy",
    "lymphoma": "Lymphoma",
    "fibrosis": "Fibrosis",
    "hepatomegaly": "Hepatomegaly",
}
"""Finding words → ``codes.SCT`` keywords."""
EXTRA_FINDINGS = {
    "pneumonia": ("233604007", "Pneumonia"),
    "atelectasis": ("46621007", "Atelectasis"),
}
"""SNOMED CT findings missing from pydicom's dictionary: (concept id, preferred term)."""
ANATOMY_WORDS = {
    "lung": "Lung", "lungs": "Lung", "liver": "Liver", "heart": "Heart", "kidney": "Kidney",
    "kidneys": "Kidney", "brain": "Brain", "spleen": "Spleen", "stomach": "Stomach",
    "pancreas": "Pancreas", "bladder": "Bladder", "urinary bladder": "Bladder",
    "gallbladder": "Gallbladder", "aorta": "Aorta", "colon": "Colon", "esophagus": "Esophagus",
    "oesophagus": "Esophagus", "trachea": "Trachea", "rib": "Rib", "ribs": "Rib",
    "spine": "Spine", "chest": "Chest", "abdomen": "Abdomen", "pelvis": "Pelvis",
    "head": "Head", "neck": "Neck", "breast": "Breast", "prostate": "Prostate",
    "thyroid": "Thyroid", "uterus": "Uterus", "small intestine": "SmallIntestine",
    "small bowel": "SmallIntestine", "large intestine": "LargeIntestine",
    "large bowel": "LargeIntestine", "rectum": "Rectum", "duodenum": "Duodenum",
    "bone": "Bone", "diaphragm": "Diaphragm", "mediastinum": "Mediastinum",
    "pleura": "Pleura", "skull": "Skull", "femur": "Femur", "vertebra": "Vertebra",
    "adrenal gland": "AdrenalGland", "appendix": "Appendix", "ovary": "Ovary",
    "pericardium": "Pericardium", "lymph node": "LymphNode",
}  # fmt: skip
"""Anatomy words → ``codes.SCT`` keywords (the finding site of TID 1501/1410)."""
SIDES = {"left": "Left", "right": "Right"}


@dataclass(frozen=True)
class CodedFinding:
    """What an answer says in codes: a finding and its presence, and/or a site."""

    finding: Code | None = None
    presence: Code | None = None
    """SCT Present or Absent (the value of DCM "Presence of property")."""
    site: Code | None = None
    laterality: Code | None = None
    source: str = ""
    """The words the codes came from ("question", "answer", "box label")."""

    @property
    def empty(self) -> bool:
        return self.finding is None and self.site is None


@cache
def _pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    longest_first = sorted(words, key=len, reverse=True)
    return re.compile(r"\b(" + "|".join(re.escape(w) for w in longest_first) + r")\b")


def _sct(keyword: str) -> Code:
    from pydicom.sr.codedict import codes

    code: Code = getattr(codes.SCT, keyword)
    return code


def finding_code(text: str) -> Code | None:
    """The first finding named in ``text`` (longest phrase wins: "pleural effusion")."""
    from pydicom.sr.coding import Code

    words = (*FINDING_WORDS, *EXTRA_FINDINGS)
    match = _pattern(words).search(text.lower())
    if match is None:
        return None
    word = match.group(1)
    if word in EXTRA_FINDINGS:
        value, meaning = EXTRA_FINDINGS[word]
        return Code(value, "SCT", meaning)
    return _sct(FINDING_WORDS[word])


def anatomy_code(text: str) -> tuple[Code | None, Code | None]:
    """The first organ named in ``text`` and the side written next to it, if any."""
    lowered = text.lower()
    match = _pattern(tuple(ANATOMY_WORDS)).search(lowered)
    if match is None:
        return None, None
    before = lowered[max(0, match.start() - 12) : match.start()]
    side = next((SIDES[s] for s in SIDES if re.search(rf"\b{s}\b", before)), None)
    return _sct(ANATOMY_WORDS[match.group(1)]), _sct(side) if side else None


def code_label(text: str, source: str) -> CodedFinding:
    """Codes for a short phrase (a box label, an open answer): a finding named in it counts
    as present, an organ as the site."""
    finding = finding_code(text)
    site, side = anatomy_code(text)
    presence = _sct("Present") if finding is not None else None
    return CodedFinding(finding, presence, site, side, source)


def coded_findings(answer: Answer, question: str) -> tuple[CodedFinding, ...]:
    """What ``answer`` (to ``question``) says in codes.

    - closed (yes/no): the finding the question names, Present for "yes" and Absent for "no",
      at the organ the question names ("Is there a nodule in the left lung?");
    - open and multiple choice: a finding or organ the answer names;
    - report: nothing (free text stays free text);
    - abstained or unparsed answers: nothing.
    """
    if answer.abstained or not answer.parsed or not answer.text:
        return ()
    text = answer.text.strip().lower()
    if answer.kind == "closed":
        if text not in ("yes", "no"):
            return ()
        finding = finding_code(question)
        site, side = anatomy_code(question)
        if finding is None and site is None:
            return ()
        presence = _sct("Present" if text == "yes" else "Absent")
        return (CodedFinding(finding, presence if finding else None, site, side, "question"),)
    if answer.kind in ("open", "choice"):
        coded = code_label(text, "answer")
        return () if coded.empty else (coded,)
    return ()


def as_dict(code: Code | None) -> dict[str, Any] | None:
    """A code as plain data (for JSON, FHIR and tests)."""
    if code is None:
        return None
    return {"code": code.value, "scheme": code.scheme_designator, "meaning": code.meaning}
