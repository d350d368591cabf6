"""``medevalkit`` / ``medevalkit-fixed``: the rules behind the Lingshu / MedEvalKit tables,
faithfully and with their bugs fixed.

>>> from medlens.bench.protocols import get_protocol
>>> from medlens.bench.samples import Sample
>>> closed = Sample("1", "vqa-rad", "test", "Is it normal?", ("no",), "closed", ())
>>> get_protocol("medevalkit").score(closed, "The answer is: abnormal").outcome  # "no" in "abnormal"
'correct'
>>> get_protocol("medevalkit-fixed").score(closed, "The answer is: abnormal").outcome
'wrong'
"""

from __future__ import annotations

import difflib
import re
from typing import Any, ClassVar

from medlens.bench.metrics.choice import correct_letters
from medlens.bench.metrics.text import read_yes_no
from medlens.bench.protocols.base import (
    Outcome,
    SampleScore,
    ScoringProtocol,
    unparseable,
)
from medlens.bench.samples import Sample

MEDEVALKIT_SOURCE = (
    "github.com/alibaba-damo-academy/MedEvalKit, read at the fork chenz53/MedEvalKit @ "
    "016723d424f44b36fbf6242d9679885e02129550: utils/utils.py (parse_response, "
    "judge_judgement, judge_close_end_vqa, judge_open_end_vqa, calculate_f1, "
    "judge_multi_choice), utils/VQA_RAD/VQA_RAD.py and utils/SLAKE/SLAKE.py (cal_metrics)"
)
_ANSWER_PATTERNS = (
    "**answer**:",
    "**answer**",
    "*answer*:",
    "**answer:**",
    "answer is",
    "answer:",
    "答案:",
    "final answer",
    "final answer is",
)


