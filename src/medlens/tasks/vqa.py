"""Visual question answering: closed (yes/no), open (short free answer) and multiple choice.

The instructions follow LLaVA-1.5's (Liu et al. 2023, "Improved Baselines with Visual
Instruction Tuning", table 7): "Answer the question using a single word or phrase." and
"Answer with the option's letter from the given choices directly.", which medical VLMs
(LLaVA-Med, HuatuoGPT-Vision, Lingshu) were tuned on and which lmms-eval uses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from medlens.errors import ConfigError
from medlens.tasks.base import TASKS, Task
from medlens.tasks.parse import letter, match_candidates, match_choice, short_answer, split_answer
from medlens.types import Answer, Request, View

YES_NO = ("yes", "no")


def _or_list(items: Sequence[str]) -> str:
    """``("yes", "no")`` → ``"yes or no"``; ``("a", "b", "c")`` → ``"a, b or c"``."""
    return f"{', '.join(items[:-1])} or {items[-1]}"


Matcher = Callable[[str, Sequence[str]], tuple[int | None, str | None]]


def _in_answer_or_text(
    match: Matcher, answer: str, text: str, candidates: Sequence[str]
) -> tuple[int | None, str | None]:
    """Match in the answer section; when it names nothing (the split cut at "because" too
    early, say), in the whole text, which is held to the same strict rules."""
    index, error = match(answer, candidates)
    if index is None and answer != text and (error or "").startswith("none of"):
        return match(text, candidates)
    return index, error


class ClosedTask(Task):
    """A yes/no question (or another closed set given as candidates, such as left/right)."""

    kind = "closed"
    name = "closed"
    version = "3"
    """3: answers matched with ``medlens.normalize`` (the scorer's rule) instead of the
    parser's own; "xray" now reads as "X-ray", "twenty-one" no longer as "21"."""
    max_new_tokens = 32
    top_logprobs = 5

    def candidates(self, given: Sequence[str]) -> tuple[str, ...]:
        cands = tuple(given) or YES_NO
        if len(cands) < 2:
            raise ConfigError(f"A closed question needs at least two candidates, got {cands}.")
        return cands

    def template_fields(self, candidates: tuple[str, ...], views: Sequence[View]) -> dict[str, Any]:
        return {"choices": _or_list(candidates)}

    def parse_text(self, text: str, request: Request) -> Answer:
        cands = request.candidates or YES_NO
        sections = split_answer(text)
        index, error = _in_answer_or_text(match_candidates, sections.answer, text, cands)
        if index is None:
            return Answer(self.kind, text, parsed=False, parse_error=error)
        return Answer(self.kind, text, parsed=True, text=cands[index], rationale=sections.rationale)

    def candidate_answer(self, index: int, raw: str, request: Request) -> Answer:
        return Answer(self.kind, raw, parsed=True, text=request.candidates[index])


class ChoiceTask(Task):
    """Multiple choice; the options are the request's candidates, lettered A, B, C, ..."""

    kind = "choice"
    name = "choice"
    version = "3"
    """3: as ``closed@3``, options matched with ``medlens.normalize``."""
    max_new_tokens = 32
    top_logprobs = 5

    def candidates(self, given: Sequence[str]) -> tuple[str, ...]:
        cands = tuple(given)
        if not 2 <= len(cands) <= 26:
            raise ConfigError(
                f"A multiple-choice question needs 2 to 26 options, got {len(cands)}: pass them "
                "as candidates."
            )
        return cands

    def template_fields(self, candidates: tuple[str, ...], views: Sequence[View]) -> dict[str, Any]:
        return {"options": "\n".join(f"{letter(i)}. {o}" for i, o in enumerate(candidates))}

    def parse_text(self, text: str, request: Request) -> Answer:
        sections = split_answer(text)
        index, error = _in_answer_or_text(match_choice, sections.answer, text, request.candidates)
        if index is None:
            return Answer(self.kind, text, parsed=False, parse_error=error)
        answer = self.candidate_answer(index, text, request)
        return Answer(
            self.kind,
            text,
            parsed=True,
            text=answer.text,
            choice=answer.choice,
            rationale=sections.rationale,
        )

    def candidate_answer(self, index: int, raw: str, request: Request) -> Answer:
        return Answer(
            self.kind, raw, parsed=True, text=request.candidates[index], choice=letter(index)
        )


class OpenTask(Task):
    """A short free answer ("left lung", "pneumothorax"); explanations go to ``rationale``."""

    kind = "open"
    name = "open"
    version = "2"
    max_new_tokens = 64

    def parse_text(self, text: str, request: Request) -> Answer:
        sections = split_answer(text)
        answer, rest = short_answer(sections.answer)
        if not answer:
            return Answer(self.kind, text, parsed=False, parse_error="no short answer found")
        rationale = " ".join(r for r in (rest, sections.rationale) if r) or None
        return Answer(self.kind, text, parsed=True, text=answer, rationale=rationale)


TASKS.register("closed", ClosedTask())
TASKS.register("choice", ChoiceTask())
TASKS.register("open", OpenTask())
