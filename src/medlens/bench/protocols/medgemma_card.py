"""``medgemma-card``: closed accuracy and token F1, the figures Google's MedGemma card prints.

>>> from medlens.bench.protocols import get_protocol
>>> from medlens.bench.samples import Sample
>>> opened = Sample("1", "slake", "test", "Which organ?", ("Left Lung",), "open", ())
>>> score = get_protocol("medgemma-card").score(opened, "the left lung")
>>> score.outcome, round(score.score, 2)
('partial', 0.8)
"""

from __future__ import annotations

import string
from collections import Counter

from medlens.bench.protocols.base import Outcome, SampleScore, ScoringProtocol
from medlens.bench.samples import Sample

_CARD_PUNCT = str.maketrans({c: " " for c in string.punctuation})


def card_tokens(text: str) -> list[str]:
    return text.lower().translate(_CARD_PUNCT).split()


class MedGemmaCardProtocol(ScoringProtocol):
    name = "medgemma-card"
    harness_prompt = "medgemma"
    version = "1"
    open_metric = "open_token_f1"
    description = (
        "As the MedGemma model card (huggingface.co/google/medgemma-4b-it) reports SLAKE and "
        "VQA-RAD: 'tokenized F1' over all questions (headline 'overall') and closed accuracy. "
        "The card publishes no scorer, so the rule is read from its wording: lower case, "
        "ASCII punctuation to spaces, whitespace tokens, SQuAD multiset token F1; closed "
        "accuracy = exact token match. Multiple choice, reports and boxes use medlens rules."
    )

    def score_vqa(self, sample: Sample, prediction: str) -> SampleScore:
        pred = card_tokens(prediction)
        best_f1, exact = 0.0, 0.0
        for answer in sample.answers:
            ref = card_tokens(answer)
            exact = max(exact, float(pred == ref))
            common = sum((Counter(pred) & Counter(ref)).values())
            if common:
                p, r = common / len(pred), common / len(ref)
                best_f1 = max(best_f1, 2 * p * r / (p + r))
        best_f1 = max(best_f1, exact)
        value = exact if sample.kind == "closed" else best_f1
        outcome: Outcome = "correct" if exact else ("partial" if best_f1 > 0 else "wrong")
        return SampleScore(outcome, value, {"exact": exact, "f1": best_f1}, " ".join(pred))

    def overall_value(self, score: SampleScore) -> float:
        return score.metrics.get("f1", score.score)
