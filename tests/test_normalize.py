"""medlens's one answer normaliser: the cases each of the three earlier normalisers handled
(the task parsers', the ``medlens`` protocol's, trust's), where they disagreed the merged
rule's answer, and the parser, the scorer and candidate voting agreeing through it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medlens.bench.protocols import get_protocol
from medlens.bench.samples import Sample
from medlens.normalize import normalize_answer
from medlens.tasks.parse import match_candidates
from medlens.trust.confidence import match_candidate


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the task parsers' cases, where their rule and the scorer's agreed
        ("  The Left Lung. ", "left lung"),
        ("YES!", "yes"),
        ("an   enlarged\theart", "enlarged heart"),
        ("x-ray", "x ray"),
        ("2.5 cm", "2.5 cm"),
        ("1,000 mL", "1000 ml"),
        ("end of sentence.", "end of sentence"),
        ("two", "2"),
        ("twenty", "20"),
        ("None", "none"),
        ("no", "no"),
        ("Ｔ２ weighted", "t2 weighted"),  # full-width characters (NFKC)
        ("", ""),
        ("...", ""),
        ("a", ""),
        # trust's (SQuAD style, ASCII punctuation only): now also Unicode punctuation and
        # decimal points, as the scorer reads them
        ("The left lung.", "left lung"),
        ("Yes, there is an effusion", "yes there is effusion"),
        ("“left”", "left"),
        ("1.5", "1.5"),
    ],
)
def test_normalize_answer(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


@pytest.mark.parametrize(
    ("text", "expected", "parsers_rule"),
    [
        ("Twenty-one nodules", "20 1 nodules", "21 nodules"),
        ("ninety nine", "ninety 9", "99"),
        ("don't know", "don t know", "dont know"),
        ("1,2", "1 2", "12"),  # a list, not twelve
        ("xray", "x ray", "xray"),
    ],
)
def test_where_the_parsers_rule_differed_the_scorers_rule_holds(
    text: str, expected: str, parsers_rule: str
) -> None:
    """The scoring rule was kept (no ``medlens`` score changes); the parsers moved onto it,
    so the closed and multiple-choice tasks are at version 3."""
    assert normalize_answer(text) == expected != parsers_rule


def test_normalize_is_idempotent() -> None:
    for text in ["The 2.5 cm Mass, left-sided.", "Thirty-two", "an X-Ray (PA view)", "1,0000"]:
        once = normalize_answer(text)
        assert normalize_answer(once) == once


def test_parser_scorer_and_voting_agree_on_one_answer() -> None:
    """ "xray" is "X-ray" for the closed parser, for trust's candidate matching and for the
    ``medlens`` protocol; "twenty-one" is "21" for none of them."""
    candidates = ("X-ray", "CT")
    assert match_candidates("xray", candidates) == (0, None)
    assert match_candidate("xray", candidates) == "X-ray"
    sample = Sample("1", "vqa-rad", "test", "Which modality?", ("X-ray",), "closed", ())
    assert get_protocol("medlens").score(sample, "xray").outcome == "correct"
    numbers = ("21", "22")
    assert match_candidates("twenty-one", numbers)[0] is None
    assert match_candidate("twenty-one", numbers) is None
    counted = Sample("2", "vqa-rad", "test", "How many?", ("21",), "closed", ())
    assert get_protocol("medlens").score(counted, "twenty-one").outcome == "wrong"


def _reference_answers(shared_data: Path) -> set[str]:
    answers = set()
    for split in ("train", "validate", "test"):
        rows = json.loads((shared_data / "slake/Slake1.0" / f"{split}.json").read_text())
        answers |= {str(r["answer"]) for r in rows if r["q_lang"] == "en"}
    for split in ("trainset", "testset"):
        rows = json.loads((shared_data / "vqa-rad/data_RAD" / f"{split}.json").read_text())
        answers |= {str(r["answer"]) for r in rows}
    return answers


def test_reference_answers_of_slake_and_vqa_rad(shared_data: Path) -> None:
    """Every English SLAKE and VQA-RAD reference answer is a fixed point once normalised, and
    every spelling of x-ray in them ("X-Ray", "Xray", "chest x Ray") reads alike."""
    answers = _reference_answers(shared_data)
    assert len(answers) > 700
    for answer in answers:
        once = normalize_answer(answer)
        assert normalize_answer(once) == once, answer
    xrays = {a for a in answers if "".join(c for c in a.lower() if c.isalpha()) == "xray"}
    assert {"X-Ray", "x-ray", "Xray"} <= xrays
    assert {normalize_answer(a) for a in xrays} == {"x ray"}
