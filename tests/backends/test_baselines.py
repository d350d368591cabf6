"""Prior, no-image and random baselines: what they answer, the probabilities they give, and
that they say they are baselines."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from medlens.backends import load_backend
from medlens.backends.baseline import NoImageBackend, PriorBackend, PriorTable, RandomBackend
from medlens.backends.openai import OpenAIBackend
from medlens.backends.scripted import ScriptedBackend
from medlens.errors import DataError, PrivacyError
from medlens.tasks import get_task
from medlens.types import Request, View

OPTIONS = ("Pneumonia", "Cardiomegaly", "Effusion", "Mass")


def request(
    kind: str = "closed",
    question: str = "Is it abnormal?",
    *,
    request_id: str = "r",
    size: tuple[int, int] = (60, 40),
    **build: Any,
) -> Request:
    if kind == "choice":
        build.setdefault("candidates", OPTIONS)
    views = [View(Image.new("L", size), "PA", ())]
    return get_task(kind).build(views, question, request_id=request_id, **build)


ROWS = [
    ("closed", "size", "Yes"),
    ("closed", "size", "yes "),
    ("closed", "size", "no"),
    ("closed", "presence", "no"),
    ("closed", "presence", "no"),
    ("closed", "presence", "no"),
    ("closed", "presence", "yes"),
    ("open", "organ", "Liver"),
    ("open", "organ", "lung"),
    ("open", "organ", "liver"),
    ("open", None, "axial"),
    ("open", None, "axial"),
    ("open", None, "axial"),
]


def test_prior_table_counts_and_falls_back() -> None:
    table = PriorTable.fit(ROWS)
    assert table.counts_for("closed", "size") == Counter({"yes": 2, "no": 1})
    assert table.counts_for("closed", "unseen") == Counter({"no": 4, "yes": 3})
    assert table.counts_for("closed", None) == table.counts_for("closed", "unseen")
    assert table.counts_for("report", None) == Counter()


def test_prior_table_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "prior.json"
    table = PriorTable.fit(ROWS)
    table.save(path)
    assert PriorTable.load(path).counts == table.counts
    assert json.loads(path.read_text())["format"] == "medlens-prior"


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, "Cannot read the prior table"),
        ("{not json", "Cannot read the prior table"),
        ('{"format": "other"}', "is not a medlens prior table"),
        ('{"format": "medlens-prior", "counts": [{"kind": "closed"}]}', "malformed"),
        (('{"format": "medlens-prior", "counts": [{"kind": "closed", "category": null,'
         ' "answers": {"yes": "many"}}]}'), "malformed"),
    ],
)  # fmt: skip
def test_prior_table_load_errors(tmp_path: Path, content: str | None, match: str) -> None:
    path = tmp_path / "prior.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataError, match=match):
        PriorBackend(prior=path)


def test_prior_answers_by_category_with_smoothed_probabilities() -> None:
    backend = PriorBackend(prior=PriorTable.fit(ROWS))
    assert backend.model_id == "baseline:prior"
    size, presence, unseen = backend.generate(
        [
            request(metadata={"question_category": "size"}, request_id="a"),
            request(metadata={"question_type": "presence"}, request_id="b"),
            request(metadata={"question_category": "unseen"}, request_id="c"),
        ]
    )
    assert (size.text, presence.text, unseen.text) == ("yes", "no", "no")
    # add-one smoothing over the two candidates: (2+1)/(3+2) and (1+1)/(3+2)
    assert size.candidate_logprobs == pytest.approx({"yes": math.log(3 / 5), "no": math.log(2 / 5)})
    assert unseen.candidate_logprobs == pytest.approx(
        {"yes": math.log(4 / 9), "no": math.log(5 / 9)}
    )
    assert (size.model, size.backend, size.request_id) == ("baseline:prior", "prior", "a")
    answer = get_task("closed").parse(presence, request(metadata={"question_type": "presence"}))
    assert (answer.parsed, answer.text) == (True, "no")


def test_prior_open_answers_the_most_frequent() -> None:
    backend = PriorBackend(prior=PriorTable.fit(ROWS))
    organ, other = backend.generate(
        [request("open", "Which organ?", metadata={"question_category": "organ"}),
         request("open", "Which plane?")]
    )  # fmt: skip
    assert (organ.text, other.text) == ("liver", "axial")
    assert organ.candidate_logprobs == {}


def test_prior_choice_counts_letters_and_texts() -> None:
    table = PriorTable.fit([("choice", None, "B")] * 3 + [("choice", None, "Mass")])
    [gen] = PriorBackend(prior=table).generate([request("choice", "Which?")])
    probs = {k: math.exp(v) for k, v in gen.candidate_logprobs.items()}
    assert probs == pytest.approx({"Pneumonia": 1 / 8, "Cardiomegaly": 4 / 8, "Effusion": 1 / 8,
                                   "Mass": 2 / 8})  # fmt: skip
    assert get_task("choice").parse(gen, request("choice", "Which?")).choice == "B"


def test_load_backend_prior_is_the_shipped_fitted_table() -> None:
    backend = load_backend("prior")
    assert isinstance(backend, PriorBackend) and backend.model_id == "baseline:prior"
    (closed,) = backend.generate([request()])
    assert closed.text == "no"  # VQA-RAD train: 884 "no" to 829 "yes"


def test_unfitted_prior_is_uniform_and_says_so() -> None:
    backend = load_backend("prior", prior=None)
    assert isinstance(backend, PriorBackend)
    closed, open_ = backend.generate([request(), request("open", "What?")])
    assert closed.model == "baseline:prior(unfitted)"
    assert closed.text == "yes"
    assert closed.candidate_logprobs == pytest.approx({"yes": math.log(0.5), "no": math.log(0.5)})
    assert open_.text == ""
    assert not get_task("open").parse(open_, request("open", "What?")).parsed


def test_prior_from_path_through_load_backend(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    PriorTable.fit(ROWS).save(path)
    backend = load_backend("prior", prior=path)
    assert backend.model_id == "baseline:prior"


def test_no_image_strips_images_and_keeps_the_rest() -> None:
    seen: list[Request] = []

    def answer(req: Request) -> str:
        seen.append(req)
        return f"{len(req.images)} images"

    inner = ScriptedBackend("tiny-vlm", answers=answer)
    backend = NoImageBackend(backend=inner)
    original = request("open", "What organ?", metadata={"question_category": "organ"})
    [gen] = backend.generate([original])
    assert gen.text == "0 images"
    assert (gen.model, gen.backend) == ("baseline:no-image(tiny-vlm)", "no-image")
    assert backend.model_id == "baseline:no-image(tiny-vlm)"
    [blind] = seen
    assert len(original.images) == 1 and blind.images == []
    assert blind.question == original.question and blind.metadata == original.metadata
    texts = [p.text for p in blind.messages[0].content]  # type: ignore[union-attr]
    assert texts[-1].startswith("What organ?")


def test_no_image_without_inner_backend_is_the_prior() -> None:
    backend = load_backend("no-image")
    [gen] = backend.generate([request()])
    assert gen.model == "baseline:no-image(baseline:prior(unfitted))"
    assert gen.text == "yes"


def test_no_image_keeps_the_inner_privacy_rule() -> None:
    remote = OpenAIBackend("http://127.0.0.1:9/v1", served_model="m")
    with pytest.raises(PrivacyError):
        NoImageBackend(backend=remote).generate([request(deidentified=False)])


def test_random_is_deterministic_per_request_and_seed() -> None:
    reqs = [request(request_id=f"q{i}") for i in range(400)]
    first = [g.text for g in RandomBackend(seed=0).generate(reqs)]
    again = [g.text for g in load_backend("random", seed=0).generate(reqs)]
    other = [g.text for g in RandomBackend(seed=1).generate(reqs)]
    assert first == again
    assert first != other
    assert 150 <= first.count("yes") <= 250  # uniform: 200 expected, sd 10


def test_random_probabilities_are_uniform_and_parse_to_the_pick() -> None:
    reqs = [request("choice", "Which?", request_id=f"c{i}") for i in range(200)]
    gens = RandomBackend().generate(reqs)
    assert gens[0].model == "baseline:random(seed=0)"
    assert all(
        g.candidate_logprobs == pytest.approx({o: math.log(1 / 4) for o in OPTIONS}) for g in gens
    )
    parsed = [get_task("choice").parse(g, r).text for g, r in zip(gens, reqs)]
    assert parsed == [g.text for g in gens]  # ties broken by the drawn text, not "always A"
    assert set(parsed) == set(OPTIONS)


def test_random_open_is_empty_and_grounding_a_box_in_the_image() -> None:
    open_req = request("open", "What?")
    [gen] = RandomBackend().generate([open_req])
    assert gen.text == "" and not get_task("open").parse(gen, open_req).parsed
    for i in range(50):
        req = request("grounding", "Locate it.", request_id=f"g{i}", size=(90, 30))
        [gen] = RandomBackend().generate([req])
        answer = get_task("grounding").parse(gen, req)
        assert answer.parsed and len(answer.boxes) == 1
        box = answer.boxes[0]
        assert 0 <= box.x0 < box.x1 <= 90 and 0 <= box.y0 < box.y1 <= 30


BOXES = [
    ("Liver", (10, 20, 50, 60), (100, 100)),
    ("liver", (30, 40, 70, 100), (200, 200)),
    ("Liver", (40, 40, 90, 90), (100, 100)),
    ("Spleen", (60, 10, 90, 40), (100, 100)),
]


def test_prior_grounds_a_label_on_its_median_training_box_in_the_image() -> None:
    table = PriorTable.fit(ROWS, boxes=BOXES)
    assert table.boxes["liver"] == pytest.approx((0.15, 0.2, 0.5, 0.6))  # coordinate medians
    req = request("grounding", "Locate the liver.", size=(300, 200), metadata={"label": "LIVER"})
    [gen] = PriorBackend(prior=table).generate([req])
    answer = get_task("grounding").parse(gen, req)
    assert answer.parsed and len(answer.boxes) == 1
    box = answer.boxes[0]
    assert (box.x0, box.y0, box.x1, box.y1) == pytest.approx((45, 40, 150, 120))
    unseen = request("grounding", "Locate the heart.", metadata={"label": "Heart"})
    [nothing] = PriorBackend(prior=table).generate([unseen])
    assert nothing.text == "[]"


def test_prior_table_with_boxes_round_trips_as_version_2(tmp_path: Path) -> None:
    path = tmp_path / "prior.json"
    PriorTable.fit(ROWS, boxes=BOXES).save(path)
    assert json.loads(path.read_text())["version"] == 2
    loaded = PriorTable.load(path)
    assert loaded.boxes == PriorTable.fit(ROWS, boxes=BOXES).boxes
    data = json.loads(path.read_text()) | {"version": 3}
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="version 3; this medlens reads versions 1, 2"):
        PriorTable.load(path)


@pytest.mark.data
def test_prior_on_vqa_rad(shared_data: Path) -> None:
    """Fit on the MEVF train split; on the closed test questions the prior scores exactly the
    share of the train-majority answer per question type (with kind fallback)."""
    folder = shared_data / "vqa-rad" / "data_RAD"
    train = json.loads((folder / "trainset.json").read_text())
    test = json.loads((folder / "testset.json").read_text())

    def kind(row: dict[str, Any]) -> str:
        return "closed" if row["answer_type"].strip() == "CLOSED" else "open"

    table = PriorTable.fit((kind(r), r["question_type"], str(r["answer"])) for r in train)
    closed = [r for r in test if kind(r) == "closed" and str(r["answer"]).lower() in ("yes", "no")]
    reqs = [
        request(question=r["question"], request_id=str(r["qid"]),
                metadata={"question_type": r["question_type"]})
        for r in closed
    ]  # fmt: skip
    gens = PriorBackend(prior=table).generate(reqs)
    expected = []
    for r in closed:
        counts = table.counts_for("closed", r["question_type"])
        expected.append("yes" if counts["yes"] >= counts["no"] else "no")
    assert [g.text for g in gens] == expected
    accuracy = sum(g.text == str(r["answer"]).lower() for g, r in zip(gens, closed)) / len(closed)
    assert 0.4 < accuracy < 0.8
