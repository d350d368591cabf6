"""Prompt templates and answer parsers, one ``Task`` per answer kind.

>>> from medlens.tasks import get_task, guess_kind
>>> kind = guess_kind("Is there a pneumothorax?")
>>> kind
'closed'
>>> task = get_task(kind)            # build(views, question, request_id=...) -> Request
>>> task.prompt_id                   # recorded in runs and calibration fingerprints
'closed@3'

``parse(generation, request) -> Answer`` never raises on model text: what cannot be read is
kept raw with ``parsed=False`` and the reason in ``parse_error``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from medlens.tasks import grounding, report, vqa
from medlens.tasks.base import TASKS, Task, get_task
from medlens.types import AnswerKind

__all__ = ["TASKS", "Task", "get_task", "guess_kind"]

_ = (grounding, report, vqa)  # imported to register their tasks

_YES_NO_START = re.compile(
    r"^\s*(is|are|does|do|did|was|were|can|could|has|have|had|will|would|should|shall|may|"
    r"might|must)\b",
    re.IGNORECASE,
)
_GROUNDING = re.compile(
    r"\b(bounding box(es)?|box(es)?|bbox(es)?|coordinates?|locali[sz]e|locate|detect|draw|"
    r"outline|mark)\b",
    re.IGNORECASE,
)
_REPORT = re.compile(r"\b(report|findings|impression)\b", re.IGNORECASE)
_ALTERNATIVE = re.compile(r"\bor\b", re.IGNORECASE)


def guess_kind(question: str, candidates: Sequence[str] = ()) -> AnswerKind:
    """The answer kind a question asks for, when the caller does not say.

    Candidates make it multiple choice (closed when they are exactly yes/no); words asking
    for boxes make it grounding ("where is the liver?" alone is an open question, as VQA-RAD
    and SLAKE label it); report words make it a report; a question opening with an auxiliary
    verb ("Is", "Are", "Does", ...) without an "or" alternative is closed; anything else is
    open ("Is this a CT or an MRI?" is open: its answer is a word, not yes/no).
    """
    if candidates:
        return "closed" if {c.strip().lower() for c in candidates} == {"yes", "no"} else "choice"
    if _GROUNDING.search(question):
        return "grounding"
    if _REPORT.search(question) and not _YES_NO_START.match(question):
        return "report"
    if _YES_NO_START.match(question) and not _ALTERNATIVE.search(question):
        return "closed"
    return "open"
