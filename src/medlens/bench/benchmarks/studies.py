"""A list of the user's own studies, each with a question (and optionally its gold answer),
evaluated like a benchmark: ``medlens eval --studies cases.csv --model M``.

The file is what ``medlens score`` reads (``bench.metrics.predictions.read_rows``: JSONL, a
JSON list, CSV or TSV) with the column names of a benchmark release such as VQA-RAD's: an id
(``qid``, ``question_id``, ``id``...; else the row number), the study (``study``, ``image``,
``image_name``, ``image_path``...: a ``dicomweb://HOST:PORT/dicom-web/studies/UID[/series/
UID]`` address or a path, relative to the list's folder), the ``question``, the gold
``answer`` (or ``gold``), and optionally ``answer_type`` (CLOSED/OPEN) or ``kind``,
``choices`` ('|'-separated or a JSON list) and ``modality``::

    qid,study,question,answer,answer_type
    1,dicomweb://pacs:8042/dicom-web/studies/1.2.3,Is there a nodule?,yes,CLOSED
    2,ct/patient7,Which lobe holds the nodule?,right upper lobe,OPEN

Each study goes through the same pipeline as a benchmark image: loaded (WADO-RS for a PACS),
de-identified with OCR redaction (these are not publisher-de-identified releases), then shown
to the model; runs are stored, resumable and reported like any other. A list without gold
answers is answered and stored without scores; a list with gold on only some rows is refused
(a score over part of a list would read as a score over all of it).

A list is named by its content (``studies-<sha256 prefix>``), never by its file name or a
study's identifiers: the same file resumes its run, an edited file starts a new one.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from medlens.bench.benchmark import Benchmark
from medlens.bench.metrics.predictions import ID_COLUMNS, IMAGE_COLUMNS, QUESTION_COLUMNS, read_rows
from medlens.bench.samples import LoadedSplit, QualityIssue, Sample
from medlens.errors import ConfigError, DataError
from medlens.types import AnswerKind

PREFIX = "studies-"
STUDY_COLUMNS = ("study", "series", *IMAGE_COLUMNS)
GOLD_COLUMNS = ("answer", "gold", "answers", "gt_answer", "ground_truth", "label")
KIND_COLUMNS = ("kind", "answer_type")
CHOICE_COLUMNS = ("choices", "options", "candidates")
KINDS: tuple[AnswerKind, ...] = ("closed", "open", "choice", "report")
"""Question kinds a list can hold (grounding gold boxes are not read from lists)."""
REMOTE = "dicomweb://"


def is_study_list(name: str) -> bool:
    """Whether ``name`` is the stored name of a study list's runs."""
    return name.startswith(PREFIX)


