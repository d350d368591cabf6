"""The ``medlens`` scoring protocol's answer normalisation (versioned with the protocol; the
task parsers match candidates with ``medlens.tasks.normalize``) and open-answer scores.

The rule, stated once so that every number medlens prints can be reproduced by hand:

1. Unicode NFKC, lower case, surrounding whitespace removed.
2. Thousands separators inside numbers are dropped ("1,000" → "1000"); a decimal point
   between digits is kept ("2.5"); every other punctuation character becomes a space
   ("x-ray" → "x ray", "left." → "left").
3. The articles "a", "an", "the" are dropped.
4. Number words zero..twenty become digits ("two" → "2"). "none" stays "none": SLAKE uses
   the literal answer "None" for "no finding", unlike LLaVA-Med's table which maps it to "0".
5. "xray" is spelt "x ray" so that "X-Ray", "x-ray" and "xray" agree.

Yes/no are read as whole words only: "normal", "nodule", "not sure", "know" contain the
letters "no" but are not the answer "no" (the substring rule of LLaVA-Med and MedEvalKit
counts them). Token scores follow SQuAD (Rajpurkar et al., 2016): tokens are compared as
multisets, F1 is the harmonic mean of token precision and recall.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

ARTICLES = frozenset({"a", "an", "the"})
NUMBER_WORDS = {
    word: str(i)
    for i, word in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
            "twenty",
        ]
    )
}
ALIASES = {"xray": "x ray"}
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_PUNCT = re.compile(r"(?!(?<=\d)\.(?=\d))[^\w\s]|_")
_YES_NO = re.compile(r"\b(yes|no)\b")


def normalize(text: str) -> str:
    """medlens normalisation (rules 1-5 of the module docstring).

    >>> normalize("  The X-Ray, shows TWO nodules. ")
    'x ray shows 2 nodules'
    >>> normalize("2.5 cm"), normalize("1,000"), normalize("None")
    ('2.5 cm', '1000', 'none')
    """
    text = unicodedata.normalize("NFKC", text).lower().strip()
    text = _THOUSANDS.sub("", text)
    text = _PUNCT.sub(" ", text)
    words = []
    for word in text.split():
        if word in ARTICLES:
            continue
        word = NUMBER_WORDS.get(word, word)
        words.append(ALIASES.get(word, word))
    return " ".join(words)


def tokens(text: str) -> list[str]:
    """Normalised whitespace tokens."""
    return normalize(text).split()


def read_yes_no(text: str) -> str | None:
    """ "yes" or "no" when exactly one of them appears as a whole word, else None.

    >>> read_yes_no("No, the heart is normal."), read_yes_no("normal"), read_yes_no("not sure")
    ('no', None, None)
    >>> read_yes_no("Yes or no?") is None
    True
    """
    found = set(_YES_NO.findall(normalize(text)))
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
