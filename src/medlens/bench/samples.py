"""The records a benchmark yields: one ``Sample`` per question, and ``QualityIssue`` findings.

They sit below everything else in ``medlens.bench`` (loaders, quality checks, protocols, the
run store), so that none of those has to import another to name a question.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from medlens.types import AnswerKind

CATEGORY_KEY = "question_type"
"""The ``Sample.metadata`` key loaders fill with the question category (VQA-RAD
``question_type``, SLAKE ``content_type``); the prior baseline and per-category tables use it."""


@dataclass(frozen=True)
class Sample:
    """One benchmark question.

    ``answers`` holds every accepted reference answer (most datasets have one). For multiple
    choice, ``candidates`` are the option texts in order and ``answers`` the correct option
    text(s). ``metadata`` keeps what the dataset gives: modality, organ, question category,
    image id, grounding boxes ``{"boxes": [{"label": ..., "box": [x0, y0, x1, y1]}]}``.
    """

    id: str
    benchmark: str
    split: str
    question: str
    answers: tuple[str, ...]
    kind: AnswerKind
    images: tuple[str | bytes, ...]
    candidates: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def answer(self) -> str:
        return self.answers[0] if self.answers else ""


@dataclass(frozen=True)
class QualityIssue:
    """A data-quality finding made at load time (missing image, duplicate, leakage...)."""

    kind: str
    count: int
    detail: str
    examples: tuple[str, ...] = ()


class LoadedSplit(list[Sample]):
    """A split as ``Benchmark.load`` read it: its samples in the release's order (it is the
    list of them), and where they came from, which every run records."""

    def __init__(
        self,
        samples: Iterable[Sample],
        split: str,
        source: Literal["local", "hub"],
        revision: str | None,
    ) -> None:
        super().__init__(samples)
        self.split = split
        self.source: Literal["local", "hub"] = source
        """``local``: the original release under ``--data-dir``/``$MEDLENS_DATA``; ``hub``:
        the Hugging Face Hub."""
        self.revision = revision
        """The exact Hub commit loaded; None for a local release."""
