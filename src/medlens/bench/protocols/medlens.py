"""``medlens``: the strict rules (normalised exact match, yes/no as whole words, token F1).

>>> from medlens.bench.protocols import get_protocol
>>> from medlens.bench.samples import Sample
>>> closed = Sample("1", "vqa-rad", "test", "Is there a fracture?", ("yes",), "closed", ())
>>> get_protocol("medlens").score(closed, "Yes, a fracture of the left femur.").outcome
'correct'
>>> get_protocol("medlens").score(closed, "It is not normal.").outcome  # neither yes nor no
'unparseable'
>>> opened = Sample("2", "vqa-rad", "test", "Which organ?", ("left lung",), "open", ())
>>> round(get_protocol("medlens").score(opened, "the lung").score, 2)  # token F1
0.67
"""

from __future__ import annotations

from medlens.bench.metrics.text import best_token_scores, read_yes_no
from medlens.bench.protocols.base import (
    Outcome,
    SampleScore,
    ScoringProtocol,
    unparseable,
)
from medlens.bench.samples import Sample
from medlens.normalize import normalize_answer


class MedlensProtocol(ScoringProtocol):
    name = "medlens"
    version = "2"
    scores_parsed = True
    description = (
        "Strict medlens rules (medlens.normalize, medlens.bench.metrics.text). Normalisation: "
        "NFKC, lower case, "
        "punctuation to spaces except decimal points and thousands separators, articles "
        "dropped, number words zero..twenty to digits, 'none' kept. Closed yes/no: yes or no "
        "must appear as a whole word, exactly one of them ('normal', 'nodule', 'not sure' are "
        "not 'no'); other closed answers: normalised exact match. Open: SQuAD token F1 "
        "(headline), recall and exact match, best over accepted answers. Multiple choice: an "
        "unambiguous letter or option text. Anything unreadable is 'unparseable' (never a "
        "random or most-similar option). Grounding: the boxes of the raw answer, a hit at IoU >= "
        "0.5. Overall = mean of per-question scores."
    )

    def score_vqa(self, sample: Sample, text: str) -> SampleScore:
        refs = {normalize_answer(a) for a in sample.answers}
        if sample.kind == "closed":
            if refs and refs <= {"yes", "no"}:
                value = read_yes_no(text)
                if value is None:
                    return unparseable()
            else:
                value = normalize_answer(text)
                if not value:
                    return unparseable()
            ok = value in refs
            return SampleScore("correct" if ok else "wrong", float(ok), {"exact": float(ok)}, value)
        if not normalize_answer(text):
            return unparseable()
        ts = best_token_scores(text, sample.answers)
        outcome: Outcome = "correct" if ts.exact else ("partial" if ts.f1 > 0 else "wrong")
        metrics = {"exact": ts.exact, "recall": ts.recall, "precision": ts.precision, "f1": ts.f1}
        return SampleScore(outcome, ts.f1, metrics, normalize_answer(text))
