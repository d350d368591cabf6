"""Multiple-choice answer extraction: which option letter did the model give?

medlens reads a letter only when the text names one option unambiguously: a bare letter
("B", "(B)", "B.", "B) Effusion"), a marked letter ("Answer: B", "the answer is (B)",
"\\boxed{B}"), or the exact text of one option. Anything else is *unparseable*; it is never
mapped to the most similar option (MedEvalKit's difflib fallback) nor to a random one
(MMMU's ``parse_multi_choice_response``), because both turn a non-answer into chance-level
accuracy that looks like knowledge.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from medlens.normalize import normalize_answer

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_MARKED = re.compile(
    r"(?:answer|option|choice)\s*(?:is|:)?\s*[:\-]?\s*\(?\**([A-Z])\**\)?(?![A-Za-z])",
    re.IGNORECASE,
)
_LEADING = re.compile(r"^\s*[\(\[]?([A-Z])(?:[\)\]\.:,]|\s*$|\s+[-–]?\s*)")
_BRACKETED = re.compile(r"^\s*(?:[\(\[]([a-zA-Z])[\)\]]|([a-zA-Z])\s*[.)]?\s*$)")
_STANDALONE = re.compile(r"(?<![\w'])([A-Z])(?![\w'])")


def option_letter(index: int) -> str:
    return LETTERS[index]


def extract_choice(text: str, candidates: Sequence[str]) -> str | None:
    """The option letter ``text`` names, or None when it names none or several.

    >>> opts = ["Pleural effusion", "Pneumothorax", "Normal"]
    >>> extract_choice("B", opts), extract_choice("(A) Pleural effusion", opts)
    ('B', 'A')
    >>> extract_choice("The answer is C.", opts), extract_choice("pneumothorax", opts)
    ('C', 'B')
    >>> extract_choice("I think it could be A or B", opts) is None
    True
    """
    valid = LETTERS[: len(candidates)]
    stripped = text.strip()
    boxed = _BOXED.findall(stripped)
    if boxed:
        stripped = boxed[-1].strip()
    marked = {m.upper() for m in _MARKED.findall(stripped)} & set(valid)
    if len(marked) == 1:
        return str(marked.pop())
    bracketed = _BRACKETED.match(stripped)
    if bracketed:
        letter = (bracketed.group(1) or bracketed.group(2)).upper()
        return letter if letter in valid else None
    leading = _LEADING.match(stripped)
    if leading and leading.group(1) in valid:
        others = set(_STANDALONE.findall(stripped)) & set(valid) - {leading.group(1)}
        return None if others else leading.group(1)
    norm = normalize_answer(stripped)
    exact = [LETTERS[i] for i, c in enumerate(candidates) if normalize_answer(c) == norm]
    if len(exact) == 1:
        return exact[0]
    mentioned = [
        LETTERS[i]
        for i, c in enumerate(candidates)
        if normalize_answer(c) and re.search(rf"\b{re.escape(normalize_answer(c))}\b", norm)
    ]
    return mentioned[0] if len(mentioned) == 1 else None


def correct_letters(answers: Sequence[str], candidates: Sequence[str]) -> set[str]:
    """Letters of the correct options: ``answers`` may hold option texts or letters."""
    letters = set()
    for answer in answers:
        clean = answer.strip()
        if len(clean) == 1 and clean.upper() in LETTERS[: len(candidates)]:
            letters.add(clean.upper())
            continue
        for i, candidate in enumerate(candidates):
            if normalize_answer(candidate) == normalize_answer(clean):
                letters.add(LETTERS[i])
    return letters
