"""PHI told from clinical labels, line by line: the study's own header values, PHI-shaped
strings and names go; organ, side, position and device labels and measurements stay."""

from __future__ import annotations

import pydicom
import pytest
from pydicom.data import get_testdata_file

from medlens.privacy.labels import (
    Identifiers,
    LineDecision,
    classify_line,
    needs_second_reading,
    second_reading,
)
from medlens.privacy.ocr import OcrLine

HEADER = Identifiers.from_values(
    {
        "PatientName": "Okonkwo^Margaret",
        "PatientID": "48213377",
        "PatientBirthDate": "19310214",
        "AccessionNumber": "KX4410923",
        "InstitutionName": "Baptist Medical Center",
        "StudyDate": "20210603",
        "ReferringPhysicianName": "Vestergaard^Henrik",
    }
)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("OKONKWO^MARGARET", "header:PatientName"),
        ("margaret okonkwo", "header:PatientName"),  # any casing, any order
        ("Okonkwo, M", "header:PatientName"),
        ("MRN48213377", "header:PatientID"),  # inside a longer string
        ("MRN 482I3377", "header:PatientID"),  # one OCR confusion
        ("DOB 14/02/1931", "header:PatientBirthDate"),
        ("14 Feb 1931", "header:PatientBirthDate"),
        ("03.06.2021", "header:StudyDate"),
        ("ACC KX4410923", "header:AccessionNumber"),
        ("BAPTIST MED CTR", "header:InstitutionName"),
        ("Dr Vestergaard", "header:ReferringPhysicianName"),
    ],
)
def test_the_studys_own_header_values_are_redacted(text: str, reason: str) -> None:
    decision = classify_line(text, HEADER)
    assert decision.redact and decision.reason == reason


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("SMITH^JOHN", "phi:NAME"),
        ("Dr Ann Lee", "phi:NAME"),
        ("2019-11-02", "phi:DATE"),
        ("/07/202", "phi:DATE"),  # a piece of a date drawn down a column
        ("08.07.", "phi:DATE"),
        ("ID 83260749", "phi:ID"),
        ("(617) 555-0134", "phi:PHONE"),
        ("Compressed 27:1", "unrecognised"),  # a word nobody listed may be a name
    ],
)
def test_phi_shaped_and_unknown_text_is_redacted_without_a_header(text: str, reason: str) -> None:
    decision = classify_line(text)
    assert decision.redact and decision.reason == reason


@pytest.mark.parametrize(
    "text",
    [
        "LIVER L",
        "RT KIDNEY",
        "PORTABLE",
        "SUPINE",
        "GAIN 52%",
        "DEPTH 16cm",
        "5C1",
        "D1 2.34 cm",
        "W 400 L 40",
        "TR 4000 TE 90",
        "H&E 20x",
        "10",
        "LYMPH NODE",
        "Zoom : 50.15%",
        "CINE 45/120",
        "120/80",
        "5.0",
        "2.5.1",
    ],
)
def test_clinical_labels_are_kept(text: str) -> None:
    assert classify_line(text, HEADER).reason == "clinical"
    assert not classify_line(text, HEADER).redact


def test_redact_all_takes_labels_too_and_an_empty_header_matches_nothing() -> None:
    assert classify_line("LIVER L", HEADER, redact_all=True).reason == "all-text"
    assert not Identifiers() and Identifiers().match("OKONKWO 48213377") is None
    assert Identifiers.merge([HEADER, Identifiers()]) == HEADER


def test_identifiers_come_from_a_real_dataset() -> None:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    found = Identifiers.from_dataset(ds)
    name = str(ds.PatientName).split("^")[0]
    assert found.match(f"{name.lower()} x") == "PatientName"
    assert found.match(f"ID {ds.PatientID}") == "PatientID"
    assert found.fingerprint() != HEADER.fingerprint()


def _read(text: str, score: float = 0.99) -> OcrLine:
    return OcrLine(((0, 0), (60, 0), (60, 20), (0, 20)), text, score)


UNKNOWN = LineDecision(True, "unrecognised")
KEPT = LineDecision(False, "clinical")


def test_which_lines_are_read_again() -> None:
    assert needs_second_reading("IHI", classify_line("IHI"))  # unrecognised and short
    assert not needs_second_reading("BAPTIST MED CTR", classify_line("BAPTIST MED CTR"))
    assert needs_second_reading("OT", classify_line("OT"))  # kept only as a two-letter code
    assert not needs_second_reading("AP", classify_line("AP"))  # a listed view
    assert not needs_second_reading("GAIN 52%", classify_line("GAIN 52%"))
    assert not needs_second_reading("48213377", classify_line("48213377"))  # PHI: final


@pytest.mark.parametrize(
    ("first", "reads", "decision"),
    [
        ("IHI", ["THI"], KEPT),  # one glyph misread
        ("AIR", ["FLAIR"], KEPT),  # the line looked along
        ("AIR", ["MIR", "FLAIR"], KEPT),  # unknown reads before do not stop it
        ("FLAIR", ["AIR"], UNKNOWN),  # a shorter read proves nothing
        ("IHI", ["HI"], UNKNOWN),  # nor a two-letter one
        ("IHI", [], UNKNOWN),  # nothing read surely: stays redacted
        ("NOOR", ["NOOR", "NOUR"], UNKNOWN),
        ("OKONKWC", ["OKONKWO", "FLAIR"], LineDecision(True, "header:PatientName")),
        ("IHI", ["48213377"], LineDecision(True, "header:PatientID")),
    ],
)
def test_a_second_reading_keeps_a_label_read_whole_and_nothing_else(
    first: str, reads: list[str], decision: LineDecision
) -> None:
    after, read = second_reading(_read(first), UNKNOWN, map(_read, reads), HEADER)
    assert after == decision
    assert (read is not None and read.text in reads) == (after != UNKNOWN)


@pytest.mark.parametrize(
    ("score", "reads", "decision"),
    [
        (0.95, [], KEPT),  # read surely, nothing says otherwise
        (0.65, [], UNKNOWN),  # read unsure and never surely: goes
        (0.65, ["OT"], KEPT),  # confirmed
        (0.95, ["OTT"], UNKNOWN),  # a code read short of its word
        (0.95, ["OKONKWO"], LineDecision(True, "header:PatientName")),
    ],
)
def test_a_two_letter_code_stays_only_when_no_read_says_otherwise(
    score: float, reads: list[str], decision: LineDecision
) -> None:
    after, _ = second_reading(_read("OT", score), KEPT, map(_read, reads), HEADER)
    assert after == decision


def test_labels_beside_a_phi_line_are_its_clinical_words_at_its_ends() -> None:
    """Only words with letters and no digits at either end, and only while the words
    between still show PHI: a number beside a date may be its year, a line that is PHI only
    with the end word is not cut."""
    from medlens.privacy.labels import labels_beside

    ids = Identifiers.from_values({"PatientName": "Okonkwo^Margaret"})
    assert labels_beside(["R", "DOB", "14/02/1931"]) == (1, 0)
    assert labels_beside(["OKONKWO", "MARGARET", "SUPINE"], ids) == (0, 1)
    assert labels_beside(["L", "LIVER", "OKONKWO", "PA"], ids) == (2, 1)
    assert labels_beside(["14/02/", "1931"]) == (0, 0)  # a year stays with its date
    assert labels_beside(["LIVER", "SUPINE"]) == (0, 0)  # nothing to redact between
    assert labels_beside(["R", "ZORBLAX"]) == (0, 0)  # unrecognised is not PHI shown
