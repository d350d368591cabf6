"""The scripted backend users test their own code with."""

from __future__ import annotations

import pytest
from PIL import Image

from medlens.backends import Backend, load_backend
from medlens.backends.scripted import ScriptedBackend
from medlens.errors import ConfigError
from medlens.tasks import get_task
from medlens.types import Generation, Request, View


def request(question: str, request_id: str, kind: str = "closed") -> Request:
    views = [View(Image.new("L", (8, 8)), "", ())]
    return get_task(kind).build(views, question, request_id=request_id)


def test_answers_by_id_then_question() -> None:
    backend = ScriptedBackend(answers={"q2": "No.", "Is there a mass?": "Yes"})
    gens = backend.generate(
        [request("Is there a mass?", "q1"), request("Is there a mass?", "q2"),
         request("Is it broken?", "q3")]
    )  # fmt: skip
    assert [g.text for g in gens] == ["Yes", "No.", ""]
    assert gens[2].finish_reason == "error"
    assert gens[2].error == "no scripted answer for request 'q3' (question 'Is it broken?')"
    assert (gens[0].model, gens[0].backend) == ("scripted", "scripted")
    assert [r.id for r in backend.requests] == ["q1", "q2", "q3"]
    assert isinstance(backend, Backend)


def test_callable_and_sequence() -> None:
    by_rule = ScriptedBackend(answers=lambda r: "yes" if "mass" in r.question else "no")
    assert [g.text for g in by_rule.generate([request("mass?", "a"), request("x?", "b")])] == [
        "yes",
        "no",
    ]
    in_order = ScriptedBackend(answers=["A", "B"])
    first = in_order.generate([request("1?", "a")])
    rest = in_order.generate([request("2?", "b"), request("3?", "c")])
    assert [g.text for g in first + rest] == ["A", "B", ""]
    assert rest[1].finish_reason == "error"


def test_scripted_generations_and_logprobs() -> None:
    failure = Generation("ignored", "", "m", "scripted", finish_reason="error", error="boom")
    backend = ScriptedBackend(
        answers={"a": "maybe", "b": failure},
        logprobs={"a": {"yes": -0.1, "no": -2.3}},
    )
    scored, failed = backend.generate([request("?", "a"), request("?", "b")])
    assert scored.candidate_logprobs == {"yes": -0.1, "no": -2.3}
    assert (failed.request_id, failed.error) == ("b", "boom")
    task = get_task("closed")
    assert task.parse(scored, request("?", "a")).text == "yes"  # scoring wins over "maybe"
    assert task.parse(failed, request("?", "b")).parse_error == "generation failed: boom"
    by_callable = ScriptedBackend(answers=["x"], logprobs=lambda r: {"no": 0.0})
    assert by_callable.generate([request("?", "z")])[0].candidate_logprobs == {"no": 0.0}


def test_through_load_backend() -> None:
    backend = load_backend("my-model", backend="scripted", answers={"q": "yes"})
    assert backend.model_id == "my-model"
    assert backend.generate([request("?", "q")])[0].text == "yes"


def test_a_single_string_is_refused() -> None:
    with pytest.raises(ConfigError, match="not a single answer"):
        ScriptedBackend(answers="yes")
