"""The ``Task`` contract: build a chat ``Request`` from views and a question, parse the model's
``Generation`` back into an ``Answer``.

Prompt templates are text files in ``prompts/`` so that a change shows in review and in the
golden snapshots of tests/tasks; ``version`` names the template revision and goes into run
records and calibration fingerprints (a calibration fitted under one prompt does not transfer
to another). Bump it whenever a template or the message layout changes.
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
from medlens.types import (
    Answer,
    AnswerKind,
    Generation,
    GenerationOptions,
    ImagePart,
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
    ) -> Request:
        """A chat request: an optional system turn, then one user turn with the images
        (PRIOR ones first, each preceded by its view label) and the rendered template.

        ``deidentified`` must be True only when the views and question went through
        medlens.privacy (or the user turned it off); remote backends refuse otherwise.
        """
        question = (question or "").strip() or self.default_question
        if not question:
            raise ConfigError(
                f"A {self.kind} question needs its text: pass the question to ask about the image."
            )
        cands = self.candidates(candidates)
        content: list[TextPart | ImagePart] = []
        if prior_views:
            content.append(TextPart(load_prompt("comparison").strip()))
            content.extend(_view_parts(prior_views, "PRIOR"))
            content.extend(_view_parts(views, "CURRENT"))
        else:
            content.extend(_view_parts(views, ""))
        fields = {"question": question, **self.template_fields(cands, views)}
        content.append(TextPart(load_prompt(self.name).format_map(fields).strip()))
        messages: list[Message] = []
        if system_prompt:
            messages.append(Message("system", (TextPart(system_prompt),)))
        messages.append(Message("user", tuple(content)))
        return Request(
            id=request_id,
            messages=tuple(messages),
            kind=self.kind,
            question=question,
            options=options or GenerationOptions(max_new_tokens=self.max_new_tokens),
            candidates=cands,
            deidentified=deidentified,
            metadata={**(metadata or {}), **self.request_metadata(views)},
        )

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


def _view_parts(views: Sequence[View], role: str) -> list[TextPart | ImagePart]:
    parts: list[TextPart | ImagePart] = []
    for view in views:
        label = view.label.strip()
        heading = f"{role}: {label}" if role and label else (role or label)
        if heading:
            parts.append(TextPart(heading))
        parts.append(ImagePart(view.image))
    return parts


TASKS: Registry[Task] = Registry("task")


def get_task(kind: str) -> Task:
    """The task for an answer kind: closed, open, choice, report or grounding."""
    return TASKS.get(kind)
