"""Prompt presets: the message layout and instructions each evaluation harness sends.

Scoring rules are half of a harness; the prompt is the other half. The same model on the same
SLAKE questions answers differently when the closed questions end with "Answer with only yes
or no." (medlens) or "Answer the question using a single word or phrase." (lmms-eval), and when
a view label precedes the image or not. A preset pins one harness's prompt, as a protocol pins
its scoring rule: the instruction per question kind (and per benchmark where the harness has
per-benchmark prompts), whether images come before the text, the system turn, and how several
images are labelled. Each names the upstream repository, commit and file it reproduces; the
golden snapshots in ``tests/tasks/golden/harness/`` were recorded by running that code.

>>> from medlens.tasks.presets import get_preset
>>> preset = get_preset("lmms-eval")
>>> preset.instruction("closed", "Is this a CT?  ", (), {"benchmark": "slake"})
'Is this a CT?\\nAnswer the question using a single word or phrase.'
>>> preset.prompt_id("closed")
'lmms-eval@2/closed'

Kinds a harness has no prompt for (reports and grounding everywhere, multiple choice for
LLaVA-Med) use medlens's templates and layout, and record medlens's template id.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from medlens.registry import Registry
from medlens.types import AnswerKind, ImagePart, TextPart, View

Part = TextPart | ImagePart
LabelFormat = Callable[[int, int, View], str | None]
"""(1-based position of the image in the message, number of images, view) → label or None."""
Instruction = Callable[[AnswerKind, str, Sequence[str], Mapping[str, Any]], str]
"""(kind, question, candidates, request metadata) → the text part of the user turn."""

_TWO_D = re.compile(r"^\w+ 1/1$")


def informs(view: View, count: int) -> bool:
    """Whether a view label tells the model something: always when the message holds several
    images, for a single image only when it is a view of a volume ("axial 12/40", a MIP or a
    montage). A 2D image is labelled "<plane> 1/1" by ``study.views.slice_view``: it has no
    plane, and no harness sends such a label."""
    label = view.label.strip()
    return bool(label) and (count > 1 or not _TWO_D.match(label))


def medlens_label(position: int, count: int, view: View) -> str | None:
    return view.label.strip() if informs(view, count) else None


def no_label(position: int, count: int, view: View) -> str | None:
    return None


def numbered_label(template: str) -> LabelFormat:
    """A label naming the image's position, only when there are several images (MedEvalKit's
    ``"<image_{i}>: "``, MedGemma's ``"SLICE {i}"``)."""

    def label(position: int, count: int, view: View) -> str | None:
        return template.format(position) if count > 1 else None

    return label


@dataclass(frozen=True)
class PromptPreset:
    """How one harness builds its messages; see the module docstring."""

    name: str
    version: str
    source: str
    """``owner/repo@commit path:function`` of the upstream code (several separated by "; ")."""
    description: str
    instruction: Instruction
    kinds: frozenset[str] = frozenset({"closed", "open", "choice"})
    """Question kinds the harness has a prompt for; others use medlens's templates."""
    label: LabelFormat = medlens_label
    label_after: bool = False
    """The label follows its image (MedGemma's CT notebook) instead of preceding it."""
    system: str | None = None
    """The system turn the harness sends (None: none; the chat template may add its own)."""
    context_in_user: bool = False
    """A caller's system prompt goes first in the user turn instead of a system turn (the
    CT notebook's instruction; Gemma 3's chat template folds a system turn in there too)."""
    after_images: str = ""
    """Put between several images and the question (the CT notebook's query opens "\n\n")."""
    max_new_tokens: int | None = None
    """The harness's generation budget for its kinds (None: the task's own)."""
    comparison: bool = False
    """Whether PRIOR/CURRENT comparison wording is added (medlens only; no harness has it)."""

    def prompt_id(self, task: str) -> str:
        """What runs, reports and calibration fingerprints record for a question of ``task``."""
        return f"{self.name}@{self.version}/{task}"

    def layout(
        self,
        text: str,
        views: Sequence[View],
        prior_views: Sequence[View] = (),
        comparison: str = "",
        context: str | None = None,
    ) -> list[Part]:
        """The user turn: images (PRIOR ones first) with their labels, then the text (every
        harness here puts the question last). Images are numbered across the message."""
        groups = [("PRIOR", prior_views), ("CURRENT", views)] if prior_views else [("", views)]
        count = len(views) + len(prior_views)
        parts: list[Part] = []
        position = 0
        for role, group in groups:
            for view in group:
                position += 1
                label = self.label(position, count, view)
                if role and self.comparison:
                    label = f"{role}: {label}" if label else role
                image = ImagePart(view.image)
                labelled = [] if label is None else [TextPart(label)]
                parts.extend([image, *labelled] if self.label_after else [*labelled, image])
        if prior_views and self.comparison and comparison:
            parts.insert(0, TextPart(comparison))
        if context:
            parts.insert(0, TextPart(context))
        return [*parts, TextPart((self.after_images if count > 1 else "") + text)]


