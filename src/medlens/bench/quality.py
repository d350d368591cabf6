"""Data-quality checks run at load time and printed in reports.

Public benchmarks carry real traps (see ``shared/data/*/PROVENANCE.md``): VQA-RAD's common
split shares every test image with train and holds verbatim and templated copies of test
questions in train; SLAKE's train has repeated rows and an empty answer. These checks count
them so that a report says what the numbers stand on:

- ``missing-image``: an image path that does not exist;
- ``empty-answer``: a sample without a non-empty reference answer;
- ``duplicate-question``: the same (image, normalised question) more than once in a split;
- ``conflicting-answers``: such duplicates that disagree on the answer;
- ``closed-answer-not-offered``: a closed question asked for yes or no (it lists no options
  its answer names) whose answer is neither, so no answer to it can be right (SLAKE test:
  "Which is bigger in this image, kidney or spleen?" answered "Liver");
- ``image-leakage``: evaluation images that also appear in ``train``;
- ``question-leakage``: evaluation (image, question) pairs found verbatim in ``train``.

Questions are compared after lower-casing and collapsing whitespace and punctuation, so that
"Is there a fracture?" and "is there a fracture" count as one.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from medlens.bench.samples import QualityIssue, Sample
from medlens.normalize import normalize_answer

_NON_WORD = re.compile(r"[^\w]+")
MAX_EXAMPLES = 5


def question_key(question: str) -> str:
    """Lower case, punctuation and whitespace collapsed."""
    return _NON_WORD.sub(" ", question.lower()).strip()


def image_key(sample: Sample) -> str:
    """Identity of a sample's image(s): the dataset's image id, else the paths, else a hash."""
    image_id = sample.metadata.get("image_id")
    if image_id:
        return str(image_id)
    parts = []
    for image in sample.images:
        if isinstance(image, bytes):
            parts.append(hashlib.sha1(image).hexdigest())
        else:
            parts.append(str(image))
    return "|".join(parts)


def _issue(kind: str, ids: Sequence[str], detail: str) -> QualityIssue:
    return QualityIssue(kind, len(ids), detail, tuple(ids[:MAX_EXAMPLES]))


def check_samples(samples: Sequence[Sample], *, train: Sequence[Sample] = ()) -> list[QualityIssue]:
    """Every check of the module docstring whose count is not zero."""
    issues: list[QualityIssue] = []
    missing = [
        s.id for s in samples if any(isinstance(i, str) and not Path(i).exists() for i in s.images)
    ]
    if missing:
        issues.append(_issue("missing-image", missing, "image file not found"))
    empty = [s.id for s in samples if not any(a.strip() for a in s.answers)]
    if empty:
        issues.append(_issue("empty-answer", empty, "no non-empty reference answer"))

    unanswerable = [
        s.id
        for s in samples
        if s.kind == "closed"
        and not s.candidates
        and not {normalize_answer(a) for a in s.answers} & {"yes", "no"}
    ]
    if unanswerable:
        issues.append(
            _issue(
                "closed-answer-not-offered",
                unanswerable,
                "closed questions asked for yes or no whose answer is neither and names none "
                "of the options the question lists; every answer to them scores wrong",
            )
        )

    groups: dict[tuple[str, str], list[Sample]] = defaultdict(list)
    for s in samples:
        groups[(image_key(s), question_key(s.question))].append(s)
    dups = [g for g in groups.values() if len(g) > 1]
    if dups:
        ids = [s.id for g in dups for s in g[1:]]
        issues.append(
            _issue(
                "duplicate-question",
                ids,
                f"{len(dups)} (image, question) keys occur more than once; {len(ids)} extra rows",
            )
        )
        conflicts = [g[0].id for g in dups if len({question_key(s.answer) for s in g}) > 1]
        if conflicts:
            issues.append(
                _issue(
                    "conflicting-answers", conflicts, "duplicated questions with different answers"
                )
            )
    if train:
        issues.extend(leakage(samples, train))
    return issues


def leakage(samples: Sequence[Sample], train: Iterable[Sample]) -> list[QualityIssue]:
    """Image and verbatim-question overlap of ``samples`` with ``train``."""
    train_images: set[str] = set()
    train_pairs: set[tuple[str, str]] = set()
    for t in train:
        key = image_key(t)
        train_images.add(key)
        train_pairs.add((key, question_key(t.question)))
    issues = []
    shared = sorted({image_key(s) for s in samples} & train_images)
    if shared:
        n_images = len({image_key(s) for s in samples})
        issues.append(
            _issue(
                "image-leakage",
                shared,
                f"{len(shared)} of {n_images} evaluation images also appear in train",
            )
        )
    verbatim = [s.id for s in samples if (image_key(s), question_key(s.question)) in train_pairs]
    if verbatim:
        issues.append(
            _issue(
                "question-leakage",
                verbatim,
                f"{len(verbatim)} evaluation (image, question) pairs are verbatim in train",
            )
        )
    return issues


def format_issues(issues: Sequence[QualityIssue]) -> str:
    """One line per finding, for the CLI and logs."""
    if not issues:
        return "data quality: no issues found"
    lines = ["data quality:"]
    for issue in issues:
        example = f" (e.g. {', '.join(issue.examples)})" if issue.examples else ""
        lines.append(f"  {issue.kind}: {issue.count} — {issue.detail}{example}")
    return "\n".join(lines)
