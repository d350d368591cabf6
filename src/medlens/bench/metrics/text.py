"""Open-answer scores and yes/no reading of the ``medlens`` scoring protocol, on answers
normalised by ``medlens.normalize.normalize_answer`` (the protocol's rule, stated and versioned
there).

Yes/no are read as whole words only: "normal", "nodule", "not sure", "know" contain the
letters "no" but are not the answer "no" (the substring rule of LLaVA-Med and MedEvalKit
counts them). Token scores follow SQuAD (Rajpurkar et al., 2016): tokens are compared as
multisets, F1 is the harmonic mean of token precision and recall.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from medlens.normalize import normalize_answer

_YES_NO = re.compile(r"\b(yes|no)\b")


def tokens(text: str) -> list[str]:
    """Normalised whitespace tokens."""
    return normalize_answer(text).split()


def read_yes_no(text: str) -> str | None:
    """ "yes" or "no" when exactly one of them appears as a whole word, else None.

    >>> read_yes_no("No, the heart is normal."), read_yes_no("normal"), read_yes_no("not sure")
    ('no', None, None)
    >>> read_yes_no("Yes or no?") is None
    True
    """
    found = set(_YES_NO.findall(normalize_answer(text)))
    return found.pop() if len(found) == 1 else None


@dataclass(frozen=True)
class TokenScores:
    precision: float
    recall: float
    f1: float
    exact: float


def token_scores(prediction: str, reference: str) -> TokenScores:
    """SQuAD-style multiset token precision/recall/F1 and normalised exact match.

    >>> token_scores("left lower lobe", "left lobe")
    TokenScores(precision=0.6666666666666666, recall=1.0, f1=0.8, exact=0.0)
    """
    pred, ref = tokens(prediction), tokens(reference)
    exact = float(pred == ref)
    if not pred or not ref:
        return TokenScores(0.0, 0.0, exact if pred == ref else 0.0, exact)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return TokenScores(0.0, 0.0, 0.0, exact)
    precision, recall = common / len(pred), common / len(ref)
    return TokenScores(precision, recall, 2 * precision * recall / (precision + recall), exact)


def best_token_scores(prediction: str, references: Iterable[str]) -> TokenScores:
    """Scores against the reference that gives the highest F1 (several accepted answers)."""
    best = TokenScores(0.0, 0.0, 0.0, 0.0)
    for reference in references:
        scores = token_scores(prediction, reference)
        if (scores.f1, scores.recall, scores.exact) > (best.f1, best.recall, best.exact):
            best = scores
    return best
