"""medlens's one answer normaliser: how two answers are found to say the same thing.

Everything in medlens that compares answer text uses ``normalize_answer``: the ``medlens``
scoring protocol (``medlens.bench.metrics.text``, ``medlens.bench.metrics.choice``), the task
parsers that read a model's text as one of the candidates (``medlens.tasks.parse``), candidate
matching and self-consistency voting (``medlens.trust.confidence``) and the labels of
calibration fits (``medlens.bench.calibration``). So the parser, the scorer and the voting
agree on when two answers are the same, and the rule stated here is the one behind every
number medlens prints.

The rule is the ``medlens`` protocol's and is versioned with it: changing it changes
published scores, so it needs a new ``medlens`` protocol version (with the earlier one kept in
``medlens.bench.protocols.versions.EARLIER``), and, as it also changes what the closed and
multiple-choice parsers read, new versions of those tasks.

1. Unicode NFKC, lower case, surrounding whitespace removed.
2. Thousands separators inside numbers are dropped ("1,000" → "1000"); a decimal point
   between digits is kept ("2.5"); every other punctuation character becomes a space
   ("x-ray" → "x ray", "left." → "left", "don't" → "don t", "1,2" → "1 2").
3. The articles "a", "an", "the" are dropped (SQuAD v1.1, Rajpurkar et al. 2016).
4. Number words zero..twenty become digits ("two" → "2"; VQA, Antol et al. 2015, maps
   zero..ten). "none" and "no" stay words: SLAKE uses the literal answer "None" for "no
   finding", unlike LLaVA-Med's table which maps it to "0".
5. "xray" is spelt "x ray" so that "X-Ray", "x-ray" and "xray" agree.

The protocols that reproduce another harness (``llava-med``, ``medevalkit``, ``lmms-eval``)
and ``medgemma-card`` (a model card's stated rule) keep their upstream normalisations in their
own modules: those are reproductions of other people's scorers, to be compared with the
numbers those harnesses publish, not medlens normalisers.

>>> normalize_answer("  The X-Ray, shows TWO nodules. ")
'x ray shows 2 nodules'
>>> normalize_answer("2.5 cm"), normalize_answer("1,000"), normalize_answer("None")
('2.5 cm', '1000', 'none')
"""

from __future__ import annotations

import re
import unicodedata

_ARTICLES = frozenset({"a", "an", "the"})
_NUMBER_WORDS = {
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
_ALIASES = {"xray": "x ray"}
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_PUNCT = re.compile(r"(?!(?<=\d)\.(?=\d))[^\w\s]|_")


def normalize_answer(text: str) -> str:
    """``text`` under rules 1-5 of the module docstring; the same function normalises
    predictions, references and candidates."""
    text = unicodedata.normalize("NFKC", text).lower().strip()
    text = _THOUSANDS.sub("", text)
    text = _PUNCT.sub(" ", text)
    words = []
    for word in text.split():
        if word in _ARTICLES:
            continue
        word = _NUMBER_WORDS.get(word, word)
        words.append(_ALIASES.get(word, word))
    return " ".join(words)
