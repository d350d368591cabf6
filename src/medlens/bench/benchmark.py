"""The benchmark contract: a ``Sample`` per question and a ``Benchmark`` spec per dataset.

A benchmark is declared in one file of ``medlens.bench.benchmarks``: where it comes from (a
Hugging Face dataset id pinned to a revision, and the layout of its original release for
``--data-dir``), its splits, licence and citation, and the scoring rule its paper uses. Loaders
return plain ``Sample`` objects; images stay as paths (or bytes) until the pipeline loads them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from medlens.registry import Registry
from medlens.types import AnswerKind


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


class Benchmark:
    """Base of every benchmark spec. Subclasses set the class attributes and implement
    ``load_local`` (original release layout) and ``load_hub`` (Hugging Face dataset id)."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    hf_id: ClassVar[str | None] = None
    hf_revision: ClassVar[str | None] = None
    """Pinned dataset revision (commit sha) so numbers are reproducible."""
    splits: ClassVar[Sequence[str]] = ("test",)
    default_split: ClassVar[str] = "test"
    license: ClassVar[str] = ""
    citation: ClassVar[str] = ""
    homepage: ClassVar[str] = ""
    scoring_rule: ClassVar[str] = ""
    """The rule the dataset's paper (or the reference harness) scores with, and its source."""
    local_dirname: ClassVar[str] = ""
    """Folder name under ``MEDLENS_DATA`` / ``--data-dir`` holding the original release."""

    def load(
        self, split: str | None = None, data_dir: str | os.PathLike[str] | None = None
    ) -> list[Sample]:
        """Samples of ``split``: from ``data_dir`` (or ``$MEDLENS_DATA/<local_dirname>``) when
        it holds the release, else from the Hugging Face Hub."""
        raise NotImplementedError

    def quality(
        self, samples: Sequence[Sample], *, train: Sequence[Sample] = ()
    ) -> list[QualityIssue]:
        """Data-quality findings for ``samples`` (and leakage against ``train``)."""
        raise NotImplementedError


BENCHMARKS: Registry[type[Benchmark]] = Registry("benchmark")


def data_root(data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """``--data-dir`` if given, else ``$MEDLENS_DATA``, else None."""
    value = data_dir or os.environ.get("MEDLENS_DATA")
    return Path(value) if value else None
