"""Building requests: message layout, candidates, golden prompt snapshots.

Snapshots live in tests/tasks/golden/<case>.txt. A template change must come with a
``version`` bump; regenerate with ``MEDLENS_UPDATE_GOLDEN=1 pytest tests/tasks``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from medlens.errors import ConfigError, UnknownNameError
from medlens.tasks import TASKS, get_task, guess_kind
from medlens.types import GenerationOptions, ImagePart, Request, TextPart, View

GOLDEN = Path(__file__).parent / "golden"


def view(label: str, size: tuple[int, int] = (64, 48), value: int = 0) -> View:
    return View(image=Image.new("L", size, value), label=label, regions=())


def render(request: Request) -> str:
    """A stable text picture of a request: roles, text parts, images by size and mode."""
    lines = [f"prompt: {request.metadata['prompt']}", f"kind: {request.kind}"]
    lines.append(f"candidates: {list(request.candidates)}")
    lines.append(f"max_new_tokens: {request.options.max_new_tokens}")
    for message in request.messages:
        lines.append(f"[{message.role}]")
        for part in message.content:
            if isinstance(part, ImagePart):
                lines.append(f"<image {part.image.width}x{part.image.height} {part.image.mode}>")
            else:
                lines.append(part.text)
    return "\n".join(lines) + "\n"


CASES = {
    # A single 2D image ("<plane> 1/1", as study.views labels it) carries no label.
    "closed": {"kind": "closed", "question": "Is there a pneumothorax?", "views": ["axial 1/1"]},
    "closed_left_right": {
        "kind": "closed",
        "question": "Is the lesion on the left or the right?",
        "views": ["axial"],
        "candidates": ("left", "right"),
    },
    # A single view of a volume keeps its label: the slice position informs.
    "open": {"kind": "open", "question": "What organ is abnormal?", "views": ["axial 12/40"]},
    "choice": {
        "kind": "choice",
        "question": "Which finding is present?",
        "views": ["axial 1/1"],
        "candidates": ("Pneumonia", "Cardiomegaly", "Effusion", "No finding"),
    },
    "report_with_prior": {
        "kind": "report",
        "question": "",
        "views": ["PA", "lateral"],
        "prior": ["PA"],
        "system": "Be concise.",
    },
    "grounding": {"kind": "grounding", "question": "Locate the nodules.", "views": [""]},
}


def build_case(case: dict) -> Request:  # type: ignore[type-arg]
    task = get_task(case["kind"])
    return task.build(
        [view(label, (64 + 8 * i, 48)) for i, label in enumerate(case["views"])],
        case["question"],
        request_id="golden",
        candidates=case.get("candidates", ()),
        prior_views=[view(label, (32, 32)) for label in case.get("prior", [])],
        system_prompt=case.get("system"),
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_prompt_snapshot(name: str) -> None:
    text = render(build_case(CASES[name]))
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("MEDLENS_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no snapshot {path}; run with MEDLENS_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8"), (
        f"the prompt of {name} changed: bump the task's version, then regenerate the snapshots "
        "with MEDLENS_UPDATE_GOLDEN=1"
    )


def test_every_kind_is_registered_with_a_versioned_template() -> None:
    assert TASKS.names() == ["choice", "closed", "grounding", "open", "report"]
    for kind in TASKS:
        task = get_task(kind)
        assert task.kind == kind
        assert task.prompt_id == f"{task.name}@{task.version}"


def test_unknown_kind_suggests() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'closed'"):
        get_task("close")


def test_prior_images_come_first_and_are_labelled() -> None:
    task = get_task("open")
    current = [view("PA", value=200), view("lateral", value=201)]
    prior = [view("PA", value=100)]
    request = task.build(current, "What changed?", request_id="r", prior_views=prior)
    parts = request.messages[0].content
    texts = [p.text for p in parts if isinstance(p, TextPart)]
    assert texts[1:4] == ["PRIOR: PA", "CURRENT: PA", "CURRENT: lateral"]
    assert [im.getpixel((0, 0)) for im in request.images] == [100, 200, 201]
    # Each label directly precedes its image.
    for i, part in enumerate(parts):
        if isinstance(part, ImagePart):
            assert isinstance(parts[i - 1], TextPart)
    assert isinstance(parts[-1], TextPart) and parts[-1].text.startswith("What changed?")


def test_request_fields() -> None:
    options = GenerationOptions(max_new_tokens=7, temperature=0.5)
    request = get_task("closed").build(
        [view("PA")],
        "  Is the heart enlarged?  ",
        request_id="q-17",
        options=options,
        metadata={"question_category": "size"},
        deidentified=True,
    )
    assert request.id == "q-17"
    assert request.kind == "closed"
    assert request.question == "Is the heart enlarged?"
    assert request.candidates == ("yes", "no")
    assert request.options is options
    assert request.deidentified is True
    assert request.metadata == {"question_category": "size", "prompt": "closed@3"}
    assert [m.role for m in request.messages] == ["user"]


def test_default_options_fit_the_kind() -> None:
    closed = get_task("closed").build([view("PA")], "Is it?", request_id="a")
    report = get_task("report").build([view("PA")], "", request_id="b")
    assert closed.options.max_new_tokens < report.options.max_new_tokens
    assert report.question == get_task("report").default_question


def test_grounding_states_the_size_and_remembers_it() -> None:
    request = get_task("grounding").build([view("", (300, 200))], "Box it.", request_id="g")
    prompt = request.messages[0].content[-1]
    assert isinstance(prompt, TextPart)
    assert "300 pixels wide and 200 pixels high" in prompt.text
    assert request.metadata["image_size"] == (300, 200)


def test_choice_renders_lettered_options() -> None:
    request = get_task("choice").build(
        [view("PA")], "Which?", request_id="c", candidates=["one", "two", "three"]
    )
    prompt = request.messages[0].content[-1]
    assert isinstance(prompt, TextPart)
    assert "A. one\nB. two\nC. three" in prompt.text
    assert request.candidates == ("one", "two", "three")


@pytest.mark.parametrize(
    ("kind", "question", "views", "candidates", "match"),
    [
        ("closed", "   ", 1, (), "needs its text"),
        ("closed", "Is it?", 1, ("yes",), "at least two"),
        ("choice", "Which?", 1, ("a",), "2 to 26 options"),
        ("choice", "Which?", 1, tuple("abcdefghijklmnopqrstuvwxyz!"), "2 to 26 options"),
        ("grounding", "Locate it.", 0, (), "needs an image"),
    ],
)
def test_build_rejects_what_cannot_be_asked(
    kind: str, question: str, views: int, candidates: tuple[str, ...], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        get_task(kind).build([view("PA")] * views, question, request_id="x", candidates=candidates)


@pytest.mark.parametrize(
    ("question", "candidates", "kind"),
    [
        ("Is there a pneumothorax?", (), "closed"),
        ("Are the lungs clear?", (), "closed"),
        ("Does the patient have cardiomegaly?", (), "closed"),
        ("Was contrast given?", (), "closed"),
        ("Is this a CT or an MRI?", (), "open"),
        ("Where is the liver?", (), "open"),
        ("What organ is shown?", (), "open"),
        ("Which lobe is affected?", ("upper", "lower"), "choice"),
        ("Is it?", ("Yes", "No"), "closed"),
        ("Locate the nodule.", (), "grounding"),
        ("Where is the mass? Give a bounding box.", (), "grounding"),
        ("Write the radiology report.", (), "report"),
        ("Describe the findings.", (), "report"),
        ("Are there any findings?", (), "closed"),
    ],
)
def test_guess_kind(question: str, candidates: tuple[str, ...], kind: str) -> None:
    assert guess_kind(question, candidates) == kind
