"""``llava-med`` / ``llava-med-ad758b6`` / ``llava-med-fixed``: LLaVA-Med's substring rule for
closed questions and token recall for open ones, as upstream has it now, as its first release
had it (which many papers copied), and with its bugs fixed.

>>> from medlens.bench.protocols import get_protocol
>>> from medlens.bench.samples import Sample
>>> closed = Sample("1", "vqa-rad", "test", "Is there a mass?", ("yes",), "closed", ())
>>> first = get_protocol("llava-med-ad758b6").score(closed, "No, it is normal.")
>>> first.outcome, first.counted  # the first release leaves this wrong answer out
('wrong', False)
>>> get_protocol("llava-med").score(closed, "No, it is normal.").counted  # PR #35 counts it
True
>>> get_protocol("llava-med-fixed").score(closed, "Normal.").outcome  # whole words only
'wrong'
"""

from __future__ import annotations

import re
from collections import Counter
from typing import ClassVar

from medlens.bench.metrics.text import read_yes_no
from medlens.bench.protocols.base import Outcome, SampleScore, ScoringProtocol
from medlens.bench.samples import Sample

_LLAVA_FILES = (
    "llava/eval/run_eval.py:evaluate, llava/eval/eval_metrics/evaluate_metrics.py:"
    "calculate_f1score, llava/eval/eval_metrics/glossary.py:normalize_word"
)
LLAVA_MED_SOURCE = f"microsoft/LLaVA-Med@b9a98a736d2ef05bcf5ff345be6403fb3a664eaf {_LLAVA_FILES}"
"""PR #35 (2023-12-11), the last version: run_eval.py left the repository at 821e1c7 (v1.5,
2024-05-21), which ships no VQA scorer."""
LLAVA_MED_FIRST_SOURCE = (
    f"microsoft/LLaVA-Med@ad758b687d4e79628dbfdb149dc545641ed29014 {_LLAVA_FILES}"
)
"""The first release (2023-08-24)."""
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
    """LLaVA-Med's scorer as upstream has it now (PR #35), faithfully; ``fixed = True`` for
    the corrected variant, ``counts_wrong_closed = False`` for the first release.

    Bugs in the source (fixed in ``llava-med-fixed``):

    1. the first release: ``if 'yes' in pred or 'no' in pred: if gt in pred: hit 1`` has no
       else, so a wrong answer that contains "yes" or "no" is *left out of the denominator*
       and closed accuracy is inflated; PR #35 added ``else: hit 0``.
    2. the test is on substrings: "no" matches "normal", "nodule", "not sure", "unknown"; and
       a closed answer that is not yes/no ("left") is wrong whatever the model says.
    3. ``normalize_word`` maps "none" to "0", so SLAKE's answer "None" must be answered "0".
    """

    name = "llava-med"
    harness_prompt = "llava-med"
    version = "b9a98a7"
    fixed: ClassVar[bool] = False
    counts_wrong_closed: ClassVar[bool] = True
    open_metric = "open_recall"
    description = (
        "LLaVA-Med run_eval.py evaluate as upstream has it since PR #35 (2023-12-11): both "
        "texts lower-cased and passed through normalize_word (VQA-v2 punctuation rules, number "
        "words to digits, 'none' to '0', articles dropped). Closed (answer_type CLOSED): when "
        "'yes' or 'no' occurs as a substring, correct if the reference is a substring, else "
        "wrong; without either, wrong (so a closed answer such as 'left' is never right). "
        "Open: token recall of calculate_f1score (headline), with F1 and precision. Results "
        "from run_eval.py checked out after 2023-12-11 use this rule; the LLaVA-Med paper's "
        "tables (NeurIPS 2023) predate it (llava-med-ad758b6). Multiple choice, reports and "
        f"boxes are not defined there and use medlens rules. Source: {LLAVA_MED_SOURCE}."
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
                counted = 1.0 if self.counts_wrong_closed else 0.0
                return SampleScore("wrong", 0.0, {"exact": 0.0, "counted": counted}, pred)
            return SampleScore("wrong", 0.0, {"exact": 0.0}, pred)
        f1, precision, recall = llava_f1(pred, gt)
        outcome: Outcome = "correct" if recall == 1.0 else ("partial" if recall > 0 else "wrong")
        return SampleScore(
            outcome, recall, {"recall": recall, "precision": precision, "f1": f1}, pred
        )


class LlavaMedFirstReleaseProtocol(LlavaMedProtocol):
    name = "llava-med-ad758b6"
    version = "ad758b6"
    counts_wrong_closed = False
    description = (
        "LLaVA-Med run_eval.py evaluate as first released (2023-08-24), before PR #35: as "
        "llava-med, except that a wrong closed answer containing 'yes' or 'no' is left out of "
        "the denominator (the if has no else), which inflates closed accuracy. The LLaVA-Med "
        "paper's VQA-RAD/SLAKE/PathVQA tables and papers that ran run_eval.py from a checkout "
        "made before 2023-12-11 used this rule (which papers did is rarely stated). "
        f"Source: {LLAVA_MED_FIRST_SOURCE}."
    )


class LlavaMedFixedProtocol(LlavaMedProtocol):
    name = "llava-med-fixed"
    version = "b9a98a7-fixed.1"
    fixed = True
    description = (
        "LLaVA-Med's rules with the closed-question bugs fixed: yes/no read as whole words "
        "(exactly one of them), every closed question counted, wrong answers score 0; other "
        "closed answers by exact match after normalize_word. Open recall unchanged. "
        f"Source: {LLAVA_MED_SOURCE}."
    )