def _last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` with nested braces (mathruler's extractor)."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 1, start + len("\\boxed{")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j]
    return None


def _between(text: str, tag: str) -> str:
    found = re.findall(rf"<{tag}>(.*?)</{tag}>", text, flags=re.DOTALL)
    return " ".join(found).strip() if found else text


def medevalkit_parse_response(response: str) -> str:
    """MedEvalKit ``parse_response``: lower case, boxed or <answer> content, then the text
    after the last answer marker, each marker applied in turn. Nothing is stripped."""
    response = response.lower()
    if "boxed" in response:
        response = _last_boxed(response) or "None"
    elif "<answer>" in response:
        response = _between(response, "answer")
    for pattern in _ANSWER_PATTERNS:
        if pattern in response:
            response = response.split(pattern)[-1]
    return response


class MedEvalKitProtocol(ScoringProtocol):
    """MedEvalKit's rules, faithfully, with ``fixed = True`` for the corrected variant.

    Bugs in the source (all fixed in ``medevalkit-fixed``):

    1. yes/no is a substring test, ``('yes' in r) ^ ('no' in r)`` then ``answer in r``:
       "normal", "nodule", "not sure", "unknown" read as "no".
    2. text after an "answer:" marker keeps its leading space, so "Answer: CT" never equals
       "ct" in the open exact match (VQA-RAD strips before the split, not after).
    3. VQA-RAD and PathVQA call a question closed when its *answer* is yes/no, so the 21
       closed VQA-RAD questions with other answers ("left", "t2") are scored as open.
    4. SLAKE checks ``answer in ["yes", "no"]`` before lower-casing, so SLAKE's capitalised
       "Yes"/"No" fall to the exact-match branch (the whole answer must be exactly "yes").
    5. multiple choice falls back to the most similar option (difflib) for unreadable text.
    6. ``calculate_f1`` returns a bare 0 (not a triple) for empty answers and crashes.
    """

    name = "medevalkit"
    version = "016723d"
    fixed: ClassVar[bool] = False
    open_metric = "open_exact"
    description = (
        "MedEvalKit (Lingshu's tables): answer = last \\boxed{} or <answer> content, lower-cased, "
        "text after the last answer marker. Closed yes/no: substring test "
        "('yes' in r) xor ('no' in r) and answer in r. Other closed: exact match after removing "
        "'.' and newlines. Open: exact match (headline), set-token F1/recall, BLEU-1. VQA-RAD/"
        "PathVQA closed = answer is yes/no; SLAKE closed = answer_type. Multiple choice: letter, "
        "option text, else the most similar option by difflib. Overall = (closed right + open "
        f"exact) / all. Source: {MEDEVALKIT_SOURCE}."
    )

    def bucket(self, sample: Sample) -> str:
        if self.fixed or sample.kind not in ("closed", "open") or sample.benchmark == "slake":
            return sample.kind
        return "closed" if sample.answer.strip().lower() in ("yes", "no") else "open"

    def extract(self, prediction: str) -> str:
        boxed = _last_boxed(prediction)
        if boxed is not None:
            return boxed
        return _between(prediction, "answer") if "<answer>" in prediction else prediction

    def score_vqa(self, sample: Sample, response: str) -> SampleScore:
        answer = sample.answer
        if sample.benchmark != "slake":
            answer, response = answer.lower().strip(), response.lower().strip()
        if self.bucket(sample) == "closed":
            yes_no = (answer.lower() if self.fixed else answer) in ("yes", "no")
            ok = self._judgement(answer, response) if yes_no else self._close_end(answer, response)
            return SampleScore(
                "correct" if ok else "wrong", float(ok), {"exact": float(ok)}, response
            )
        return self._open(answer, response)

    def _clean(self, response: str) -> str:
        text = medevalkit_parse_response(response)
        text = text.strip() if self.fixed else text
        return text.replace("\n", "").replace(".", "")

    def _judgement(self, answer: str, response: str) -> bool:
        answer, text = answer.lower(), self._clean(response)
        if self.fixed:
            return read_yes_no(text) == answer
        return (("yes" in text) ^ ("no" in text)) and answer in text

    def _close_end(self, answer: str, response: str) -> bool:
        return self._clean(response) == answer.lower()

    def _open(self, answer: str, response: str) -> SampleScore:
        answer = answer.lower()
        text = medevalkit_parse_response(response)
        if self.fixed:
            text = text.strip()
        exact = float(text == answer)
        pred_tokens, ref_tokens = set(text.split()), set(answer.split())
        if not pred_tokens or not ref_tokens:
            if not self.fixed:
                # Source: calculate_f1 returns 0, and unpacking it raises; no score exists.
                return unparseable({"exact": exact})
            precision = recall = f1 = 0.0
        else:
            common = len(pred_tokens & ref_tokens)
            precision, recall = common / len(pred_tokens), common / len(ref_tokens)
            f1 = 2 * precision * recall / (precision + recall) if common else 0.0

        bleu1 = _medevalkit_bleu1(text, answer)
        outcome: Outcome = "correct" if exact else ("partial" if f1 > 0 else "wrong")
        metrics = {
            "exact": exact,
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "bleu1": bleu1,
        }
        return SampleScore(outcome, exact, metrics, text)

    def score_choice(self, sample: Sample, response: str) -> SampleScore:
        choices = [c.lower() for c in sample.candidates]
        alphas = [chr(ord("a") + i) for i in range(len(choices))]
        answer = next(iter(sorted(correct_letters(sample.answers, sample.candidates))), "").lower()
        text = response.lower()
        if text.split("\n\n")[0] in alphas:
            text = text.split("\n\n")[0]
        elif text.split("\n\n")[-1].split(".")[0] in alphas:
            text = text.split("\n\n")[-1].split(".")[0]
        text = medevalkit_parse_response(text).strip().lower().replace("\n", "")
        split = text.split(".")[0].split(":")[-1]
        if self.fixed:
            split = split.strip()
        chosen: str | None
        if split in alphas:
            chosen = split
        elif split in choices:
            chosen = alphas[choices.index(split)]
        elif split == answer:
            chosen = answer
        elif self.fixed:
            return unparseable()
        else:
            ratios = [difflib.SequenceMatcher(None, c, text).ratio() for c in choices]
            best, index = 0.0, 0
            for i, ratio in enumerate(ratios):
                if ratio > best:
                    best, index = ratio, i
            chosen = alphas[index]
        ok = chosen == answer
        return SampleScore(
            "correct" if ok else "wrong", float(ok), {"exact": float(ok)}, chosen.upper()
        )


def _medevalkit_bleu1(prediction: str, answer: str) -> float:
    """MedEvalKit ``bleu(pred, target, 1)``: nltk sentence BLEU-1 on ``.replace('.', ' .')``
    tokens split on single spaces, no smoothing."""
    import warnings

    from medlens.errors import require

    bleu_score: Any = require("nltk.translate.bleu_score", "bench", "BLEU")

    def tok(text: str) -> list[str]:
        return text.lower().replace(".", " .").split(" ")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nltk warns on short answers without 2-grams
        return float(bleu_score.sentence_bleu([tok(answer)], tok(prediction), weights=(1.0,)))


class MedEvalKitFixedProtocol(MedEvalKitProtocol):
    name = "medevalkit-fixed"
    version = "016723d-fixed.1"
    fixed = True
    description = (
        "MedEvalKit with its bugs fixed: yes/no as whole words, answer text stripped after "
        "the answer marker, closed/open by the dataset's answer type, SLAKE answers "
        "lower-cased before the yes/no test, unreadable multiple choice kept 'unparseable' "
        f"(no difflib fallback), empty answers scored 0. Source: {MEDEVALKIT_SOURCE}."
    )
