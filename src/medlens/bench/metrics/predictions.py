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

from medlens.bench.quality import question_key
from medlens.bench.samples import Sample
from medlens.errors import DataError

ID_COLUMNS = ("question_id", "qid", "sample_id", "id", "index")
QUESTION_COLUMNS = ("question", "prompt_question", "query", "prompt")
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
    conflicts: list[tuple[int, str]] = field(default_factory=list)
    """Rows whose id names a question that their own question text or image contradicts,
    and that (image, question) matching could not place either: never scored."""
    missing: list[str] = field(default_factory=list)
    """Ids of benchmark questions no row answered."""
    id_space: str | None = None
    """The id space the rows' ids were read in (``IdSpaces``), None without an id column."""
    rematched: int = 0
    """Rows whose id contradicted their question, placed by (image, question) instead."""

    def summary(self) -> str:
        space = f" (ids read as {self.id_space})" if self.id_space else ""
        counts = (
            f"matched {len(self.matched)}{space}, unmatched {len(self.unmatched)}, duplicate "
            f"{len(self.duplicates)}, conflicting {len(self.conflicts)}; "
            f"{len(self.missing)} questions without an answer"
        )
        lines = [counts]
        if self.rematched:
            lines.append(
                f"  {self.rematched} rows matched by (image, question) because their id named "
                "another question"
            )
        for number, reason in self.unmatched[:10]:
            lines.append(f"  row {number}: {reason}")
        if len(self.unmatched) > 10:
            lines.append(f"  ... and {len(self.unmatched) - 10} more unmatched rows")
        return "\n".join(lines)


IdSpaces = Mapping[str, Mapping[str, Sample]]
"""Id space name → id → sample. Most benchmarks have one; VQA-RAD has two in circulation
(the MEVF split's ``qid`` and the OSF public JSON's, which collide on different questions)."""


def _same_image(sample: Sample, value: Any) -> bool:
    """Whether a row's image (a name or a relative path, e.g. SLAKE's "xmlab1/source.jpg")
    names the sample's image: equal to its image id, or a whole-component suffix of a path."""
    wanted = str(value).replace("\\", "/").strip().lstrip("./")
    if not wanted:
        return False
    names = [str(sample.metadata.get("image_id", ""))]
    names += [str(i).replace("\\", "/") for i in sample.images if isinstance(i, str)]
    return any(n == wanted or n.endswith("/" + wanted) for n in names)


def _question_of(row: Mapping[str, Any], columns: Columns) -> str:
    """The row's question, normalised, without an instruction a harness appended
    (LLaVA-Med's answer files store the whole prompt)."""
    from medlens.tasks.presets import strip_instruction

    text = str(row.get(columns.question) or "") if columns.question else ""
    return question_key(strip_instruction(text))


def _evidence(row: Mapping[str, Any], columns: Columns, sample: Sample) -> bool | None:
    """Whether the row's own question text and image agree with ``sample`` (None when the
    row carries neither, so nothing can be checked)."""
    checks = []
    question = _question_of(row, columns)
    if question:
        checks.append(question == question_key(sample.question))
    if columns.image and row.get(columns.image):
        checks.append(_same_image(sample, row[columns.image]))
    return all(checks) if checks else None


