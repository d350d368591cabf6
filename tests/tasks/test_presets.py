"""Prompt presets against the message lists the upstream harnesses build.

``golden/harness/upstream_prompts.json`` was recorded by running each harness's own prompt code
at the commit its ``source`` names (lmms-eval's ``slake_doc_to_messages`` and its Qwen2.5-VL
class's system prompt; MedEvalKit's ``construct_messages``/``load_data`` and
``Qwen2_5_VL.process_messages``; LLaVA-Med's released VQA-RAD answer-file prompts in v1.5's
layout; the MedGemma CT notebook's prompt cell) on SLAKE and VQA-RAD test questions. Images
are placeholders: what is compared is the message list, text and image parts in order.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from medlens.errors import UnknownNameError
from medlens.tasks import get_task
from medlens.tasks.presets import PRESETS, describe_preset, get_preset
from medlens.types import ImagePart, Request, View

UPSTREAM = json.loads(
    (Path(__file__).parent / "golden" / "harness" / "upstream_prompts.json").read_text("utf-8")
)


def view(label: str) -> View:
    return View(image=Image.new("RGB", (16, 16)), label=label, regions=())


def messages_of(request: Request) -> list[dict[str, Any]]:
    return [
        {
            "role": m.role,
            "content": [
                {"type": "image"} if isinstance(p, ImagePart) else {"type": "text", "text": p.text}
                for p in m.content
            ],
        }
        for m in request.messages
    ]


def build(preset: str, case: dict[str, Any], views: list[View] | None = None) -> Request:
    return get_task(case["kind"]).build(
        views or [view("axial 1/1")],
        case["question"],
        request_id=case["id"],
        metadata={"benchmark": case["benchmark"], "yes_no_answer": case["yes_no_answer"]},
        prompt=preset,
    )


CASES = [
    (preset, case)
    for preset in ("lmms-eval", "medevalkit", "llava-med")
    for case in UPSTREAM[preset]["cases"]
]


@pytest.mark.parametrize(
    ("preset", "case"), CASES, ids=[f"{p}-{c['benchmark']}-{c['id']}" for p, c in CASES]
)
def test_preset_builds_the_upstream_message_list(preset: str, case: dict[str, Any]) -> None:
    built = messages_of(build(preset, case))
    expected = case["messages"]
    if preset == "llava-med":
        # The answer files write the options in the reference answer's case ("[Yes, No]"
        # when the answer is "Yes"); medlens does not let the answer into the prompt.
        for message in expected:
            for part in message["content"]:
                if "text" in part:
                    part["text"] = part["text"].replace("[Yes, No]", "[yes, no]")
    assert built == expected


def test_upstream_snapshots_cover_both_benchmarks_and_both_kinds() -> None:
    for preset in ("lmms-eval", "medevalkit", "llava-med"):
        cases = UPSTREAM[preset]["cases"]
        assert {c["kind"] for c in cases} == {"closed", "open"}
        assert "@" in UPSTREAM[preset]["source"]
    benchmarks = {c["benchmark"] for c in UPSTREAM["medevalkit"]["cases"]}
    assert benchmarks == {"vqa-rad", "slake"}


def test_medevalkit_reads_the_reference_answer_not_the_answer_type_on_vqa_rad() -> None:
    # A CLOSED VQA-RAD question answered "1" gets MedEvalKit's open prompt.
    case = next(c for c in UPSTREAM["medevalkit"]["cases"] if c["kind"] == "closed")
    other = {**case, "yes_no_answer": False}
    text = messages_of(build("medevalkit", other))[0]["content"][-1]["text"]
    assert text.endswith("\nPlease answer the question concisely.")


def test_medevalkit_labels_several_images_as_its_qwen_class_does() -> None:
    two = UPSTREAM["medevalkit"]["two_images"]
    case = {"kind": "open", "question": two["text"], "id": "x", "benchmark": "x"}
    request = get_task("open").build(
        [view("axial 1/2"), view("axial 2/2")], two["text"], request_id="x", prompt="medevalkit"
    )
    built = messages_of(request)
    # MedEvalKit's open prompt is appended to a question; the layout is what is recorded.
    built[0]["content"][-1]["text"] = case["question"]
    assert built == two["messages"]


def test_medgemma_volume_layout_is_the_ct_notebooks() -> None:
    volume = UPSTREAM["medgemma"]["volume"]
    request = get_task("open").build(
        [view(f"axial {i}/3") for i in (1, 2, 3)],
        volume["query"],
        request_id="ct",
        system_prompt=volume["instruction"],
        prompt="medgemma",
    )
    assert messages_of(request) == volume["messages"]


def test_a_single_2d_image_carries_no_view_label_and_a_volume_does() -> None:
    task = get_task("closed")
    single = task.build([view("axial 1/1")], "Is it normal?", request_id="a")
    assert [type(p).__name__ for p in single.messages[0].content] == ["ImagePart", "TextPart"]
    slice_of_volume = task.build([view("axial 12/40")], "Is it normal?", request_id="b")
    assert slice_of_volume.messages[0].content[0].text == "axial 12/40"  # type: ignore[union-attr]
    slices = task.build([view("axial 3/40"), view("axial 9/40")], "Is it?", request_id="c")
    texts = [p.text for p in slices.messages[0].content if not isinstance(p, ImagePart)]
    assert texts[:2] == ["axial 3/40", "axial 9/40"]
    # MedGemma numbers the slices after each image; a single 2D image gets no label.
    medgemma = task.build([view("axial 1/1")], "Is it?", request_id="d", prompt="medgemma")
    assert len(medgemma.messages[0].content) == 2


def test_every_preset_names_its_upstream_commit_and_is_recorded() -> None:
    assert PRESETS.names() == ["llava-med", "lmms-eval", "medevalkit", "medgemma", "medlens"]
    for name in PRESETS.names():
        preset = get_preset(name)
        if name != "medlens":
            assert any(len(word) == 40 for word in preset.source.replace("@", " ").split())
        request = get_task("open").build([view("")], "What?", request_id="r", prompt=name)
        expected = "open@2" if name == "medlens" else f"{name}@{preset.version}/open"
        assert request.metadata["prompt"] == expected


def test_kinds_a_harness_has_no_prompt_for_use_medlens_templates() -> None:
    request = get_task("choice").build(
        [view("")], "Which?", request_id="c", candidates=("a", "b"), prompt="llava-med"
    )
    assert request.metadata["prompt"] == "choice@3"
    report = get_task("report").build([view("")], "", request_id="r", prompt="lmms-eval")
    assert report.metadata["prompt"] == "report@2"
    assert [m.role for m in report.messages] == ["user"]


def test_unknown_preset_suggests() -> None:
    with pytest.raises(UnknownNameError, match="lmms-eval"):
        get_preset("lmms_eval")


def test_each_harness_names_a_registered_preset_and_protocol() -> None:
    from medlens.bench.protocols import PROTOCOLS
    from medlens.cli.common import HARNESSES

    for harness, (preset, protocol) in HARNESSES.items():
        assert preset in PRESETS and protocol in PROTOCOLS, harness
        assert harness == preset


def test_lmms_eval_preset_decodes_as_its_task_yaml() -> None:
    closed = get_task("closed").build([view("")], "Is it?", request_id="a", prompt="lmms-eval")
    opened = get_task("open").build([view("")], "What?", request_id="b", prompt="lmms-eval")
    assert closed.options.max_new_tokens == opened.options.max_new_tokens == 32
    assert closed.options.temperature == 0.0
    assert get_task("open").build([view("")], "What?", request_id="c").options.max_new_tokens == 64


def sent_per_prompt_id() -> dict[str, str]:
    """A digest of the messages and decoding every preset sends, per prompt id, over the
    kinds, benchmarks (VQA-RAD with a yes/no answer and without) and one or two images."""
    sent: dict[str, list[Any]] = {}
    for name in PRESETS.names():
        for kind, candidates in (("closed", ()), ("open", ()), ("choice", ("edema", "mass"))):
            for benchmark, yes_no in (("slake", True), ("vqa-rad", True), ("vqa-rad", False)):
                for views in ([view("axial 1/1")], [view("axial 1/2"), view("axial 2/2")]):
                    request = get_task(kind).build(
                        views,
                        "Is there an effusion? ",
                        request_id="sent",
                        candidates=candidates,
                        metadata={"benchmark": benchmark, "yes_no_answer": yes_no},
                        prompt=name,
                    )
                    record = [messages_of(request), vars(request.options)]
                    sent.setdefault(request.metadata["prompt"], []).append(record)
    return {
        prompt: hashlib.sha256(json.dumps(records, sort_keys=True).encode()).hexdigest()[:16]
        for prompt, records in sent.items()
    }


SENT = {
    "choice@3": "11c48c2275b7c088",
    "closed@3": "e4835464cea4122c",
    "llava-med@1/closed": "feaeb99a28ccfddb",
    "llava-med@1/open": "b4355ac0d253566e",
    "lmms-eval@2/choice": "a3c468f437e3d996",
    "lmms-eval@2/closed": "910ff5a89b62a1cd",
    "lmms-eval@2/open": "d06d4d184affadac",
    "medevalkit@1/choice": "5c50ce9e8da0963b",
    "medevalkit@1/closed": "39dc1107b69faf74",
    "medevalkit@1/open": "ef6a2a65b107d818",
    "medgemma@1/choice": "9fcd445bc7332ec8",
    "medgemma@1/closed": "03f668abddbaf573",
    "medgemma@1/open": "1c42205017dbb7ec",
    "open@2": "e3f50c6c4aea04b7",
}
"""What each prompt id sent when it was recorded here. Runs, reports and calibration
fingerprints name a prompt by this id, so a change of its messages or decoding must come with
a new version (and the old one described in ``EARLIER_PRESETS``), never under the same id."""


def test_a_prompt_id_always_sends_the_same_messages_and_decoding() -> None:
    changed = {p: d for p, d in sent_per_prompt_id().items() if SENT.get(p) != d}
    assert not changed, (
        f"{sorted(changed)} now send other messages or decoding than when recorded: bump the "
        "preset's (or task's) version, describe the old one in EARLIER_PRESETS, and record "
        f"the new digests here: {changed}"
    )


def test_runs_of_lmms_eval_before_its_32_token_budget_keep_their_own_description() -> None:
    assert get_preset("lmms-eval").prompt_id("open") == "lmms-eval@2/open"
    assert "32 new tokens" in describe_preset("lmms-eval", "2")
    earlier = describe_preset("lmms-eval", "1")
    assert "64 for open" in earlier and earlier != describe_preset("lmms-eval", "2")
