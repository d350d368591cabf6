"""How sure an answer is, measured from the model itself.

Four methods, each selectable by name and each reported as ``Confidence.method``:

- ``candidates`` (closed and multiple-choice questions): the probability of every candidate
  answer, normalised over the candidates. From ``Generation.candidate_logprobs`` (the
  transformers backend scores each candidate's log-likelihood in one forward pass) or, for
  servers that only return ``top_logprobs``, from the first answer token: each candidate gets
  the probability of the alternatives that begin it (Kadavath et al. 2022, "Language Models
  (Mostly) Know What They Know", use the same option-token probabilities).
- ``sequence``: the length-normalised likelihood of the generated answer,
  ``exp(mean token logprob)`` (Malinin & Gales, ICLR 2021).
- ``consistency``: the share of k sampled answers that agree with the answer after
  normalisation (self-consistency; Wang et al., ICLR 2023; Xiong et al., ICLR 2024).
- ``verbalized``: the number the model wrote ("Confidence: 80%", "I am 0.8 sure"; Lin et al.,
  TMLR 2022, "Teaching Models to Express Their Uncertainty in Words"). Only numbers are read;
  words such as "fairly sure" are not mapped to numbers.

``auto`` takes the first that is available in that order (``AUTO_ORDER``). Answers that were
not parsed, or that the model declined, get no confidence: they are classes of their own.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

from medlens.normalize import normalize_answer
from medlens.registry import Registry
from medlens.types import Answer, Confidence, Generation, Request

ConfidenceMethod = Callable[[Answer, Generation, Request], "Confidence | None"]
CONFIDENCE_METHODS: Registry[ConfidenceMethod] = Registry("confidence method")
AUTO_ORDER = ("candidates", "consistency", "verbalized", "sequence")


def softmax(logprobs: Mapping[str, float]) -> dict[str, float]:
    """Normalise log-likelihoods over their keys (stable: the maximum is subtracted first)."""
    top = max(logprobs.values())
    weights = {k: math.exp(v - top) for k, v in logprobs.items()}
    total = sum(weights.values())
    return {k: w / total for k, w in weights.items()}


def match_candidate(text: str, candidates: Sequence[str], kind: str = "closed") -> str | None:
    """The candidate ``text`` states: equal after normalisation (``medlens.normalize``, the
    scorer's rule), the text opening with it ("Yes, there is..."), or for multiple choice its
    option letter ("B", "(B)", "B. ...")."""
    norm = normalize_answer(text)
    by_norm = {normalize_answer(c): c for c in candidates}
    if norm in by_norm:
        return by_norm[norm]
    if kind == "choice":
        letter = re.match(r"\s*\(?([A-Za-z])[).:\s]", text + " ")
        if letter:
            index = ord(letter.group(1).upper()) - ord("A")
            if 0 <= index < len(candidates):
                return candidates[index]
    # Longest first, so that "left lung" wins over "left" when both are candidates.
    for cand_norm in sorted(by_norm, key=len, reverse=True):
        if cand_norm and (norm + " ").startswith(cand_norm + " "):
            return by_norm[cand_norm]
    return None


def answer_candidate(answer: Answer, request: Request) -> str | None:
    """The request candidate the parsed answer chose, if any."""
    if not request.candidates:
        return None
    if answer.choice:
        index = ord(answer.choice.strip().upper()[:1] or "?") - ord("A")
        if 0 <= index < len(request.candidates):
            return request.candidates[index]
    return match_candidate(answer.text or "", request.candidates, request.kind)


# --------------------------------------------------------------------------------------------
# Methods
# --------------------------------------------------------------------------------------------


def _first_token_logprobs(generation: Generation, candidates: Sequence[str]) -> dict[str, float]:
    """Candidate log-probabilities from the first answer token's ``top_logprobs``.

    The position is the first generated token that begins a candidate ("The answer is yes"
    reads "yes"). A token that begins several candidates cannot tell them apart: no result.
    A candidate absent from the top list gets the smallest listed probability, an upper bound
    on its true probability, so that the answer is not made to look surer than it is.
    """
    lowered = {c: c.strip().lower() for c in candidates}

    def starts(token: str) -> list[str]:
        t = token.strip().lower()
        if not t or not any(ch.isalnum() for ch in t):
            return []
        return [c for c, low in lowered.items() if low.startswith(t)]

    for position in generation.tokens:
        chosen = starts(position.token)
        if not chosen:
            continue
        if len(chosen) > 1 or not position.top:
            return {}
        alternatives = dict(position.top)
        alternatives.setdefault(position.token, position.logprob)
        mass: dict[str, float] = {}
        for token, logprob in alternatives.items():
            matched = starts(token)
            if len(matched) == 1:
                mass[matched[0]] = mass.get(matched[0], 0.0) + math.exp(logprob)
        floor = min(math.exp(lp) for lp in alternatives.values())
        return {c: math.log(mass.get(c, floor)) for c in candidates}
    return {}


@CONFIDENCE_METHODS.register("candidates")
def candidate_confidence(
    answer: Answer, generation: Generation, request: Request
) -> Confidence | None:
    """The normalised probability of the chosen candidate (see the module docstring)."""
    if not request.candidates:
        return None
    scored = generation.candidate_logprobs
    if scored and all(c in scored for c in request.candidates):
        logprobs = {c: float(scored[c]) for c in request.candidates}
    else:
        logprobs = _first_token_logprobs(generation, request.candidates)
    chosen = answer_candidate(answer, request)
    if not logprobs or chosen is None:
        return None
    probs = softmax(logprobs)
    return Confidence(value=probs[chosen], method="candidates", candidate_probs=probs)


@CONFIDENCE_METHODS.register("sequence")
def sequence_confidence(
    answer: Answer, generation: Generation, request: Request
) -> Confidence | None:
    """``exp`` of the mean token log-probability of the generated text."""
    if not generation.tokens:
        return None
    mean = sum(t.logprob for t in generation.tokens) / len(generation.tokens)
    return Confidence(value=min(1.0, math.exp(mean)), method="sequence")


@CONFIDENCE_METHODS.register("consistency")
def consistency_confidence(
    answer: Answer, generation: Generation, request: Request
) -> Confidence | None:
    """The share of sampled answers equal to the answer after normalisation (candidates are
    matched as in ``match_candidate``). ``Generation.samples`` holds all k answers, the first
    being ``text``; fewer than two means nothing to compare."""
    samples = generation.samples
    if len(samples) < 2:
        return None
    if request.candidates:
        votes = [match_candidate(s, request.candidates, request.kind) for s in samples]
        reference = answer_candidate(answer, request)
    else:
        votes = [normalize_answer(s) or None for s in samples]
        reference = normalize_answer(answer.text or "") or None
    if reference is None:
        return None
    counts = Counter(v for v in votes if v is not None)
    probs = {k: n / len(samples) for k, n in counts.most_common()}
    return Confidence(value=probs.get(reference, 0.0), method="consistency", candidate_probs=probs)


_NUMBER = r"(\d{1,3}(?:\.\d+)?|0?\.\d+)\s*(%|percent)?"
_VERBAL_PATTERNS = (
    re.compile(
        r"confiden(?:ce|t)(?:\s+(?:level|score))?\s*(?:is|of|:|=|-)?\s*" + _NUMBER, re.IGNORECASE
    ),
    re.compile(_NUMBER + r"\s*(?:sure|confident|certain|confidence)\b", re.IGNORECASE),
    re.compile(r"probability(?:\s+of)?\s*(?:is|:|=)?\s*" + _NUMBER, re.IGNORECASE),
)


def parse_verbalized(text: str) -> float | None:
    """The confidence a text states, in [0, 1]: "Confidence: 80%", "confidence 0.8",
    "I am 90 percent sure", "probability: .7"; a bare number above 1 is read as percent."""
    for pattern in _VERBAL_PATTERNS:
        match = pattern.search(text)
        if not match:
            continue
        value = float(match.group(1))
        if match.group(2) or value > 1.0:
            value /= 100.0
        if 0.0 <= value <= 1.0:
            return value
    return None


@CONFIDENCE_METHODS.register("verbalized")
def verbalized_confidence(
    answer: Answer, generation: Generation, request: Request
) -> Confidence | None:
    """The confidence the model put in words (see ``parse_verbalized``)."""
    value = parse_verbalized(generation.text)
    return None if value is None else Confidence(value=value, method="verbalized")


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def estimate_confidence(
    answer: Answer, generation: Generation, request: Request, *, method: str = "auto"
) -> Confidence | None:
    """The answer's confidence by ``method`` (or the first available, for "auto"); None when
    the method has nothing to work from, or the answer is unparsed or declined."""
    if not answer.parsed or answer.abstained:
        return None
    if method.lower() != "auto":
        return CONFIDENCE_METHODS.get(method)(answer, generation, request)
    for name in AUTO_ORDER:
        confidence = CONFIDENCE_METHODS.get(name)(answer, generation, request)
        if confidence is not None:
            return confidence
    return None


def all_confidences(
    answer: Answer, generation: Generation, request: Request
) -> dict[str, Confidence]:
    """Every method that has something to say about this answer, by name (for reports)."""
    found = {
        name: estimate_confidence(answer, generation, request, method=name)
        for name in CONFIDENCE_METHODS.names()
    }
    return {name: c for name, c in found.items() if c is not None}
