"""Predictions files written by other tools, matched to a benchmark's questions.

Published outputs (LLaVA-Med answer files, MedEvalKit result JSON lines, lmms-eval samples,
a spreadsheet of answers) can be re-scored side by side with medlens runs. A file is JSONL
(or a JSON list) or CSV/TSV; each row needs a question id, or the question text (plus the
image name when a question repeats across images), and the raw model answer. Column names
are detected from common spellings, and flags override them. Rows that match no question, or
a question ambiguously, are reported with their row number and the reason, never dropped
silently.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medlens.bench.benchmark import Sample
from medlens.bench.quality import question_key
from medlens.errors import DataError

ID_COLUMNS = ("question_id", "qid", "sample_id", "id", "index")
QUESTION_COLUMNS = ("question", "prompt_question", "query")
IMAGE_COLUMNS = ("image_name", "image", "img_name", "image_path", "figure_path")
ANSWER_COLUMNS = (
    "prediction",
    "response",
    "model_answer",
    "pred",
    "output",
    "text",
    "generated",
    "answer",
)


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a JSONL / JSON-list / CSV / TSV file (by extension; JSONL otherwise)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise DataError(f"predictions file {path} does not exist") from exc
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        reader = csv.DictReader(text.splitlines(), delimiter="\t" if suffix == ".tsv" else ",")
        return [dict(row) for row in reader]
    stripped = text.lstrip()
    if stripped.startswith("["):
        rows: list[Any] = json.loads(stripped)
    else:
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"{path} line {number} is not JSON ({exc.msg}); write one JSON object per "
                    "line, or use a .csv extension for CSV"
                ) from exc
    if not all(isinstance(r, dict) for r in rows):
        raise DataError(f"{path} must hold one object per row (found a non-object row)")
    return [dict(r) for r in rows]


@dataclass(frozen=True)
class Columns:
    """Which column holds what (None: absent)."""

    id: str | None
    question: str | None
    image: str | None
    answer: str


def detect_columns(
    rows: Sequence[Mapping[str, Any]],
    *,
    id_column: str | None = None,
    question_column: str | None = None,
    image_column: str | None = None,
    answer_column: str | None = None,
) -> Columns:
    """Columns from flags, else from the first common spelling present in the rows."""
    present = {k for row in rows for k in row}

    def pick(given: str | None, options: Sequence[str], what: str) -> str | None:
        if given:
            if given not in present:
                raise DataError(
                    f"column '{given}' for the {what} is not in the file; columns: "
                    f"{', '.join(sorted(present))}"
                )
            return given
        return next((c for c in options if c in present), None)

    answer = pick(answer_column, ANSWER_COLUMNS, "model answer")
    if answer is None:
        raise DataError(
            f"no model-answer column found (looked for {', '.join(ANSWER_COLUMNS)}); columns: "
            f"{', '.join(sorted(present))}. Name it with --answer-column."
        )
    ident = pick(id_column, ID_COLUMNS, "question id")
    question = pick(question_column, QUESTION_COLUMNS, "question text")
    if ident is None and question is None:
        raise DataError(
            "rows carry neither a question id nor the question text; name one with "
            "--id-column or --question-column"
        )
    return Columns(ident, question, pick(image_column, IMAGE_COLUMNS, "image"), answer)


@dataclass
class MatchReport:
    """Matched (sample, raw answer) pairs and everything that did not match."""

    matched: list[tuple[Sample, str]] = field(default_factory=list)
    unmatched: list[tuple[int, str]] = field(default_factory=list)
    """(row number from 1, reason)."""
    duplicates: list[int] = field(default_factory=list)
    """Rows naming a question an earlier row already answered (the first row is kept)."""
    missing: list[str] = field(default_factory=list)
    """Ids of benchmark questions no row answered."""

    def summary(self) -> str:
        lines = [
            (
                f"matched {len(self.matched)} rows; {len(self.unmatched)} unmatched; "
                f"{len(self.duplicates)} duplicates; {len(self.missing)} questions without an answer"
            )
        ]
        for number, reason in self.unmatched[:10]:
            lines.append(f"  row {number}: {reason}")
        if len(self.unmatched) > 10:
            lines.append(f"  ... and {len(self.unmatched) - 10} more unmatched rows")
        return "\n".join(lines)


def _same_image(sample: Sample, value: Any) -> bool:
    """Whether a row's image (a name or a relative path, e.g. SLAKE's "xmlab1/source.jpg")
    names the sample's image: equal to its image id, or a whole-component suffix of a path."""
    wanted = str(value).replace("\\", "/").strip().lstrip("./")
    if not wanted:
        return False
    names = [str(sample.metadata.get("image_id", ""))]
    names += [str(i).replace("\\", "/") for i in sample.images if isinstance(i, str)]
    return any(n == wanted or n.endswith("/" + wanted) for n in names)


def match_predictions(
    rows: Sequence[Mapping[str, Any]], samples: Sequence[Sample], columns: Columns
) -> MatchReport:
    """Match each row to one sample by id, else by (question, image), else by question."""
    by_id: dict[str, Sample] = {}
    for s in samples:
        by_id[s.id] = s
        if s.metadata.get("qid") is not None:
            by_id.setdefault(str(s.metadata["qid"]), s)
    by_question: dict[str, list[Sample]] = {}
    for s in samples:
        by_question.setdefault(question_key(s.question), []).append(s)
    report = MatchReport()
    seen: set[str] = set()
    for number, row in enumerate(rows, start=1):
        raw = row.get(columns.answer)
        if raw is None:
            report.unmatched.append((number, f"no value in answer column '{columns.answer}'"))
            continue
        sample, reason = None, ""
        if columns.id and row.get(columns.id) not in (None, ""):
            sample = by_id.get(str(row[columns.id]))
            reason = f"id {row[columns.id]!r} is not a question of this benchmark split"
        if sample is None and columns.question and row.get(columns.question):
            found = by_question.get(question_key(str(row[columns.question])), [])
            if columns.image and row.get(columns.image) and len(found) > 1:
                found = [s for s in found if _same_image(s, row[columns.image])]
            if len(found) == 1:
                sample = found[0]
            elif found:
                reason = (
                    f"question matches {len(found)} questions (different images); add an image "
                    "column or an id column"
                )
            else:
                reason = "question text matches no question of this benchmark split"
        if sample is None:
            report.unmatched.append((number, reason or "no id or question in this row"))
            continue
        if sample.id in seen:
            report.duplicates.append(number)
            continue
        seen.add(sample.id)
        report.matched.append((sample, str(raw)))
    report.missing = [s.id for s in samples if s.id not in seen]
    return report
