"""Normalisation, open-answer scores, choice extraction, report, grounding and bootstrap."""

from __future__ import annotations

import math

import pytest

from medlens.bench.metrics.bootstrap import bootstrap_mean
from medlens.bench.metrics.choice import correct_letters, extract_choice
from medlens.bench.metrics.grounding import average_precision, parse_boxes
from medlens.bench.metrics.judge import parse_verdict
from medlens.bench.metrics.report import cider, corpus_bleu, meteor, rouge_l, sample_report_metrics
from medlens.bench.metrics.text import best_token_scores, read_yes_no, token_scores
from medlens.normalize import normalize_answer
from medlens.types import box_iou as iou


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Yes. ", "yes"),
        ("The Left Lung!", "left lung"),
        ("X-Ray", "x ray"),
        ("xray", "x ray"),
        ("two", "2"),
        ("Twelve nodules", "12 nodules"),
        ("2.5 cm", "2.5 cm"),
        ("1,000 mL", "1000 ml"),
        ("left, right", "left right"),
        ("None", "none"),
        ("an aneurysm", "aneurysm"),
        ("ＣＴ", "ct"),  # full-width letters (NFKC)
    ],
)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize_answer(raw) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("No", "no"),
        ("no.", "no"),
        ("No, there is no fracture.", "no"),
        ("Yes, a small effusion.", "yes"),
        ("normal", None),
        ("nodule", None),
        ("not sure", None),
        ("I don't know", None),
        ("yes or no", None),
        ("", None),
    ],
)
def test_yes_no_is_read_as_whole_words(text: str, expected: str | None) -> None:
    assert read_yes_no(text) == expected


def test_token_scores_values() -> None:
    s = token_scores("left lower lobe", "left lobe")
    assert (s.precision, s.recall, s.exact) == (pytest.approx(2 / 3), 1.0, 0.0)
    assert s.f1 == pytest.approx(0.8)
    assert token_scores("The liver.", "liver").exact == 1.0
    assert token_scores("kidney", "liver").f1 == 0.0
    assert token_scores("", "liver").f1 == 0.0
    # several accepted answers: the best one counts
    assert best_token_scores("two", ["3", "2"]).exact == 1.0


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("B", "B"),
        ("(c)", "C"),
        ("A. Pleural effusion", "A"),
        ("The answer is C.", "C"),
        ("Answer: (B)", "B"),
        ("\\boxed{A}", "A"),
        ("pneumothorax", "B"),
        ("It is most likely a pneumothorax.", "B"),
        ("A or B", None),
        ("I cannot tell", None),
        ("E", None),
    ],
)
def test_extract_choice(text: str, letter: str | None) -> None:
    assert extract_choice(text, ["Pleural effusion", "Pneumothorax", "Normal"]) == letter


def test_correct_letters_accepts_text_or_letter() -> None:
    options = ["CT", "MRI"]
    assert correct_letters(["mri"], options) == {"B"}
    assert correct_letters(["a"], options) == {"A"}


def test_iou_and_box_parsing() -> None:
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert iou((0, 0, 10, 10), (5, 5, 15, 15)) == pytest.approx(25 / 175)
    assert parse_boxes("box: [1, 2, 3.5, 4]") == [(1.0, 2.0, 3.5, 4.0)]
    assert parse_boxes("no box") == []


def test_average_precision_ranks_by_score() -> None:
    truth = [("a", (0, 0, 10, 10)), ("b", (0, 0, 10, 10))]
    perfect = [("a", 0.9, (0, 0, 10, 10)), ("b", 0.8, (0, 0, 10, 10))]
    assert average_precision(perfect, truth) == 1.0
    # a confident false positive ranked first: precision 1/2 then 2/3 at full recall; the
    # all-point interpolation takes the best precision at or beyond each recall level
    with_fp = [("a", 0.95, (50, 50, 60, 60)), *perfect]
    assert average_precision(with_fp, truth) == pytest.approx(2 / 3)
    late_fp = [*perfect, ("a", 0.1, (50, 50, 60, 60))]
    assert average_precision(late_fp, truth) == 1.0
    # a duplicate detection of the same box is a false positive
    assert average_precision([("a", 0.9, (0, 0, 10, 10)), ("a", 0.8, (0, 0, 10, 10))], truth) == 0.5


def test_report_metrics_rank_better_reports_higher() -> None:
    ref = ["The heart is normal in size. The lungs are clear."]
    good = sample_report_metrics("Heart size is normal. Lungs are clear.", ref)
    bad = sample_report_metrics("Large right pleural effusion.", ref)
    for key in ("bleu1", "bleu4", "rougeL"):
        assert good[key] > bad[key]
    assert rouge_l("the lungs are clear", ["the lungs are clear"]) == pytest.approx(1.0)
    assert corpus_bleu(["the lungs are clear"], [["the lungs are clear"]])[
        "bleu4"
    ] == pytest.approx(1.0)
    assert cider(["lungs clear", "heart big"], [["lungs are clear"], ["heart is big"]]) > cider(
        ["heart big", "lungs clear"], [["lungs are clear"], ["heart is big"]]
    )


def test_meteor_reports_unavailable_without_wordnet() -> None:
    value = meteor("the lungs are clear", ["the lungs are clear"])
    if isinstance(value, float):
        assert value > 0.9
    else:
        assert value.metric == "meteor" and "wordnet" in value.reason.lower()


def test_bootstrap_interval_is_seeded_and_covers_the_mean() -> None:
    values = [1.0] * 70 + [0.0] * 30
    a, b = bootstrap_mean(values, seed=3), bootstrap_mean(values, seed=3)
    assert a == b
    assert a.value == pytest.approx(0.7)
    assert a.low < 0.7 < a.high
    assert 0.55 < a.low and a.high < 0.85  # binomial SE ~0.046 → ±0.09
    assert math.isnan(bootstrap_mean([]).value)


def test_judge_verdict_parsing() -> None:
    assert parse_verdict("Yes") is True
    assert parse_verdict("incorrect: different organ") is False
    assert parse_verdict("Correct.") is True
    assert parse_verdict("maybe") is None
