"""Free-text PHI scrubbing: every identifier kind, and clinical text left alone."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from medlens.privacy import scrub_text
from medlens.privacy.text import clinical_vocabulary, find_phi
from medlens.testing.phi import PHI, synthetic_report

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("text", "kind", "phi"),
    [
        ("Seen by Dr. Ann Lee today.", "NAME", "Ann Lee"),
        ("Patient: DOE^JOHN", "NAME", "DOE^JOHN"),
        ("FRANÇOIS^RAYMOND", "NAME", "FRANÇOIS"),
        ("Compared with the study of Maria Colon in clinic.", "NAME", "Colon"),
        ("Compared with the study of Iris Brown in clinic.", "NAME", "Iris Brown"),
        ("Results to Hoareau, Daniel today.", "NAME", "Hoareau"),
        ("Screen: WHITE AARON", "NAME", "WHITE"),
        ("Signed: Smith, Robert", "NAME", "Smith, Robert"),
        ("Results discussed with Zofia Kowalczyk by phone.", "NAME", "Zofia Kowalczyk"),
        ("Compared with the study of Linda Brown in clinic.", "NAME", "Linda Brown"),
        ("Patient: Wouters van Eijndhoven, Cornelis", "NAME", "Cornelis"),
        ("Patient: Dussen van, Anselm", "NAME", "Anselm"),
        ("Referring physician: Dr. Hans-Heinrich Süßebier", "NAME", "Süßebier"),
        ("Signed by Dr. Ian McKenzie today.", "NAME", "McKenzie"),
        ("Patient: auch Schlauchin, Rigo", "NAME", "Schlauchin"),
        ("Electronically signed by Vinzenz auch Schlauchin, Clinic.", "NAME", "Schlauchin"),
        ("DOB 1951-03-02.", "DATE", "1951-03-02"),
        ("Exam on 03/04/2021 at noon.", "DATE", "03/04/2021"),
        ("Prior of 12 Jan 2019 reviewed.", "DATE", "12 Jan 2019"),
        ("Seen on March 4, 2021.", "DATE", "March 4, 2021"),
        ("StudyDate 20210304 in header.", "DATE", "20210304"),
        ("MRN: 48213377", "ID", "48213377"),
        ("Accession #KX4410923 pending.", "ID", "KX4410923"),
        ("SSN 123-45-6789 on file.", "SSN", "123-45-6789"),
        ("Call (617) 555-0134 for results.", "PHONE", "(617) 555-0134"),
        ("Call +44 20 7946 0958 for results.", "PHONE", "+44 20 7946 0958"),
        ("Email m.okonkwo@example.org please.", "EMAIL", "m.okonkwo@example.org"),
        ("Portal https://portal.example.org/p/77 link.", "URL", "https://portal.example.org/p/77"),
        ("Lives at 42 Larkspur Avenue, Springfield, IL 62704.", "ADDRESS", "42 Larkspur Avenue"),
        ("Address: 7839 Aparecida Lane, Sousa do Amparo 38618", "ADDRESS", "38618"),
        ("Address: 4904 Moccia Drive, Santa Maria La Scala 24458", "ADDRESS", "24458"),
        ("Address: 8323 Junck Avenue, Neunburg vorm Wald 81787", "ADDRESS", "81787"),
        (
            "Address: 3624 Pizzetti Avenue, Zingone Di Trezzano Sul Naviglio 16203",
            "ADDRESS",
            "16203",
        ),
        ("Address: 8419 Rossellini Street, Torre A Mare 41188", "ADDRESS", "41188"),
        ("Address: 7501 Koch II Street, Halberstadt 47763", "ADDRESS", "47763"),
        ("Address: 6031 McKenzie Avenue, Thomasside 13017", "ADDRESS", "6031 McKenzie Avenue"),
        ("A 93-year-old woman with cough.", "AGE", "93"),
        ("Patient aged 91 presents.", "AGE", "91"),
    ],
)
def test_each_identifier_kind_is_replaced_by_its_placeholder(
    text: str, kind: str, phi: str
) -> None:
    result = scrub_text(text)
    assert phi not in result.text
    assert f"[{kind}]" in result.text
    assert any(s.kind == kind for s in result.spans)


@pytest.mark.parametrize(
    "text",
    [
        "There is a 7 mm nodule in the right upper lobe.",
        "Mild degenerative change at L4-L5 with disc height loss.",
        "T2 hyperintense lesion in the left frontal white matter.",
        "Findings are consistent with Hodgkin lymphoma involving mediastinal nodes.",
        "Foley catheter in place; Hounsfield units of the nodule measure 8.",
        "A 45-year-old man with chest pain in 2019.",
        "BI-RADS 4 mass at 2 o'clock, 3 cm from the nipple.",
        "Is there a pneumothorax on this chest X-ray?",
        # SLAKE grounding prompts and answers: organs that are census surnames too.
        "Locate the Colon in this image.",
        "Locate the Left Kidney in this image.",
        "Locate the Brain Stem in this image.",
        "Locate the Right Eye in this image.",
        "Rectum, Small Bowel, Colon",
        "Liver, Kidney",
        "Psoas Major Muscle",
        "Which organ is abnormal, Heart or Lung? Dark Gray",
        "Is this a chest x Ray?",
        "Nail unit of the Little finger.",
    ],
)
def test_clinical_text_is_left_alone(text: str) -> None:
    result = scrub_text(text)
    assert result.text == text, result.spans


def test_short_lowercase_words_join_names_but_english_ones_do_not() -> None:
    """A word like 'auch' joins a surname; 'for' ends it, so the clinical term after stays."""
    assert scrub_text("Signed by Vinzenz auch Schlauchin.").text == "Signed by [NAME]."
    assert (
        scrub_text("Discussed with Dr Smith for CT of the abdomen.").text
        == "Discussed with Dr [NAME] for CT of the abdomen."
    )


def test_spans_point_at_the_original_text() -> None:
    text = "Dr. Ann Lee saw the patient on 03/04/2021, MRN 123456."
    result = scrub_text(text)
    assert [text[s.start : s.end] for s in result.spans] == ["Ann Lee", "03/04/2021", "123456"]
    assert result.counts() == {"NAME": 1, "DATE": 1, "ID": 1}
    assert result.text == "Dr. [NAME] saw the patient on [DATE], MRN [ID]."


def test_generated_reports_lose_their_phi_and_keep_clinical_terms(phi: PHI) -> None:
    rng = np.random.default_rng(5)
    missed = kept = total_terms = total_phi = 0
    for _ in range(20):
        report = synthetic_report(phi, rng)
        out = scrub_text(report.text).text
        total_phi += len(report.phi)
        missed += sum(value in out for _, value in report.phi)
        total_terms += len(report.clinical)
        kept += sum(term in out for term in report.clinical)
    assert missed / total_phi <= 0.02
    assert kept / total_terms >= 0.95


def test_the_clinical_vocabulary_is_what_pydicom_gives() -> None:
    """clinical_words.txt is generated from DICOM PS3.16 as pydicom ships it; eponyms are not
    in it (SNOMED CT never writes them in lower case)."""
    pytest.importorskip("pydicom")
    spec = importlib.util.spec_from_file_location(
        "make_clinical_words", REPO / "scripts" / "make_clinical_words.py"
    )
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    words = clinical_vocabulary()
    assert sorted(words) == script.clinical_words(), "run scripts/make_clinical_words.py"
    assert {"COLON", "KIDNEY", "EYE", "STEM", "LITTLE", "GRAY"} <= words
    assert not {"HODGKIN", "WILLIS", "DOUGLAS", "SMITH"} & words


@pytest.mark.data
def test_slake_grounding_labels_are_not_names(shared_data: Path) -> None:
    """Every organ and finding label of SLAKE's detection.json stays in its grounding prompt."""
    from medlens.bench.benchmarks.slake import GROUNDING_PROMPT, read_boxes

    folders = sorted((shared_data / "slake" / "Slake1.0" / "imgs").iterdir())
    labels = {box["label"] for folder in folders for box in read_boxes(folder)}
    assert len(labels) > 40
    named = [
        label for label in labels if find_phi(GROUNDING_PROMPT.format(label=label), names=True)
    ]
    assert named == []