def choose_id_space(
    rows: Sequence[Mapping[str, Any]], columns: Columns, spaces: IdSpaces
) -> tuple[str, dict[str, tuple[int, int, int]]]:
    """The id space the rows' ids agree with best, and per space (resolved, agreeing,
    contradicted) counts. Rows with a question or image vote by agreeing or contradicting;
    when none can, the space resolving clearly more ids wins, and two spaces resolving about
    as many cannot be told apart: ``DataError``."""
    counts: dict[str, tuple[int, int, int]] = {}
    for name, table in spaces.items():
        resolved = agree = contra = 0
        for row in rows:
            sample = table.get(str(row.get(columns.id))) if columns.id else None
            if sample is None:
                continue
            resolved += 1
            evidence = _evidence(row, columns, sample)
            agree += evidence is True
            contra += evidence is False
        counts[name] = (resolved, agree, contra)
    names = list(spaces)
    if not any(a or c for _, a, c in counts.values()):
        # Nothing to check against: the space resolving clearly more of the ids is the one.
        ranked = sorted(names, key=lambda n: -counts[n][0])
        top = counts[ranked[0]][0]
        close = [n for n in ranked[1:] if counts[n][0] and counts[n][0] >= 0.9 * top]
        if close:
            detail = ", ".join(f"{n}: {counts[n][0]} ids" for n in [ranked[0], *close])
            raise DataError(
                f"the rows carry ids only, and they resolve about as well in more than one id "
                f"space ({detail}), where the same id names different questions. Add the "
                "question (or image) column so that rows can be checked, or name the id space "
                f"with --id-space ({', '.join(names)})."
            )
        return ranked[0], counts
    best = max(names, key=lambda n: (counts[n][1] - counts[n][2], -names.index(n)))
    return best, counts


def match_predictions(
    rows: Sequence[Mapping[str, Any]],
    samples: Sequence[Sample],
    columns: Columns,
    *,
    id_spaces: IdSpaces | None = None,
    id_space: str | None = None,
) -> MatchReport:
    """Match each row to one sample: by id in the id space the rows agree with, checked
    against the row's question text and image when it has them; a row whose id names another
    question is matched by (image, question) instead, or reported as a conflict. Rows without
    an (usable) id match by (question, image), else by question."""
    spaces: IdSpaces = id_spaces or {"id": {s.id: s for s in samples}}
    if id_space is not None and id_space not in spaces:
        raise DataError(f"unknown id space '{id_space}'; this benchmark has: {', '.join(spaces)}")
    report = MatchReport()
    table: Mapping[str, Sample] = {}
    if columns.id:
        report.id_space = id_space or choose_id_space(rows, columns, spaces)[0]
        table = spaces[report.id_space]
    by_question: dict[str, list[Sample]] = {}
    for s in samples:
        by_question.setdefault(question_key(s.question), []).append(s)
    seen: set[str] = set()
    for number, row in enumerate(rows, start=1):
        raw = row.get(columns.answer)
        if raw is None:
            report.unmatched.append((number, f"no value in answer column '{columns.answer}'"))
            continue
        sample, reason, contradicted = None, "", False
        if columns.id and row.get(columns.id) not in (None, ""):
            sample = table.get(str(row[columns.id]))
            reason = f"id {row[columns.id]!r} is not a question of this benchmark split"
            if sample is not None and _evidence(row, columns, sample) is False:
                said = {c: row.get(c) for c in (columns.question, columns.image) if c}
                reason = (
                    f"id {row[columns.id]!r} ({report.id_space}) is the question "
                    f"{sample.question!r} on {sample.metadata.get('image_id', 'its image')}, "
                    f"but the row says {said}"
                )
                sample, contradicted = None, True
        if sample is None and columns.question and row.get(columns.question):
            found = by_question.get(_question_of(row, columns), [])
            if columns.image and row.get(columns.image) and len(found) > 1:
                found = [s for s in found if _same_image(s, row[columns.image])]
            if len(found) == 1:
                sample = found[0]
                report.rematched += contradicted
            elif not contradicted:
                reason = (
                    f"question matches {len(found)} questions (different images); add an "
                    "image column or an id column"
                    if found
                    else "question text matches no question of this benchmark split"
                )
        if sample is None:
            target = report.conflicts if contradicted else report.unmatched
            target.append((number, reason or "no id or question in this row"))
            continue
        if sample.id in seen:
            report.duplicates.append(number)
            continue
        seen.add(sample.id)
        report.matched.append((sample, str(raw)))
    # In the benchmark's order, so that figures (bootstrap intervals included) do not depend
    # on the order of the file's rows.
    position = {s.id: i for i, s in enumerate(samples)}
    report.matched.sort(key=lambda pair: position[pair[0].id])
    report.missing = [s.id for s in samples if s.id not in seen]
    return report