def _yes_no(candidates: Sequence[str]) -> bool:
    return {c.strip().lower() for c in candidates} <= {"yes", "no"}


def _lettered(candidates: Sequence[str]) -> str:
    return "\n".join(f"{chr(ord('A') + i)}. {c}" for i, c in enumerate(candidates))


# --------------------------------------------------------------------------------------------
# The presets
# --------------------------------------------------------------------------------------------

LMMS_EVAL_SOURCE = (
    "EvolvingLMMs-Lab/lmms-eval@0a75d6bab2ec6a5e402cecd153cb23b2b4b8ee71 "
    "lmms_eval/tasks/slake/utils.py:slake_doc_to_messages, _default_template_yaml "
    "(post_prompt); lmms_eval/models/simple/qwen2_5_vl.py:Qwen2_5_VL.generate_until "
    "(system prompt, images before text) @75571cfe0fa36ca5ec2e6aa2bb268f9d38295af3"
)
LMMS_SHORT = "\nAnswer the question using a single word or phrase."
LMMS_CHOICE = "\nAnswer with the option's letter from the given choices directly."


def _lmms_eval(
    kind: AnswerKind, question: str, candidates: Sequence[str], metadata: Mapping[str, Any]
) -> str:
    if kind == "choice":
        return f"{question.strip()}\n{_lettered(candidates)}{LMMS_CHOICE}"
    return f"{question.strip()}{LMMS_SHORT}"


MEDEVALKIT_SOURCE = (
    "alibaba-damo-academy/MedEvalKit@9b12e3b34232a8779cc1275417bf4f72f03d28e0 "
    "utils/question_formats.py (get_judgement_prompt, get_open_ended_prompt, "
    "get_close_ended_prompt, get_multiple_choice_prompt), utils/VQA_RAD/VQA_RAD.py and "
    "utils/PATH_VQA/PATH_VQA.py:construct_messages, utils/SLAKE/SLAKE.py:load_data, "
    "models/Qwen2_5_VL/Qwen2_5_VL_hf.py:process_messages"
)
MEDEVALKIT_JUDGEMENT = "\nPlease output 'yes' or 'no'(no extra output)."
MEDEVALKIT_OPEN = "\nPlease answer the question concisely."
MEDEVALKIT_SHORT = "\nAnswer the question using a single word or phrase."


def _medevalkit(
    kind: AnswerKind, question: str, candidates: Sequence[str], metadata: Mapping[str, Any]
) -> str:
    """MedEvalKit's non-reasoning English prompts. VQA-RAD and PathVQA choose the yes/no
    prompt from the *reference answer* (``answer.lower() in ["yes", "no"]``), which the
    benchmark loaders pass as ``metadata["yes_no_answer"]``; SLAKE by ``answer_type``."""
    if kind == "choice":
        return (
            f"\nQuestion: {question}\nOptions: \n{_lettered(candidates)}"
            "\nAnswer with the option's letter from the given choices directly."
        )
    if metadata.get("benchmark") == "slake":
        return question + (MEDEVALKIT_OPEN if kind == "open" else MEDEVALKIT_SHORT)
    yes_no = metadata.get("yes_no_answer")
    if yes_no is None:  # not a benchmark question: the kind decides
        yes_no = kind == "closed" and _yes_no(candidates or ("yes", "no"))
    return question + (MEDEVALKIT_JUDGEMENT if yes_no else MEDEVALKIT_OPEN)


