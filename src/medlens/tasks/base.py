"""The ``Task`` contract: build a chat ``Request`` from views and a question, parse the model's
``Generation`` back into an ``Answer``.

Prompt templates are text files in ``prompts/`` so that a change shows in review and in the
golden snapshots of tests/tasks; ``version`` names the revision of the template and of the
parser and goes into run records and calibration fingerprints (a calibration fitted under one
prompt does not transfer to another). Bump it whenever a template or the message layout
changes, and whenever the parser reads some text as another answer than before (including a
change of ``medlens.normalize``, which the closed and multiple-choice parsers match with).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import cache
from importlib import resources
from typing import Any, ClassVar

from medlens.errors import ConfigError
from medlens.registry import Registry
from medlens.tasks.parse import clean
from medlens.tasks.presets import DEFAULT_PRESET, PromptPreset, get_preset
from medlens.types import (
    Answer,
    AnswerKind,
    Generation,
    GenerationOptions,
    Message,
    Request,
    TextPart,
    View,
)


@cache
def load_prompt(name: str) -> str:
    """The text of ``prompts/<name>.txt`` (shipped as package data)."""
    return resources.files("medlens.tasks").joinpath(f"prompts/{name}.txt").read_text("utf-8")


class Task:
    """One kind of question. Subclasses set the class attributes and ``parse_text``."""

    kind: ClassVar[AnswerKind]
    name: ClassVar[str]
    version: ClassVar[str]
    """Template revision, e.g. ``"1"``; ``f"{name}@{version}"`` identifies the prompt."""
    default_question: ClassVar[str] = ""
    """Used when the question is blank (reports and grounding have a natural default)."""
    max_new_tokens: ClassVar[int] = 64
    """Default generation budget when ``build`` gets no options."""
    top_logprobs: ClassVar[int] = 0
    """Alternatives per generated token by default. Only candidate confidence reads them (the
    answer token of closed and multiple-choice questions); sequence confidence needs the
    chosen tokens' logprobs alone, which cost far less (benchmarks/throughput.py)."""

    @property
    def prompt_id(self) -> str:
        return f"{self.name}@{self.version}"

    # --------------------------------------------------------------------------------------
    # Building
    # --------------------------------------------------------------------------------------

    def build(
        self,
        views: Sequence[View],
        question: str,
        *,
        request_id: str,
        options: GenerationOptions | None = None,
        candidates: Sequence[str] = (),
        prior_views: Sequence[View] = (),
        system_prompt: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        deidentified: bool = False,
        prompt: str | PromptPreset | None = None,
    ) -> Request:
        """A chat request laid out by the prompt preset ``prompt`` (medlens's by default): an
        optional system turn, then one user turn with the images (PRIOR ones first, labelled
        as the preset labels them) and the question with its instruction.

        ``deidentified`` must be True only when the views and question went through
        medlens.privacy (or the user turned it off); remote backends refuse otherwise.
        ``metadata["prompt"]`` records the preset and template (``prompt_id_for``).
        """
        question = (question or "").strip() or self.default_question
        if not question:
            raise ConfigError(
                f"A {self.kind} question needs its text: pass the question to ask about the image."
            )
        cands = self.candidates(candidates)
        facts = {**(metadata or {}), **self.request_metadata(views)}
        preset = self.preset_for(prompt)
        if self.kind in preset.kinds:
            text = preset.instruction(self.kind, question, cands, facts)
        else:
            fields = {"question": question, **self.template_fields(cands, views)}
            text = load_prompt(self.name).format_map(fields).strip()
        context = system_prompt if preset.context_in_user else None
        comparison = load_prompt("comparison").strip()
        content = preset.layout(text, views, prior_views, comparison, context)
        messages: list[Message] = []
        system = None if preset.context_in_user else system_prompt or preset.system
        if system:
            messages.append(Message("system", (TextPart(system),)))
        messages.append(Message("user", tuple(content)))
        return Request(
            id=request_id,
            messages=tuple(messages),
            kind=self.kind,
            question=question,
            options=options
            or GenerationOptions(
                max_new_tokens=preset.max_new_tokens or self.max_new_tokens,
                top_logprobs=self.top_logprobs,
            ),
            candidates=cands,
            deidentified=deidentified,
            metadata={**facts, "prompt": self.prompt_id_for(preset)},
        )

    def preset_for(self, prompt: str | PromptPreset | None = None) -> PromptPreset:
        """The preset that builds this task's requests under ``prompt``: medlens's when the
        harness has no prompt for this kind of question."""
        preset = get_preset(prompt)
        return preset if self.kind in preset.kinds else get_preset(DEFAULT_PRESET)

    def prompt_id_for(self, prompt: str | PromptPreset | None = None) -> str:
        """The prompt a request of this task is built with: ``"closed@3"`` for medlens's
        templates, ``"lmms-eval@2/closed"`` for a harness preset."""
        preset = self.preset_for(prompt)
        return self.prompt_id if preset.name == DEFAULT_PRESET else preset.prompt_id(self.name)

    def candidates(self, given: Sequence[str]) -> tuple[str, ...]:
        """The answer candidates a request carries (none for free-text kinds)."""
        return ()

    def template_fields(self, candidates: tuple[str, ...], views: Sequence[View]) -> dict[str, Any]:
        """Values for the template's placeholders besides ``{question}``."""
        return {}

    def request_metadata(self, views: Sequence[View]) -> dict[str, Any]:
        """Facts ``parse`` needs later (the grounding image size)."""
        return {}

    # --------------------------------------------------------------------------------------
    # Parsing
    # --------------------------------------------------------------------------------------

    def parse(self, generation: Generation, request: Request) -> Answer:
        """Read the generation as this task's answer. Never raises on what the model wrote:
        failures give ``parsed=False`` with ``parse_error`` and the raw text kept.

        In scoring mode (``candidate_logprobs`` set) the answer is the most likely candidate;
        ties are broken by the generated text when it names one of the tied candidates.
        """
        raw = generation.text if isinstance(generation.text, str) else ""
        if generation.finish_reason == "error" or generation.error:
            return self.unparsed(raw, f"generation failed: {generation.error or 'unknown error'}")
        text = clean(raw)
        scored = self._best_scored(generation, request)
        if scored:
            if len(scored) > 1 and text:
                from_text = self.parse_text(text, request)
                index = self._candidate_index(from_text, request)
                if index in scored:
                    return self.candidate_answer(index, raw, request)
            return self.candidate_answer(scored[0], raw, request)
        if not text:
            reason = "unfinished reasoning, no answer" if raw.strip() else "empty output"
            return self.unparsed(raw, reason)
        return replace(self.parse_text(text, request), raw=raw)

    def parse_text(self, text: str, request: Request) -> Answer:
        """Parse cleaned text (reasoning blocks and Markdown emphasis removed)."""
        raise NotImplementedError

    def candidate_answer(self, index: int, raw: str, request: Request) -> Answer:
        """The answer that picks candidate ``index`` (candidate kinds only)."""
        raise NotImplementedError

    def unparsed(self, raw: str, reason: str) -> Answer:
        return Answer(kind=self.kind, raw=raw, parsed=False, parse_error=reason)

    def _best_scored(self, generation: Generation, request: Request) -> list[int]:
        cands = request.candidates
        scores = generation.candidate_logprobs
        if not cands or not scores:
            return []
        valid = {
            i: float(scores[c])
            for i, c in enumerate(cands)
            if isinstance(scores.get(c), (int, float)) and not math.isnan(float(scores[c]))
        }
        if not valid:
            return []
        best = max(valid.values())
        return [i for i, v in valid.items() if v == best]

    def _candidate_index(self, answer: Answer, request: Request) -> int | None:
        if not answer.parsed or answer.text is None:
            return None
        try:
            return request.candidates.index(answer.text)
        except ValueError:
            return None


TASKS: Registry[Task] = Registry("task")


def get_task(kind: str) -> Task:
    """The task for an answer kind: closed, open, choice, report or grounding."""
    return TASKS.get(kind)
