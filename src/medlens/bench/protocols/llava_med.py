"""``llava-med`` / ``llava-med-fixed``: LLaVA-Med's substring rule for closed questions and
token recall for open ones, as many papers copied them, and a fixed variant.

>>> from medlens.bench.protocols import get_protocol
>>> from medlens.bench.samples import Sample
>>> closed = Sample("1", "vqa-rad", "test", "Is there a mass?", ("yes",), "closed", ())
>>> score = get_protocol("llava-med").score(closed, "No, it is normal.")
>>> score.outcome, score.counted  # a wrong answer containing "no" leaves the denominator
('wrong', False)
>>> get_protocol("llava-med-fixed").score(closed, "No, it is normal.").counted
True
"""

from __future__ import annotations

import re
from collections import Counter
from typing import ClassVar

from medlens.bench.metrics.text import read_yes_no
from medlens.bench.protocols.base import Outcome, SampleScore, ScoringProtocol
from medlens.bench.samples import Sample

LLAVA_MED_SOURCE = (
    "github.com/microsoft/LLaVA-Med @ ad758b687d4e79628dbfdb149dc545641ed29014: "
    "llava/eval/run_eval.py (evaluate), llava/eval/eval_metrics/evaluate_metrics.py "
    "(calculate_f1score), llava/eval/eval_metrics/glossary.py (normalize_word)"
)
_LLAVA_MANUAL = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
_LLAVA_PUNCT = [
    ";",
    r"/",
    "[",
    "]",
    '"',
    "{",
    "}",
    "(",
    ")",
    "=",
    "+",
    "\\",
    "_",
    "-",
    ">",
    "<",
    "@",
    "`",
    ",",
    "?",
    "!",
]
_LLAVA_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")
_LLAVA_COMMA = re.compile(r"(\d)(\,)(\d)")


def llava_normalize_word(token: str) -> str:
    """LLaVA-Med ``normalize_word`` as written (the VQA-v2 answer processor, trimmed).

    Quirks kept: "none" becomes "0" (SLAKE's "None" answers become "0"); the period regex's
    ``(?!<=\\d)`` is a typo for a look-behind, so only periods before a digit survive; and the
    contraction table is applied (no effect on medical answers)."""
    out = token
    for p in _LLAVA_PUNCT:
        if (p + " " in token or " " + p in token) or _LLAVA_COMMA.search(token) is not None:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    token = _LLAVA_PERIOD.sub("", out, 32)  # the source passes re.UNICODE (32) as ``count``
    words = [_LLAVA_MANUAL.get(w, w) for w in token.lower().split()]
    return " ".join(w for w in words if w not in ("a", "an", "the")).replace(",", "")


def llava_f1(candidate: str, reference: str) -> tuple[float, float, float]:
    """LLaVA-Med ``calculate_f1score``: (f1, precision, recall) over word counts, where a
    shared word contributes the *candidate's* count to the true positives."""
    cand, ref = Counter(candidate.lower().split()), Counter(reference.lower().split())
    if not cand or not ref:
        return 0.0, 0.0, 0.0
    tp = sum(c for w, c in cand.items() if w in ref)
    fp = sum(c for w, c in cand.items() if w not in ref)
    fn = sum(c for w, c in ref.items() if w not in cand)
    if tp == 0:
        return 0.0, 0.0, 0.0
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    return 2 * precision * recall / (precision + recall), precision, recall


class LlavaMedProtocol(ScoringProtocol):
    """LLaVA-Med's scorer, faithfully, with ``fixed = True`` for the corrected variant.

    Bugs in the source (fixed in ``llava-med-fixed``):

    1. closed: ``if 'yes' in pred or 'no' in pred: if gt in pred: hit 1`` has no else, so a
       wrong answer that contains "yes" or "no" is *left out of the denominator*; only wrong
       answers without those letters count. Closed accuracy is inflated accordingly.
    2. the test is on substrings: "no" matches "normal", "nodule", "not sure", "unknown".
    3. ``normalize_word`` maps "none" to "0", so SLAKE's answer "None" must be answered "0".
    """

    name = "llava-med"
    version = "ad758b6"
    fixed: ClassVar[bool] = False
    open_metric = "open_recall"
    description = (
        "LLaVA-Med run_eval.py: both texts lower-cased and passed through normalize_word "
        "(VQA-v2 punctuation rules, number words to digits, 'none' to '0', articles dropped). "
        "Closed (answer_type CLOSED): if 'yes' or 'no' occurs as a substring, correct when the "
        "reference is a substring, and a wrong answer is NOT counted (source bug); otherwise "
        "wrong. Open: token recall of calculate_f1score (headline), with F1 and precision. "
        "Multiple choice, reports and boxes are not defined there and use medlens rules. "
        f"Source: {LLAVA_MED_SOURCE}."
    )

    def score_vqa(self, sample: Sample, prediction: str) -> SampleScore:
        pred = llava_normalize_word(prediction.lower())
        gt = llava_normalize_word(sample.answer.lower())
        if sample.kind == "closed":
            if self.fixed:
                read = read_yes_no(pred) if gt in ("yes", "no") else pred
                ok = read == gt
                return SampleScore(
                    "correct" if ok else "wrong", float(ok), {"exact": float(ok)}, read
                )
            if "yes" in pred or "no" in pred:
                if gt in pred:
                    return SampleScore("correct", 1.0, {"exact": 1.0}, pred)
                return SampleScore("wrong", 0.0, {"exact": 0.0, "counted": 0.0}, pred)
            return SampleScore("wrong", 0.0, {"exact": 0.0}, pred)
        f1, precision, recall = llava_f1(pred, gt)
        outcome: Outcome = "correct" if recall == 1.0 else ("partial" if recall > 0 else "wrong")
        return SampleScore(
            outcome, recall, {"recall": recall, "precision": precision, "f1": f1}, pred
        )


class LlavaMedFixedProtocol(LlavaMedProtocol):
    name = "llava-med-fixed"
    version = "ad758b6-fixed.1"
    fixed = True
    description = (
        "LLaVA-Med's rules with the closed-question bugs fixed: yes/no read as whole words "
        "(exactly one of them), every closed question counted, wrong answers score 0; other "
        "closed answers by exact match after normalize_word. Open recall unchanged. "
        f"Source: {LLAVA_MED_SOURCE}."
    )
