"""Closed questions that are not yes/no ("Which organ is abnormal, heart or lung?") are asked
with the options they list (``closed_candidates``), on the real SLAKE and VQA-RAD wording."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from medlens import pipeline
from medlens.bench.benchmarks import get_benchmark
from medlens.bench.benchmarks._common import closed_candidates, question_options
from medlens.bench.protocols import get_protocol
from medlens.bench.treatments import item_of
from medlens.study import load_study
from medlens.tasks import get_task


@pytest.mark.parametrize(
    ("question", "options"),
    [
        ("Which is the biggest in this image,lung,liver or heart?", ("lung", "liver", "heart")),
        ("Which organ is abnormal, heart or lung?", ("heart", "lung")),
        ("Is this a T1 weighted or T2 weighted MRI image?", ("T1 weighted", "T2 weighted")),
        ("Is this MRI with contrast or without contrast?", ("with contrast", "without contrast")),
        ("Is this an MRI or a CT scan?", ("MRI", "CT")),
        ("Is this a pneumonia vs. pleural effusion?", ("pneumonia", "pleural")),
        (
            "Is this a T1 weighted, T2 weighted, or FLAIR image?",
            ("T1 weighted", "T2 weighted", "FLAIR image"),
        ),
        ("Does the picture contain liver?", ()),
        ("Is the lesion on the left or left?", ()),  # one option twice is no choice
    ],
)
def test_question_options_read_the_listed_choices(question: str, options: tuple[str, ...]) -> None:
    assert question_options(question) == options


def test_closed_candidates_accept_the_option_the_answer_names() -> None:
    assert closed_candidates("Is there a mass?", "Yes") == ((), ("Yes",))
    assert closed_candidates("Which organ is abnormal, heart or lung?", "Heart") == (
        ("heart", "lung"),
        ("Heart",),
    )
    assert closed_candidates("Is this a T1 weighted or T2 weighted MRI image?", "T2") == (
        ("T1 weighted", "T2 weighted"),
        ("T2", "T2 weighted"),
    )
    assert closed_candidates("Is the largest cyst in the left or right kidney?", "Left kidney")[
        1
    ] == ("Left kidney", "left")
    # SLAKE test qid with a wrong gold: the answer names no option, so no options are asked
    assert closed_candidates("Which is bigger in this image, kidney or spleen?", "Liver") == (
        (),
        ("Liver",),
    )
    assert closed_candidates("Was oral or IV contrast used?", "Both") == ((), ("Both",))


@pytest.mark.data
def test_real_closed_questions_get_their_options(shared_data: Path) -> None:
    slake = get_benchmark("slake").load("test", shared_data)
    closed = [s for s in slake if s.kind == "closed"]
    with_options = [s for s in closed if s.candidates]
    assert len(closed) == 416 and len(with_options) == 60  # of the 61 that are not yes/no
    vqa_rad = [s for s in get_benchmark("vqa-rad").load("test", shared_data) if s.kind == "closed"]
    assert Counter(bool(s.candidates) for s in vqa_rad) == {False: 252, True: 20}
    assert Counter(s.kind for s in slake) == {"closed": 416, "open": 645}  # buckets unchanged

    sample = next(s for s in with_options if s.question.startswith("Which organ is abnormal"))
    item = item_of(sample)
    prepared = pipeline.prepare(
        [load_study(str(item.sources[0]))],
        item.question,
        kind=item.kind,
        candidates=item.candidates,
        request_id=item.id,
        metadata=item.metadata,
    )
    prompt = prepared.request.messages[-1].content[-1].text  # type: ignore[union-attr]
    assert prompt.endswith("Answer with only heart or lung.")
    gold = sample.answer
    answer = get_task("closed").parse_text(gold, prepared.request)
    assert answer.parsed and answer.text.lower() == gold.lower()
    medlens = get_protocol("medlens")
    assert medlens.score_answer(sample, answer).outcome == "correct"
    other = "Lung" if gold == "Heart" else "Heart"
    assert (
        medlens.score_answer(sample, get_task("closed").parse_text(other, prepared.request)).outcome
        == "wrong"
    )


def test_a_closed_answer_no_prompt_offers_is_a_quality_issue() -> None:
    from medlens.bench.quality import check_samples
    from medlens.bench.samples import Sample

    def closed(id_: str, question: str, answer: str) -> Sample:
        candidates, answers = closed_candidates(question, answer)
        image = {"image_id": f"xmlab{id_}/source.jpg"}
        return Sample(id_, "slake", "test", question, answers, "closed", (), candidates, image)

    samples = [
        closed("1", "Which is bigger in this image, kidney or spleen?", "Liver"),
        closed("2", "Which is bigger in this image, kidney or spleen?", "Spleen"),
        closed("3", "Is there a mass?", "No"),
    ]
    (issue,) = check_samples(samples)
    assert (issue.kind, issue.count, issue.examples) == ("closed-answer-not-offered", 1, ("1",))
