"""Confidence methods on hand-made generations, and the abstention reason."""

from __future__ import annotations

import math

import pytest

from medlens.errors import UnknownNameError
from medlens.trust.abstain import Threshold, abstention_reason
from medlens.trust.confidence import (
    all_confidences,
    estimate_confidence,
    match_candidate,
    parse_verbalized,
)
from medlens.types import Answer, Confidence, Generation, Request, TokenLogprob


def _request(kind: str = "closed", candidates: tuple[str, ...] = ("yes", "no")) -> Request:
    return Request(
        id="q1", messages=(), kind=kind, question="Is there a fracture?", candidates=candidates
    )  # type: ignore[arg-type]


def _gen(text: str = "yes", **fields: object) -> Generation:
    return Generation(request_id="q1", text=text, model="m", backend="scripted", **fields)  # type: ignore[arg-type]


def _answer(text: str | None = "yes", parsed: bool = True, **fields: object) -> Answer:
    return Answer(kind="closed", raw=text or "", parsed=parsed, text=text, **fields)  # type: ignore[arg-type]


def test_candidates_from_scored_logprobs() -> None:
    gen = _gen(candidate_logprobs={"yes": math.log(0.3), "no": math.log(0.1)})
    c = estimate_confidence(_answer("yes"), gen, _request(), method="candidates")
    assert c is not None and c.method == "candidates"
    assert c.value == pytest.approx(0.75)
    assert c.candidate_probs["no"] == pytest.approx(0.25)
    # The same probabilities, read for the other answer.
    other = estimate_confidence(_answer("no"), gen, _request(), method="candidates")
    assert other is not None and other.value == pytest.approx(0.25)


def test_candidates_from_first_token_top_logprobs() -> None:
    # "The answer is Yes": the first token that begins a candidate is " Yes"; " yes" and
    # "Yes" also begin "yes" and add up; "No" begins "no"; "Maybe" begins neither.
    tokens = (
        TokenLogprob("The", math.log(0.9)),
        TokenLogprob(" answer", math.log(0.9)),
        TokenLogprob(" is", math.log(0.9)),
        TokenLogprob(
            " Yes",
            math.log(0.5),
            top=(
                (" Yes", math.log(0.5)),
                ("Yes", math.log(0.1)),
                (" No", math.log(0.2)),
                (" Maybe", math.log(0.1)),
            ),
        ),
    )
    gen = _gen("The answer is Yes", tokens=tokens)
    c = estimate_confidence(_answer("yes"), gen, _request(), method="candidates")
    assert c is not None
    assert c.value == pytest.approx(0.6 / 0.8)


def test_candidate_missing_from_top_list_gets_the_floor() -> None:
    tokens = (
        TokenLogprob("no", math.log(0.7), top=(("no", math.log(0.7)), ("maybe", math.log(0.1)))),
    )
    c = estimate_confidence(
        _answer("no"), _gen("no", tokens=tokens), _request(), method="candidates"
    )
    assert c is not None and c.value == pytest.approx(0.7 / 0.8)


def test_ambiguous_first_token_gives_no_candidate_confidence() -> None:
    req = _request("open", ("left lung", "left kidney"))
    tokens = (TokenLogprob("left", -0.1, top=(("left", -0.1),)), TokenLogprob(" lung", -0.2))
    gen = _gen("left lung", tokens=tokens)
    assert estimate_confidence(_answer("left lung"), gen, req, method="candidates") is None
    # auto falls through to the sequence likelihood.
    c = estimate_confidence(_answer("left lung"), gen, req)
    assert c is not None and c.method == "sequence" and c.value == pytest.approx(math.exp(-0.15))


def test_multiple_choice_letter() -> None:
    req = _request("choice", ("CT", "MRI", "X-ray"))
    gen = _gen("B", candidate_logprobs={"CT": -2.0, "MRI": -0.5, "X-ray": -3.0})
    answer = Answer(kind="choice", raw="B", parsed=True, text="MRI", choice="B")
    c = estimate_confidence(answer, gen, req)
    expected = math.exp(-0.5) / (math.exp(-2.0) + math.exp(-0.5) + math.exp(-3.0))
    assert c is not None and c.value == pytest.approx(expected)
    assert match_candidate("(C) X-ray", req.candidates, "choice") == "X-ray"


