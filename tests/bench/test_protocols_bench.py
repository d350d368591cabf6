"""Every scoring protocol on hand-made cases, including the traps each source harness has."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from medlens.bench.benchmark import Sample
from medlens.bench.protocols import PROTOCOLS, SampleScore, get_protocol, rescore
from medlens.errors import UnknownNameError


def make(
    answer: str | Sequence[str],
    kind: str = "closed",
    benchmark: str = "vqa-rad",
    candidates: Sequence[str] = (),
    **metadata: object,
) -> Sample:
    answers = (answer,) if isinstance(answer, str) else tuple(answer)
    return Sample(
        id=f"q-{answers[0]}-{kind}",
        benchmark=benchmark,
        split="test",
        question="Is there an abnormality?",
        answers=answers,
        kind=kind,  # type: ignore[arg-type]
        images=("x.jpg",),
        candidates=tuple(candidates),
        metadata=metadata,
    )


def outcome(protocol: str, sample: Sample, prediction: str, **kw: object) -> SampleScore:
    return get_protocol(protocol).score(sample, prediction, **kw)  # type: ignore[arg-type]


NO = make("no")
YES = make("Yes", benchmark="slake")


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [
        ("No", "correct"),
        ("no.", "correct"),
        ("No, there is no fracture.", "correct"),
        ("Yes", "wrong"),
        ("normal", "unparseable"),
        ("nodule", "unparseable"),
        ("not sure", "unparseable"),
        ("Yes and no", "unparseable"),
    ],
)
def test_medlens_closed_reads_whole_words(prediction: str, expected: str) -> None:
    assert outcome("medlens", NO, prediction).outcome == expected


def test_medlens_honours_parser_and_abstention() -> None:
    assert outcome("medlens", NO, "garbled", parsed="no").outcome == "correct"
    assert outcome("medlens", NO, "no", parsed_ok=False).outcome == "unparseable"
    result = outcome("medlens", NO, "no", abstained=True)
    assert (result.outcome, result.score) == ("abstained", 0.0)


def test_medlens_open_scores_and_numbers() -> None:
    count = make("2", kind="open")
    assert outcome("medlens", count, "two").outcome == "correct"
    assert outcome("medlens", count, "3").outcome == "wrong"
    lobe = make(["right lower lobe", "RLL"], kind="open")
    partial = outcome("medlens", lobe, "the right lobe")
    assert partial.outcome == "partial"
    assert partial.metrics["recall"] == pytest.approx(2 / 3)
    assert partial.score == pytest.approx(partial.metrics["f1"]) == pytest.approx(0.8)
    assert outcome("medlens", lobe, "RLL.").outcome == "correct"  # second accepted answer
    assert outcome("medlens", make("None", kind="open"), "none").outcome == "correct"
    assert outcome("medlens", lobe, "...").outcome == "unparseable"


def test_medlens_closed_non_yes_no_and_choice() -> None:
    side = make("left")
    assert outcome("medlens", side, "Left.").outcome == "correct"
    assert outcome("medlens", side, "right").outcome == "wrong"
    mc = make("Pneumothorax", kind="choice", candidates=["Effusion", "Pneumothorax", "Normal"])
    assert outcome("medlens", mc, "B").outcome == "correct"
    assert outcome("medlens", mc, "The answer is (A).").outcome == "wrong"
    unreadable = outcome("medlens", mc, "I would need a lateral view")
    assert (unreadable.outcome, unreadable.extracted) == ("unparseable", None)


def test_medevalkit_substring_bug_and_its_fix() -> None:
    # "normal" contains "no": MedEvalKit counts it as the answer "no"; the fix does not.
    assert outcome("medevalkit", NO, "normal").outcome == "correct"
    assert outcome("medevalkit-fixed", NO, "normal").outcome == "wrong"
    assert outcome("medevalkit", NO, "There is no fracture").outcome == "correct"
    # both substrings present → False in the source ("no" inside "not", "yes" too)
    assert outcome("medevalkit", make("yes"), "yes, not obvious").outcome == "wrong"
    assert outcome("medevalkit-fixed", make("yes"), "yes, not obvious").outcome == "correct"
    assert outcome("medevalkit", NO, "\\boxed{No}").outcome == "correct"


def test_medevalkit_answer_marker_keeps_leading_space() -> None:
    ct = make("CT", kind="open")
    assert outcome("medevalkit", ct, "ct").score == 1.0
    assert outcome("medevalkit", ct, "Answer: CT").score == 0.0  # " ct" != "ct" in the source
    assert outcome("medevalkit-fixed", ct, "Answer: CT").score == 1.0


def test_medevalkit_slake_capitalised_yes_goes_to_exact_match() -> None:
    # SLAKE's "Yes" is not in ["yes", "no"] before lower-casing → exact-match branch
    assert outcome("medevalkit", YES, "Yes, there is.").outcome == "wrong"
    assert outcome("medevalkit", YES, "yes").outcome == "correct"
    assert outcome("medevalkit-fixed", YES, "Yes, there is.").outcome == "correct"


def test_medevalkit_buckets_vqa_rad_by_answer_not_type() -> None:
    closed_left = make("left")
    assert get_protocol("medevalkit").bucket(closed_left) == "open"
    assert get_protocol("medevalkit-fixed").bucket(closed_left) == "closed"
    assert get_protocol("medevalkit").bucket(make("left", benchmark="slake")) == "closed"


def test_medevalkit_multiple_choice_fallback_vs_fixed() -> None:
    mc = make("Pneumothorax", kind="choice", candidates=["Effusion", "Pneumothorax", "Normal"])
    assert outcome("medevalkit", mc, "b").outcome == "correct"
    # unreadable text is mapped to the most similar option by the source
    fallback = outcome("medevalkit", mc, "pneumothora-ish, I think")
    assert fallback.outcome == "correct" and fallback.extracted == "B"
    assert outcome("medevalkit-fixed", mc, "pneumothora-ish, I think").outcome == "unparseable"


def test_llava_med_drops_wrong_yes_no_answers_from_the_denominator() -> None:
    wrong = outcome("llava-med-ad758b6", NO, "yes")
    assert (wrong.outcome, wrong.counted) == ("wrong", False)
    assert outcome("llava-med", NO, "yes").counted  # PR #35: counted, and wrong
    no_letters = outcome("llava-med", NO, "fracture")
    assert (no_letters.outcome, no_letters.counted) == ("wrong", True)
    assert outcome("llava-med", NO, "normal").outcome == "correct"  # "no" ⊂ "normal"
    assert outcome("llava-med-fixed", NO, "normal").outcome == "wrong"
    assert outcome("llava-med-fixed", NO, "yes").counted


def test_llava_med_open_recall_and_none_quirk() -> None:
    lobe = make("right lower lobe", kind="open")
    result = outcome("llava-med", lobe, "It is in the right lobe")
    assert result.score == pytest.approx(2 / 3) == result.metrics["recall"]
    none = make("None", kind="open", benchmark="slake")
    # normalize_word maps "none" to "0": both sides become "0", and "zero" too
    assert outcome("llava-med", none, "zero").score == 1.0


def test_lmms_eval_normalisation() -> None:
    xray = make("X-Ray", kind="open", benchmark="slake")
    assert outcome("lmms-eval", xray, "xray").outcome == "correct"
    assert outcome("lmms-eval", make("Yes"), "Yeah").outcome == "correct"
    assert outcome("lmms-eval", make("Yes"), "Yes, there is.").outcome == "wrong"
    assert outcome("lmms-eval", make("Lung", kind="open"), "lung (left)").outcome == "correct"


def test_medgemma_card_token_f1() -> None:
    lobe = make("right lower lobe", kind="open")
    result = outcome("medgemma-card", lobe, "right lobe")
    assert result.score == pytest.approx(0.8)
    assert outcome("medgemma-card", NO, "No.").score == 1.0
    assert outcome("medgemma-card", NO, "No, normal.").score == 0.0


def test_aggregate_headlines_groups_and_json() -> None:
    samples = [make("no", qtype="PRES")] * 6 + [make("liver", kind="open", qtype="ORGAN")] * 4
    preds = ["no", "no", "no", "yes", "normal", "no", "liver", "the liver", "kidney", ""]
    scores, summary = rescore(
        "medlens", samples, preds, group_by=("kind", "qtype"), n_boot=200, seed=1
    )
    assert summary.headline["closed_accuracy"].value == pytest.approx(4 / 6)
    assert summary.headline["open_f1"].value == pytest.approx(2 / 4)
    assert summary.headline["overall"].value == pytest.approx(6 / 10)
    assert summary.headline["overall"].n == 10
    assert summary.groups["qtype"]["ORGAN"]["score"].n == 4
    assert summary.outcomes == {
        "correct": 6,
        "wrong": 2,
        "partial": 0,
        "unparseable": 2,
        "abstained": 0,
    }
    again = get_protocol("medlens").aggregate(
        samples, scores, group_by=("kind", "qtype"), n_boot=200, seed=1
    )
    assert again.to_dict() == summary.to_dict()
    assert json.loads(json.dumps(summary.to_dict()))["headline"]["overall"]["n"] == 10
    assert "closed_accuracy" in summary.format()


def test_llava_med_aggregate_excludes_dropped_rows() -> None:
    samples = [NO] * 4
    answers = ["no", "yes", "yes", "fracture"]
    _, summary = rescore("llava-med-ad758b6", samples, answers, n_boot=50)
    assert summary.excluded == 2
    assert summary.headline["closed_accuracy"].value == pytest.approx(1 / 2)
    _, current = rescore("llava-med", samples, answers, n_boot=50)
    assert current.excluded == 0
    assert current.headline["closed_accuracy"].value == pytest.approx(1 / 4)
    _, fixed = rescore("llava-med-fixed", samples, ["no", "yes", "yes", "fracture"], n_boot=50)
    assert fixed.headline["closed_accuracy"].value == pytest.approx(1 / 4)


def test_report_and_grounding_corpus_metrics() -> None:
    report = make("The heart is normal. The lungs are clear.", kind="report")
    box = {"label": "Nodule", "box": [10.0, 10.0, 20.0, 20.0]}
    grounding = make("Nodule", kind="grounding", boxes=[box])
    scores, summary = rescore(
        "medlens",
        [report, grounding],
        ["Heart normal, lungs clear.", "[11, 10, 20, 21]"],
        n_boot=50,
    )
    assert scores[1].outcome == "correct" and scores[1].metrics["iou"] > 0.8
    assert 0 < scores[0].score < 1
    assert {"cider", "corpus_bleu4", "ap50", "mean_iou"} <= set(summary.corpus)
    assert summary.corpus["ap50"] == 1.0
    assert any("chexbert" in n for n in summary.notes)


def test_medlens_scores_a_grounding_answer_on_its_boxes_not_the_parsed_label() -> None:
    """The eval path passes the task parser's text, which for grounding is the label: medlens@1
    scored that text and found no box in any grounding answer (hit rate 0)."""
    box = {"label": "Liver", "box": [10.0, 10.0, 50.0, 50.0]}
    sample = make("Liver", kind="grounding", boxes=[box])
    raw = '[{"label": "Liver", "box_2d": [12, 10, 50, 48]}]'
    hit = outcome("medlens", sample, raw, parsed="Liver")
    assert hit.outcome == "correct" and hit.metrics["iou"] == pytest.approx(38 * 38 / 40**2)
    miss = outcome("medlens", sample, '[{"label": "Liver", "box_2d": [60, 60, 90, 90]}]')
    assert (miss.outcome, miss.metrics["iou"]) == ("wrong", 0.0)
    assert outcome("medlens", sample, raw, parsed_ok=False).outcome == "unparseable"


def test_mediconfusion_pair_scores() -> None:
    options = ["Pneumothorax", "Effusion"]
    first = Sample(
        "0-1",
        "mediconfusion",
        "test",
        "q",
        ("Pneumothorax",),
        "choice",
        ("a",),
        tuple(options),
        {"pair_id": "0"},
    )
    second = Sample(
        "0-2",
        "mediconfusion",
        "test",
        "q",
        ("Effusion",),
        "choice",
        ("b",),
        tuple(options),
        {"pair_id": "0"},
    )
    _, same = rescore("medlens", [first, second], ["A", "A"], n_boot=10)
    assert (same.corpus["set_accuracy"], same.corpus["confusion"]) == (0.0, 1.0)
    _, both = rescore("medlens", [first, second], ["A", "B"], n_boot=10)
    assert (both.corpus["set_accuracy"], both.corpus["confusion"]) == (1.0, 0.0)


def test_every_protocol_is_documented_and_scores_every_kind() -> None:
    kinds = [
        make("no"),
        make("liver", kind="open"),
        make("CT", kind="choice", candidates=["CT", "MRI"]),
        make("Lungs clear.", kind="report"),
        make("Nodule", kind="grounding", boxes=[{"label": "Nodule", "box": [0, 0, 1, 1]}]),
    ]
    for name in PROTOCOLS.names():
        protocol = get_protocol(name)
        if getattr(protocol, "needs_judge", False):  # with a judge that says "incorrect"
            verdicts = {protocol.case(s, "no"): "<judge>1</judge>" for s in kinds}  # type: ignore[attr-defined]
            protocol = type(protocol)(verdicts)  # type: ignore[call-arg]
        assert protocol.version and len(protocol.description) > 100
        for sample in kinds:
            result = protocol.score(sample, "no")
            assert 0.0 <= result.score <= 1.0
    with pytest.raises(UnknownNameError, match="medevalkit"):
        get_protocol("medevalkt")
