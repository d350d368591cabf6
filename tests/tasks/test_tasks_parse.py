"""Parsing model text into answers: strict, total, never guessing an option."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence

import pytest
from PIL import Image

from medlens.tasks import get_task
from medlens.tasks.parse import MAX_PARSE_CHARS
from medlens.types import Answer, Generation, Request, View

OPTIONS = ("Pneumonia", "Viral pneumonia", "Cardiomegaly", "Effusion")


def request_for(
    kind: str, candidates: Sequence[str] = (), size: tuple[int, int] = (200, 100)
) -> Request:
    views = [View(Image.new("L", size), "PA", ())]
    question = "Locate the findings." if kind == "grounding" else "What is it?"
    return get_task(kind).build(views, question, request_id="r", candidates=candidates)


def parse(kind: str, text: str, candidates: Sequence[str] = (), **generation: object) -> Answer:
    request = request_for(kind, candidates)
    gen = Generation("r", text, "model", "test", **generation)  # type: ignore[arg-type]
    return get_task(kind).parse(gen, request)


# ------------------------------------------------------------------------------------------
# closed
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Yes.", "yes"),
        ("yes", "yes"),
        ("YES", "yes"),
        ("No", "no"),
        ("No, there is no pleural effusion.", "no"),
        ("Yes, there is a nodule; no effusion.", "yes"),
        ("There is no pneumothorax.", "no"),
        ("The answer is yes", "yes"),
        ("Answer: no", "no"),
        ("**Answer:** Yes", "yes"),
        ("<think>Looking at the apex... maybe yes, maybe no.</think>\nNo.", "no"),
        ("The lungs look hyperinflated and the heart is small.\nFinal answer: yes", "yes"),
        ("yes there is a fracture", "yes"),
        ("Based on the image, yes, there is an effusion, but no pneumothorax.", "yes"),
        ("There is blunting of the costophrenic angle. No.", "no"),
    ],
)
def test_closed_reads_yes_no(text: str, expected: str) -> None:
    answer = parse("closed", text)
    assert answer.parsed, answer.parse_error
    assert answer.text == expected
    assert answer.raw == text


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("normal", "none of the candidates"),
        ("Nodule", "none of the candidates"),
        ("The heart size is normal.", "none of the candidates"),
        ("not sure", "hedges"),
        ("Unknown", "hedges"),
        ("I cannot determine this from the image; the answer could be yes.", "hedges"),
        ("I don't know", "hedges"),
        ("I dont know", "hedges"),
        ("I can’t tell from this image", "hedges"),
        ("I'm sorry, I cannot answer that.", "hedges"),
        ("yes and no", "several candidates"),
        ("It could be yes or no", "several candidates"),
        ("None", "none of the candidates"),
        ("", "empty output"),
        ("   \n\t ", "empty output"),
        ("<think>the apex shows", "unfinished reasoning"),
        ("Noted.", "none of the candidates"),
        ("Nope", "none of the candidates"),
    ],
)
def test_closed_refuses_to_guess(text: str, reason: str) -> None:
    answer = parse("closed", text)
    assert not answer.parsed
    assert answer.text is None
    assert answer.parse_error is not None and reason in answer.parse_error
    assert answer.raw == text


def test_closed_with_other_candidates() -> None:
    assert parse("closed", "Left.", ("left", "right")).text == "left"
    assert parse("closed", "It is on the right side", ("left", "right")).text == "right"
    assert not parse("closed", "Both left and right", ("left", "right")).parsed


def test_closed_reads_answers_as_the_scorer_does() -> None:
    """closed@3: candidates are matched with the ``medlens`` scoring rule (medlens.normalize),
    so "xray" is "X-ray", and a spelling the scorer would not accept is not read as one."""
    assert parse("closed", "Xray.", ("X-ray", "CT")).text == "X-ray"
    assert parse("closed", "it is a chest x ray", ("X-ray", "CT")).text == "X-ray"
    assert not parse("closed", "twenty-one", ("21", "22")).parsed
    assert parse("closed", "twenty", ("20", "21")).text == "20"
    assert not parse("closed", "1,2", ("12", "13")).parsed
    assert parse("closed", "1,000 mL", ("1000 mL", "100 mL")).text == "1000 mL"
    assert parse("closed", "Crohn’s disease", ("Crohn's disease", "colitis")).text == (
        "Crohn's disease"
    )


def test_closed_keeps_the_rationale() -> None:
    answer = parse("closed", "Answer: yes\nRationale: the costophrenic angle is blunted.")
    assert (answer.text, answer.rationale) == ("yes", "the costophrenic angle is blunted.")


# ------------------------------------------------------------------------------------------
# choice
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("(B)", "B"),
        ("B", "B"),
        ("b", "B"),
        ("B.", "B"),
        ("B. Viral pneumonia", "B"),
        ("Answer: B", "B"),
        ("answer: (c)", "C"),
        ("the answer is c", "C"),
        ("The correct option is D.", "D"),
        ("Cardiomegaly", "C"),
        ("viral pneumonia", "B"),
        ("The image shows viral pneumonia in the left lower lobe.", "B"),
        ("Answer: C cardiomegaly", "C"),
        ("Option A is wrong because ... so the answer is (D)", "D"),
        ("<think>A or B?</think>Answer: A", "A"),
    ],
)
def test_choice_reads_letters_and_option_text(text: str, letter: str) -> None:
    answer = parse("choice", text, OPTIONS)
    assert answer.parsed, answer.parse_error
    assert answer.choice == letter
    assert answer.text == OPTIONS[ord(letter) - ord("A")]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("E", "letter E is not an option (A-D)"),
        ("Answer: F", "letter F is not an option"),
        ("the answer is a mass", "none of the candidates"),
        ("pneumonia or effusion", "several candidates"),
        ("I am not sure", "hedges"),
        ("", "empty output"),
        ("(A) or (B)", "several options are named: A, B"),
    ],
)
def test_choice_never_maps_to_a_random_option(text: str, reason: str) -> None:
    answer = parse("choice", text, OPTIONS)
    assert not answer.parsed
    assert answer.choice is None and answer.text is None
    assert answer.parse_error is not None and reason in answer.parse_error


# ------------------------------------------------------------------------------------------
# open
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "short", "rationale"),
    [
        ("Left lung", "Left lung", None),
        ("The answer is the left lung.", "the left lung", None),
        (
            "Answer: pneumothorax\nRationale: no lung markings at the apex",
            "pneumothorax",
            "no lung markings at the apex",
        ),
        (
            "Liver, because the lesion is below the diaphragm.",
            "Liver",
            "because the lesion is below the diaphragm",
        ),
        (
            "Pneumothorax. There is air in the pleural space.",
            "Pneumothorax",
            "There is air in the pleural space.",
        ),
        ("2.5 cm.", "2.5 cm", None),
        ('"MRI"', "MRI", None),
        ("None", "None", None),
        ("Reasoning: the slice is axial.\nAnswer: CT", "CT", "the slice is axial."),
    ],
)
def test_open_short_answer_and_rationale(text: str, short: str, rationale: str | None) -> None:
    answer = parse("open", text)
    assert answer.parsed, answer.parse_error
    assert (answer.text, answer.rationale) == (short, rationale)


@pytest.mark.parametrize("text", ["", ".", "Answer:", "<think>unfinished"])
def test_open_unparsed(text: str) -> None:
    answer = parse("open", text)
    assert not answer.parsed and answer.text is None and answer.parse_error


# ------------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------------


def test_report_sections_in_the_usual_spellings() -> None:
    plain = parse("report", "Findings: Clear lungs.\nNo effusion.\nImpression: Normal chest.")
    assert dict(plain.sections) == {
        "findings": "Clear lungs.\nNo effusion.",
        "impression": "Normal chest.",
    }
    assert plain.text == "Normal chest."
    markdown = parse("report", "## FINDINGS\nSmall nodule.\n\n**IMPRESSION:** Nodule.")
    assert dict(markdown.sections) == {"findings": "Small nodule.", "impression": "Nodule."}
    inline = parse("report", "Findings: cardiomegaly. Conclusion: heart failure.")
    assert dict(inline.sections) == {"findings": "cardiomegaly.", "impression": "heart failure."}
    findings_only = parse("report", "Findings: unremarkable.")
    assert findings_only.parsed and findings_only.text == "unremarkable."


@pytest.mark.parametrize("text", ["The findings suggest pneumonia.", "", "Impression:"])
def test_report_without_sections_is_unparsed(text: str) -> None:
    answer = parse("report", text)
    assert not answer.parsed and not answer.sections and answer.parse_error


# ------------------------------------------------------------------------------------------
# grounding
# ------------------------------------------------------------------------------------------


def boxes_of(answer: Answer) -> list[tuple[str, float, float, float, float]]:
    return [(b.label, b.x0, b.y0, b.x1, b.y1) for b in answer.boxes]


def test_grounding_json_boxes_clipped_to_the_image() -> None:
    text = json.dumps(
        [
            {"label": "nodule", "box_2d": [10, 20, 50, 60]},
            {"label": "mass", "box_2d": [180, 90, 250, 140]},  # crosses the border: clipped
            {"label": "flipped", "box_2d": [30, 40, 5, 10]},  # corners in the wrong order
            {"label": "outside", "box_2d": [300, 300, 400, 400]},  # nothing left: dropped
        ]
    )
    answer = parse("grounding", text)
    assert answer.parsed
    assert boxes_of(answer) == [
        ("nodule", 10, 20, 50, 60),
        ("mass", 180, 90, 200, 100),
        ("flipped", 5, 10, 30, 40),
    ]
    assert answer.text == "nodule, mass, flipped"


def test_grounding_fenced_and_qwen_json() -> None:
    text = 'Here:\n```json\n[{"bbox_2d": [1, 2, 3, 4], "label": "a"}]\n```\nDone.'
    assert boxes_of(parse("grounding", text)) == [("a", 1, 2, 3, 4)]
    assert boxes_of(parse("grounding", '{"boxes": [{"box": [0, 0, 9, 9]}]}')) == [("", 0, 0, 9, 9)]


def test_grounding_qwen_box_tokens_are_on_a_1000_grid() -> None:
    text = "<|object_ref_start|>nodule<|object_ref_end|><|box_start|>(100,200),(500,800)<|box_end|>"
    assert boxes_of(parse("grounding", text)) == [("nodule", 20, 20, 100, 80)]


def test_grounding_paligemma_loc_tokens() -> None:
    # ymin xmin ymax xmax on a 1024 grid; image 200x100.
    answer = parse("grounding", "<loc0256><loc0512><loc0768><loc1024> effusion")
    assert boxes_of(answer) == [("effusion", 100, 25, 200, 75)]


def test_grounding_empty_list_means_nothing_found() -> None:
    answer = parse("grounding", "[]")
    assert answer.parsed and answer.boxes == ()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('[{"label": "x", "box_2d": [1, 2', "malformed JSON"),
        ('[{"label": "x", "box_2d": [1, 2, 3]}]', "no item of the JSON list is a box"),
        ('[{"label": "x", "box_2d": ["a", 2, 3, 4]}]', "no item"),
        ('[{"label": "x", "box_2d": [NaN, 2, 3, 4]}]', "no item"),
        ('"just a string"', "no JSON boxes"),
        ("There is a nodule in the left lung.", "no JSON boxes"),
        ('[{"box_2d": [500, 500, 900, 900]}]', "no box lies inside the image"),
        ("[" * 100_000, "malformed JSON"),
    ],
)
def test_grounding_malformed_is_unparsed(text: str, reason: str) -> None:
    answer = parse("grounding", text)
    assert not answer.parsed and answer.boxes == ()
    assert answer.parse_error is not None and reason in answer.parse_error


# ------------------------------------------------------------------------------------------
# scoring mode, errors, robustness
# ------------------------------------------------------------------------------------------


def test_scoring_mode_takes_the_argmax_candidate() -> None:
    answer = parse("closed", "", candidate_logprobs={"yes": -2.0, "no": -0.1})
    assert (answer.parsed, answer.text) == (True, "no")
    choice = parse("choice", "", OPTIONS, candidate_logprobs=dict(zip(OPTIONS, [-3, -1, -2, -4])))
    assert (choice.choice, choice.text) == ("B", "Viral pneumonia")


def test_scoring_ties_are_broken_by_the_text_then_by_order() -> None:
    tie = {"yes": math.log(0.5), "no": math.log(0.5)}
    assert parse("closed", "No.", candidate_logprobs=tie).text == "no"
    assert parse("closed", "", candidate_logprobs=tie).text == "yes"
    assert parse("closed", "Yes", candidate_logprobs={"yes": float("nan"), "no": -1}).text == "no"


def test_scoring_ignores_unknown_keys_and_falls_back_to_text() -> None:
    answer = parse("closed", "No", candidate_logprobs={"maybe": -0.1})
    assert (answer.parsed, answer.text) == (True, "no")


def test_error_generation_is_unparsed_with_the_reason() -> None:
    answer = parse("closed", "", finish_reason="error", error="HTTP 500: boom")
    assert not answer.parsed and answer.parse_error == "generation failed: HTTP 500: boom"


@pytest.mark.parametrize("kind", ["closed", "open", "choice", "report", "grounding"])
def test_parsers_are_total_on_random_text(kind: str) -> None:
    """Fuzz: random mixes of unicode, JSON punctuation and answer words never raise."""
    rng = random.Random(kind)
    alphabet = list("ABCDE(){}[]<>|:,.\"'`*#\n\t -0123456789") + [
        "yes", "no", "not sure", "Answer:", "Rationale:", "box_2d", "<|box_start|>",
        "<loc0100>", "Findings:", "Impression:", "<think>", "</think>", "```json", "é", "肺",
        "\u200b", "\x00", "💥", "NaN", "Infinity", "1e999",
    ]  # fmt: skip
    candidates = OPTIONS if kind == "choice" else ()
    request = request_for(kind, candidates)
    task = get_task(kind)
    for _ in range(1500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        answer = task.parse(Generation("r", text, "m", "t"), request)
        assert answer.raw == text
        assert answer.kind == kind
        assert answer.parsed == (answer.parse_error is None)
        if kind == "choice" and answer.parsed:
            assert answer.text in OPTIONS


HUGE = "the image shows " * 200_000 + "<think>" * 10_000 + "{[" * 10_000
"""3.3 million characters of a runaway generation, with unclosed reasoning and JSON."""


@pytest.mark.parametrize(
    ("kind", "answer_after_the_bound"),
    [
        ("closed", " yes"),
        ("open", " effusion"),
        ("choice", " Effusion"),
    ],
)
def test_parsers_read_a_bounded_prefix_of_huge_output(
    kind: str, answer_after_the_bound: str
) -> None:
    """Parsing time is bounded by reading at most MAX_PARSE_CHARS characters (speed itself is
    for benchmarks): an answer that only appears after 3.3 million characters is not read, and
    the answer is the one of the prefix, with the raw text kept whole."""
    request = request_for(kind, OPTIONS if kind == "choice" else ())
    task = get_task(kind)
    huge = HUGE + answer_after_the_bound
    answer = task.parse(Generation("r", huge, "m", "t"), request)
    prefix = task.parse(Generation("r", huge[:MAX_PARSE_CHARS], "m", "t"), request)
    assert task.parse(Generation("r", answer_after_the_bound, "m", "t"), request).parsed
    assert (answer.parsed, answer.text, answer.parse_error) == (
        prefix.parsed,
        prefix.text,
        prefix.parse_error,
    )
    assert answer.raw == huge


def test_reports_and_boxes_are_read_whole_however_long() -> None:
    """Reports and boxes are the kinds read whole (linear scans): the sections and the box
    are found after millions of characters of preamble, and unclosed JSON before them reads
    as malformed, not as a hang."""
    tail = "\nFindings: The heart is normal in size.\nImpression: No acute disease."
    report = get_task("report").parse(Generation("r", HUGE + tail, "m", "t"), request_for("report"))
    assert report.parsed and report.text == "No acute disease."
    box = ' [{"label": "x", "box_2d": [1, 2, 3, 4]}]'
    preamble = "the image shows " * 200_000
    grounding = get_task("grounding")
    found = grounding.parse(Generation("r", preamble + box, "m", "t"), request_for("grounding"))
    assert found.parsed and [(b.x0, b.y0, b.x1, b.y1) for b in found.boxes] == [(1, 2, 3, 4)]
    junk = grounding.parse(Generation("r", HUGE + box, "m", "t"), request_for("grounding"))
    assert not junk.parsed and "malformed JSON" in (junk.parse_error or "")


def test_non_string_text_does_not_crash() -> None:
    request = request_for("closed")
    answer = get_task("closed").parse(Generation("r", None, "m", "t"), request)  # type: ignore[arg-type]
    assert not answer.parsed and answer.raw == "" and answer.parse_error == "empty output"