def test_consistency_counts_normalised_agreement() -> None:
    samples = ("Yes.", "yes, there is", "No", "YES")
    gen = _gen("Yes.", samples=samples)
    c = estimate_confidence(_answer("yes"), gen, _request(), method="consistency")
    assert c is not None and c.value == pytest.approx(0.75)
    assert c.candidate_probs == {"yes": 0.75, "no": 0.25}
    open_gen = _gen("The left lung", samples=("The left lung", "left lung.", "right lung"))
    o = estimate_confidence(
        _answer("left lung"), open_gen, _request("open", ()), method="consistency"
    )
    assert o is not None and o.value == pytest.approx(2 / 3)


def test_consistency_votes_with_the_scorers_rule() -> None:
    """Samples that the ``medlens`` protocol would score as one answer are one vote: number
    words, decimal points and Unicode punctuation are read as the scorer reads them."""
    samples = ("Two nodules", "2 nodules.", "“2” nodules", "3 nodules")
    gen = _gen("Two nodules", samples=samples)
    c = estimate_confidence(_answer("2 nodules"), gen, _request("open", ()), method="consistency")
    assert c is not None and c.value == pytest.approx(0.75)
    assert c.candidate_probs == {"2 nodules": 0.75, "3 nodules": 0.25}
    sizes = _gen("2.5 cm", samples=("2.5 cm", "2 5 cm"))
    d = estimate_confidence(_answer("2.5 cm"), sizes, _request("open", ()), method="consistency")
    assert d is not None and d.value == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Yes. Confidence: 80%", 0.8),
        ("no (confidence 0.35)", 0.35),
        ("I am 90 percent sure it is the liver", 0.9),
        ("Answer: yes. I'm 0.7 confident.", 0.7),
        ("Confidence level: 65", 0.65),
        ("probability: .4", 0.4),
        ("The lesion measures 80 mm", None),
    ],
)
def test_verbalized(text: str, value: float | None) -> None:
    assert parse_verbalized(text) == (pytest.approx(value) if value is not None else None)


def test_unparsed_and_declined_answers_get_no_confidence() -> None:
    gen = _gen("blah", candidate_logprobs={"yes": -1.0, "no": -1.0})
    assert estimate_confidence(_answer(None, parsed=False), gen, _request()) is None
    declined = _answer("yes", abstained=True, abstain_reason="model declined")
    assert estimate_confidence(declined, gen, _request()) is None


def test_all_confidences_reports_every_available_method() -> None:
    gen = _gen(
        "yes, confidence 90%",
        candidate_logprobs={"yes": -0.1, "no": -2.5},
        tokens=(TokenLogprob("yes", -0.1),),
        samples=("yes", "no"),
    )
    found = all_confidences(_answer("yes"), gen, _request())
    assert set(found) == {"candidates", "consistency", "sequence", "verbalized"}
    assert found["verbalized"].value == pytest.approx(0.9)
    assert found["consistency"].value == pytest.approx(0.5)


def test_unknown_method_suggests() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'sequence'"):
        estimate_confidence(_answer(), _gen(), _request(), method="sequense")


def test_abstention_reason() -> None:
    c = Confidence(0.41, "candidates", calibrated=True, profile="rad")
    reason = abstention_reason(_answer(), c, Threshold(0.73, 0.05))
    assert (
        reason
        == "confidence 0.41 (candidates, calibrated by rad) below threshold 0.73 (target risk 5%)"
    )
    assert abstention_reason(_answer(), c, 0.4) is None
    assert abstention_reason(_answer(), None, 0.9) is None
    assert abstention_reason(_answer(), c, None) is None
    # Unparsed answers are their own class, never abstentions.
    assert abstention_reason(_answer(None, parsed=False), c, 0.9) is None
    # A model that declined keeps its reason (the pipeline must not undo it).
    declined = _answer("yes", abstained=True, abstain_reason="cannot see the image")
    assert abstention_reason(declined, None, None) == "cannot see the image"