def list_name(path: str | Path) -> str:
    """The name a list's runs are stored under: its content hash, so that no file name or
    study identifier becomes a run's key."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise DataError(
            f"The study list {path} does not exist. Pass --studies a CSV/JSONL file with a "
            "study and a question per row."
        ) from exc
    return PREFIX + hashlib.sha256(data).hexdigest()[:12]


def _column(present: set[str], options: Sequence[str]) -> str | None:
    return next((c for c in options if c in present), None)


def _kind(value: Any, question: str, candidates: tuple[str, ...], row: int) -> AnswerKind:
    from medlens.tasks import guess_kind

    text = str(value or "").strip().lower()
    if not text:
        return guess_kind(question, candidates)
    if text in KINDS:
        return text
    raise DataError(
        f"row {row}: unknown question kind '{value}'; use one of {', '.join(KINDS)} (or "
        "CLOSED/OPEN as VQA-RAD's answer_type), or leave it empty to guess from the question."
    )


def _choices(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(v).strip() for v in value if str(v).strip())
    text = str(value or "").strip()
    if text.startswith("["):
        return _choices(json.loads(text))
    return tuple(c.strip() for c in text.split("|") if c.strip())


def _gold(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(v) for v in value if str(v).strip())
    text = "" if value is None else str(value)
    return (text,) if text.strip() else ()


class StudyList(Benchmark):
    """The studies of one list file as benchmark samples (one split, ``test``)."""

    name: ClassVar[str] = "studies"
    scoring_rule = (
        "the user's own gold answers, scored by the registered protocols (closed yes/no "
        "exact match, open-answer token F1/recall)"
    )
    license = "the user's own studies"

    def __init__(self, path: str | Path | None = None, *, stored_as: str | None = None) -> None:
        self.path = None if path is None else Path(path)
        # Each list is its own benchmark, named by its content: the name is per instance.
        self.name = list_name(self.path) if self.path is not None else stored_as or PREFIX  # type: ignore[misc]

    @classmethod
    def stored(cls, name: str) -> StudyList:
        """The list a stored run names, without its file (its report needs only the name)."""
        return cls(stored_as=name)

    def load(
        self,
        split: str | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        revision: str | None = None,
    ) -> LoadedSplit:
        """The list's samples; ``data_dir`` and ``revision`` do not apply (the list is the
        data, and its content hash is the revision every run records)."""
        if split not in (None, self.default_split):
            raise ConfigError(
                f"A list of studies is one split, '{self.default_split}', not '{split}': "
                "leave out --split."
            )
        if self.path is None:
            raise DataError(
                f"{self.name} is a list of studies whose runs are in the run store; to run it "
                "again, pass the list itself: medlens eval --studies FILE."
            )
        samples = self.read()
        digest = hashlib.sha256(self.path.read_bytes()).hexdigest()
        return LoadedSplit(samples, split or self.default_split, "local", digest)

    def read(self) -> list[Sample]:
        """The list's rows as samples; every fault is one ``DataError`` naming its rows."""
        assert self.path is not None
        rows = read_rows(self.path)
        if not rows:
            raise DataError(f"The study list {self.path} holds no rows.")
        present = {k for row in rows for k in row}
        study_column = _column(present, STUDY_COLUMNS)
        question_column = _column(present, QUESTION_COLUMNS)
        if study_column is None or question_column is None:
            raise DataError(
                f"The study list {self.path} needs a study column ({', '.join(STUDY_COLUMNS)}) "
                f"and a question column ({', '.join(QUESTION_COLUMNS)}); it has: "
                f"{', '.join(sorted(present))}."
            )
        columns = {
            "study": study_column,
            "question": question_column,
            "id": _column(present, ID_COLUMNS),
            "gold": _column(present, GOLD_COLUMNS),
            "kind": _column(present, KIND_COLUMNS),
            "choices": _column(present, CHOICE_COLUMNS),
        }
        samples = [self._sample(row, number, columns) for number, row in enumerate(rows, start=1)]
        self._check(samples)
        return samples

    def _sample(
        self, row: Mapping[str, Any], number: int, columns: Mapping[str, str | None]
    ) -> Sample:
        def value(key: str) -> Any:
            column = columns[key]
            return row.get(column) if column else None

        assert self.path is not None
        study = str(value("study") or "").strip()
        question = str(value("question") or "").strip()
        if not study or not question:
            raise DataError(f"row {number} of {self.path} has no study or no question.")
        if not study.startswith(REMOTE):
            local = Path(study).expanduser()
            local = local if local.is_absolute() else self.path.parent / local
            if not local.exists():
                raise DataError(
                    f"row {number} of {self.path}: the study {local} does not exist (paths "
                    "are read relative to the list's folder)."
                )
            study = str(local)
        candidates = _choices(value("choices"))
        metadata = {"modality": row["modality"]} if row.get("modality") else {}
        return Sample(
            id=str(value("id") or f"row-{number}"),
            benchmark=self.name,
            split=self.default_split,
            question=question,
            answers=_gold(value("gold")),
            kind=_kind(value("kind"), question, candidates, number),
            images=(study,),
            candidates=candidates,
            metadata=metadata,
        )

    def _check(self, samples: Sequence[Sample]) -> None:
        counts = Counter(s.id for s in samples)
        repeated = sorted(i for i, n in counts.items() if n > 1)
        if repeated:
            raise DataError(
                f"{self.path}: ids occur more than once ({', '.join(repeated[:5])}); give "
                "every row its own id, or drop the id column to number the rows."
            )
        without = [s.id for s in samples if not s.answers]
        if without and len(without) < len(samples):
            raise DataError(
                f"{self.path}: {len(without)} of {len(samples)} rows have no gold answer "
                f"({', '.join(without[:5])}). Give every row its gold answer to score the "
                "list, or none to collect the model's answers without scores."
            )

    def scorable(self, samples: Sequence[Sample]) -> bool:
        """A list without gold answers is collected, not scored (``read`` refuses lists with
        gold on only some rows)."""
        return all(s.answers for s in samples)

    def quality(
        self, samples: Sequence[Sample], *, train: Sequence[Sample] = ()
    ) -> list[QualityIssue]:
        """The shared checks, less "missing image" (``read`` already refused missing local
        studies, and a ``dicomweb://`` address is no file) and "empty answer" (a list
        without gold is collected, not scored)."""
        return [
            issue
            for issue in super().quality(samples, train=train)
            if issue.kind not in ("missing-image", "empty-answer")
        ]
