"""The answer normaliser of the task parsers (matching a model's text to the candidates).

Scoring is not done with it: each scoring protocol states and versions its own normalisation
(the ``medlens`` protocol's is ``medlens.bench.metrics.text.normalize``), because changing a
scorer's rule changes published numbers and needs a new protocol version.

It follows the SQuAD v1.1 evaluation script (Rajpurkar et al. 2016: lowercase, drop
punctuation and the articles a/an/the, collapse whitespace) and the VQA evaluation (Antol et
al. 2015: number words become digits, a decimal point between digits is kept), with two
choices of our own, stated so that scorers can rely on them:

- punctuation becomes a space (``"x-ray"`` → ``"x ray"``, ``"yes,no"`` → ``"yes no"``), except
  ``.`` and ``,`` between digits (``"2.5"`` stays, ``"1,000"`` → ``"1000"``) and apostrophes,
  which are dropped (``"don't"`` → ``"dont"``);
- number words up to ninety-nine become digits (``"twenty-one"`` → ``"21"``); ``"no"`` and
  ``"none"`` are words, never ``0`` (SLAKE's answer "None" means "no finding").

>>> normalize_answer("  The Left Lung. ")
'left lung'
>>> normalize_answer("Two nodules, 2.5 cm")
'2 nodules 2.5 cm'
"""

from __future__ import annotations

import re
import unicodedata

_UNITS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
_TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_ARTICLES = frozenset({"a", "an", "the"})
_DIGIT_SEPARATOR = re.compile(r"(?<=\d)[.,](?=\d)")
_APOSTROPHES = re.compile(r"['\u2019`]")


def _strip_punctuation(text: str) -> str:
    # Mark separators inside numbers so that the punctuation pass keeps them.
    text = _DIGIT_SEPARATOR.sub(lambda m: "\x00" if m.group() == "." else "", text)
    text = _APOSTROPHES.sub("", text)
    out = []
    for ch in text:
        if ch == "\x00":
            out.append(".")
        elif unicodedata.category(ch)[0] in "PS":  # punctuation and symbols
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def _numbers_to_digits(words: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word in _TENS:
            value = _TENS[word]
            nxt = words[i + 1] if i + 1 < len(words) else ""
            if 0 < _UNITS.get(nxt, 0) < 10:
                value += _UNITS[nxt]
                i += 1
            out.append(str(value))
        elif word in _UNITS:
            out.append(str(_UNITS[word]))
        else:
            out.append(word)
        i += 1
    return out


def normalize_answer(text: str) -> str:
    """Lowercase, strip punctuation and articles, number words to digits, one space between
    words. The same function normalises predictions and references."""
    text = unicodedata.normalize("NFKC", text).lower()
    words = [w for w in _strip_punctuation(text).split() if w not in _ARTICLES]
    return " ".join(_numbers_to_digits(words))