LLAVA_MED_SOURCE = (
    "microsoft/LLaVA-Med@d406e3fc7c3d1e4c797a7676de18cbfd070b6d2c "
    "llava/eval/model_vqa.py:eval_model (v1.5: image token, newline, question); question "
    "format of the VQA-RAD answer files @ad758b687d4e79628dbfdb149dc545641ed29014 "
    "llava/eval/eval_metrics/answer-file-1epoch.jsonl"
)


_COUNT_WORDS = {2: "two", 3: "three", 4: "four", 5: "five"}


def _llava_med(
    kind: AnswerKind, question: str, candidates: Sequence[str], metadata: Mapping[str, Any]
) -> str:
    """Closed questions end with " Please choose from the following two options: [yes, no]"
    (the released answer files write the options in the reference answer's case, "[Yes, No]"
    for 188 of 272 and "[yes, no]" for 84; medlens uses the candidates as given). A
    benchmark's closed question gets "[yes, no]" whatever options it lists, as upstream sent
    "Are there multiple or just 1 metastatic focus?". Open questions are sent as asked."""
    if kind == "closed":
        options = ("yes", "no") if metadata.get("benchmark") else tuple(candidates) or ("yes", "no")
        count = _COUNT_WORDS.get(len(options), str(len(options)))
        return (
            f"{question} Please choose from the following {count} options: [{', '.join(options)}]"
        )
    return question


MEDGEMMA_SOURCE = (
    "Google-Health/medgemma@d89262cd89e1d281eddbecb21fa83584a508f46f "
    "notebooks/high_dimensional_ct_hugging_face.ipynb (cell 'Construct MedGemma 1.5 prompt': "
    "image then 'SLICE {n}' per slice, the query last); 2D layout of the google/medgemma-1.5-"
    "4b-it model card's pipeline example (image, then the text; no system turn)"
)


def _medgemma(
    kind: AnswerKind, question: str, candidates: Sequence[str], metadata: Mapping[str, Any]
) -> str:
    """The card and notebooks send the user's question as written, with no answer-format
    instruction; multiple choice lists the options lettered."""
    if kind == "choice":
        return f"{question}\n{_lettered(candidates)}"
    return question


PRESETS: Registry[PromptPreset] = Registry("prompt preset")
DEFAULT_PRESET = "medlens"

