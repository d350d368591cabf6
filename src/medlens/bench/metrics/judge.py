"""An LLM judge for open answers, through any medlens backend.

Rule-based open scores miss synonyms ("renal" vs "kidney"); papers increasingly add an LLM
judge (MedEvalKit's ``get_compare_messages``, LLaVA-Med's GPT-4 review). medlens reports the
judge's accuracy *beside* the rule-based score, never instead of it, and keeps verdicts it
cannot read as their own count. The prompt gives the question, the reference and the
model answer and asks for one word, yes or no.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from medlens.bench.metrics.bootstrap import Estimate, bootstrap_mean
from medlens.bench.samples import Sample
from medlens.types import GenerationOptions, Message, Request, TextPart

if TYPE_CHECKING:
    from medlens.backends.base import Backend

JUDGE_PROMPT = (
    "You grade answers to questions about medical images.\n"
    "Question: {question}\n"
    "Reference answer: {reference}\n"
    "Model answer: {prediction}\n"
    "Does the model answer mean the same as the reference answer (a synonym or a more "
    "specific correct statement counts; a contradiction or a different finding does not)? "
    "Reply with one word: yes or no."
)
_VERDICT = re.compile(r"\b(yes|no|correct|incorrect|true|false)\b")
_POSITIVE = {"yes", "correct", "true"}


def parse_verdict(text: str) -> bool | None:
    """The judge's first verdict word (yes/correct/true vs no/incorrect/false), else None.

    >>> parse_verdict("Yes."), parse_verdict("No, it names another organ."), parse_verdict("?")
    (True, False, None)
    """
    found = _VERDICT.search(text.lower())
    return None if found is None else found.group(1) in _POSITIVE


@dataclass(frozen=True)
class JudgeVerdict:
    sample_id: str
    correct: bool | None
    raw: str


@dataclass(frozen=True)
class JudgeSummary:
    """Judge accuracy over the questions with a readable verdict, and how many were not."""

    model: str
    accuracy: Estimate
    unreadable: int

    def to_dict(self) -> dict[str, object]:
        return {
            "model": self.model,
            "accuracy": self.accuracy.to_dict(),
            "unreadable": self.unreadable,
        }


class LLMJudge:
    """Grades (sample, prediction) pairs with a backend's generations."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    @classmethod
    def from_model(cls, model: str, backend: str | None = None) -> LLMJudge:
        from medlens.backends.base import load_backend

        return cls(load_backend(model, backend))

    def requests(self, samples: Sequence[Sample], predictions: Sequence[str]) -> list[Request]:
        out = []
        for sample, prediction in zip(samples, predictions, strict=True):
            prompt = JUDGE_PROMPT.format(
                question=sample.question,
                reference=" / ".join(sample.answers),
                prediction=prediction.strip(),
            )
            out.append(
                Request(
                    id=f"judge-{sample.id}",
                    messages=(Message("user", (TextPart(prompt),)),),
                    kind="closed",
                    question=prompt,
                    options=GenerationOptions(max_new_tokens=8, temperature=0.0, logprobs=False),
                    candidates=("yes", "no"),
                    # Only benchmark text goes to the judge: no study, no PHI.
                    deidentified=True,
                )
            )
        return out

    def grade(self, samples: Sequence[Sample], predictions: Sequence[str]) -> list[JudgeVerdict]:
        generations = self.backend.generate(self.requests(samples, predictions))
        return [
            JudgeVerdict(s.id, parse_verdict(g.text) if g.error is None else None, g.text)
            for s, g in zip(samples, generations, strict=True)
        ]

    def summarize(
        self, verdicts: Sequence[JudgeVerdict], *, n_boot: int = 1000, seed: int = 0
    ) -> JudgeSummary:
        readable = [float(v.correct) for v in verdicts if v.correct is not None]
        return JudgeSummary(
            model=getattr(self.backend, "model_id", "?"),
            accuracy=bootstrap_mean(readable, n_boot=n_boot, seed=seed),
            unreadable=sum(v.correct is None for v in verdicts),
        )