for _preset in (
    PromptPreset(
        "medlens",
        "2",
        "medlens (src/medlens/tasks/prompts/*.txt)",
        "medlens's templates (LLaVA-1.5's short-answer and letter instructions, 'Answer with "
        "only yes or no.' for closed questions); view labels only where they inform (several "
        "images, or a view of a volume), before each image; PRIOR/CURRENT comparison wording.",
        lambda kind, question, candidates, metadata: question,  # unused: kinds is empty
        kinds=frozenset(),
        comparison=True,
    ),
    PromptPreset(
        "lmms-eval",
        "2",
        LMMS_EVAL_SOURCE,
        "lmms-eval's SLAKE task with its Qwen2.5-VL model class: system 'You are a helpful "
        "assistant.', the images, then the stripped question + '\\nAnswer the question using a "
        "single word or phrase.' for closed and open alike; no view labels; greedy, 32 new "
        "tokens (its generation_kwargs). lmms-eval has no "
        "VQA-RAD or PathVQA task, so other benchmarks get the SLAKE template.",
        _lmms_eval,
        label=no_label,
        system="You are a helpful assistant.",
        max_new_tokens=32,  # _default_template_yaml generation_kwargs (greedy)
    ),
    PromptPreset(
        "medevalkit",
        "1",
        MEDEVALKIT_SOURCE,
        "MedEvalKit (Lingshu's tables), non-reasoning prompts: VQA-RAD/PathVQA yes/no answers "
        "'\\nPlease output 'yes' or 'no'(no extra output).', others '\\nPlease answer the "
        "question concisely.'; SLAKE closed '\\nAnswer the question using a single word or "
        "phrase.', open the concise prompt; multiple choice 'Question: ... Options: ...'. No "
        "system turn; one image before the text, several as '<image_i>: ' + image.",
        _medevalkit,
        label=numbered_label("<image_{}>: "),
    ),
    PromptPreset(
        "llava-med",
        "1",
        LLAVA_MED_SOURCE,
        "LLaVA-Med v1.5: the image, then the question; closed questions end with ' Please "
        "choose from the following two options: [yes, no]'. No view labels. LLaVA-Med has no "
        "multiple-choice format: medlens's template is used.",
        _llava_med,
        kinds=frozenset({"closed", "open"}),
        label=no_label,
    ),
    PromptPreset(
        "medgemma",
        "1",
        MEDGEMMA_SOURCE,
        "MedGemma's card and CT notebook: images first, each of several followed by 'SLICE n', "
        "then '\\n\\n' and the question, as asked; no system turn: a system prompt (the "
        "notebook's instruction) opens the user turn.",
        _medgemma,
        label=numbered_label("SLICE {}"),
        label_after=True,
        context_in_user=True,
        after_images="\n\n",
    ),
):
    PRESETS.register(_preset.name, _preset)


_INSTRUCTIONS = re.compile(
    r"\s*(?:"
    + "|".join(
        re.escape(t.strip())
        for t in (LMMS_SHORT, LMMS_CHOICE, MEDEVALKIT_JUDGEMENT, MEDEVALKIT_OPEN)
    )
    + r"|Please choose from the following \w+ options: \[[^\]]*\]"
    + r"|Answer with only [^\n]*\.)\s*$"
)


def strip_instruction(text: str) -> str:
    """``text`` without an answer-format instruction a preset appends ("... Please choose
    from the following two options: [yes, no]" becomes the question), so that a harness's
    stored prompt can be matched to the question it asks."""
    return _INSTRUCTIONS.sub("", text).strip()


EARLIER_PRESETS: dict[tuple[str, str], str] = {
    ("medlens", "1"): "medlens's templates before harness presets existed (prompts closed@1, "
    "open@1, ...): every image preceded by its view label, a single 2D image's 'axial 1/1' "
    "included; otherwise as medlens@2.",
    ("lmms-eval", "1"): "lmms-eval@2's messages, decoded with medlens's budgets instead of "
    "lmms-eval's 32 new tokens: 32 for closed and multiple-choice questions, 64 for open ones "
    "(d04c4a9 to 7ab5e59).",
}
"""Versions of the presets that stored runs may have been made with, and what they were; a
preset whose layout, wording or decoding budget changes bumps its version and adds its old one
here (``tests/tasks/test_presets.py`` holds each prompt id to what it sends)."""


def describe_preset(name: str, version: str) -> str:
    """What preset ``name`` at ``version`` sent: the current description, an earlier one's,
    or a sentence saying that medlens keeps none."""
    current = PRESETS.get(name) if name in PRESETS else None
    if current is not None and current.version == version:
        return current.description
    return EARLIER_PRESETS.get(
        (name, version), f"an earlier or unknown version of the {name} preset (not described)"
    )


def get_preset(name: str | PromptPreset | None = None) -> PromptPreset:
    """The preset registered as ``name`` (medlens's when None); "did you mean" otherwise."""
    if isinstance(name, PromptPreset):
        return name
    return PRESETS.get(name or DEFAULT_PRESET)


__all__ = [
    "DEFAULT_PRESET",
    "EARLIER_PRESETS",
    "PRESETS",
    "PromptPreset",
    "describe_preset",
    "get_preset",
    "informs",
    "strip_instruction",
]
