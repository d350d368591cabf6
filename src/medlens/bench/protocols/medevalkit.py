"""``medevalkit`` / ``medevalkit-fixed``: MedEvalKit's rule path (its scoring without the LLM
judge), faithfully and with its bugs fixed. Lingshu's published open-question figures used
the judge: ``medevalkit-judge``.

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
from collections.abc import Sequence
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
    "alibaba-damo-academy/MedEvalKit@9b12e3b34232a8779cc1275417bf4f72f03d28e0 utils/utils.py "
    "(parse_response, judge_judgement, judge_close_end_vqa, judge_open_end_vqa, "
    "calculate_f1, judge_multi_choice), utils/VQA_RAD/VQA_RAD.py and utils/SLAKE/SLAKE.py "
    "(cal_metrics)"
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
    6. ``judge_open_end_vqa`` unpacks ``calculate_f1``'s ``(f1, precision, recall)`` as
       ``precision, recall, f1``: its "f1" is recall, "precision" F1, "recall" precision.
       Reproduced under those printed names here; ``medevalkit-fixed`` names them right.
    7. an open answer that is empty (or only dots) makes ``rouge`` raise "Hypothesis is
       empty." (an empty reference, "Reference is empty."), and one without words makes
       ``calculate_f1`` return a bare 0 that cannot be unpacked: either aborts the whole file,
       and the source prints no figure at all. medlens scores such an answer 0, marks it
       ``source_crash`` and says in the summary that the source would have produced none.
    """

    name = "medevalkit"
    harness_prompt = "medevalkit"
    version = "9b12e3b"
    fixed: ClassVar[bool] = False
    open_metric = "open_exact"
    description = (
        "MedEvalKit's rule path (use_llm_judge off; Lingshu's open-question figures used the "
        "judge: medevalkit-judge): answer = last \\boxed{} or <answer> content, lower-cased, "
        "text after the last answer marker. Closed yes/no: substring test "
        "('yes' in r) xor ('no' in r) and answer in r. Other closed: exact match after removing "
        "'.' and newlines. Open: exact match (headline), set-token F1/recall, BLEU-1, under the "
        "names MedEvalKit prints (its 'f1' is recall, 'precision' F1, 'recall' precision: "
        "judge_open_end_vqa unpacks calculate_f1's triple in the wrong order). An open answer "
        "that would make cal_metrics raise (rouge 'Hypothesis is empty.', calculate_f1's bare "
        "0) scores 0 and is counted: the source prints no figure for such a file. VQA-RAD/"
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
        if not self.fixed and source_crash(text, answer):
            return unparseable({"exact": exact, "source_crash": 1.0})
        pred_tokens, ref_tokens = set(text.split()), set(answer.split())
        if not pred_tokens or not ref_tokens:
            precision = recall = f1 = 0.0
        else:
            common = len(pred_tokens & ref_tokens)
            precision, recall = common / len(pred_tokens), common / len(ref_tokens)
            f1 = 2 * precision * recall / (precision + recall) if common else 0.0

        bleu1 = _medevalkit_bleu1(text, answer)
        outcome: Outcome = "correct" if exact else ("partial" if f1 > 0 else "wrong")
        if not self.fixed:  # the names MedEvalKit prints them under
            precision, recall, f1 = f1, precision, recall
        metrics = {
            "exact": exact,
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "bleu1": bleu1,
        }
        return SampleScore(outcome, exact, metrics, text)

    def source_notes(
        self, samples: Sequence[Sample], scores: Sequence[SampleScore]
    ) -> tuple[str, ...]:
        """A note when the source would have crashed on the file."""
        crashed = sum(s.metrics.get("source_crash", 0.0) == 1.0 for s in scores)
        if not crashed:
            return ()
        note = (
            f"{crashed} of {len(scores)} answers make MedEvalKit's cal_metrics raise (rouge "
            "'Hypothesis is empty.' or 'Reference is empty.', or calculate_f1's bare 0): the "
            "source would have produced no figure for this file; medlens scores them 0"
        )
        return (note,)

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


def source_crash(prediction: str, answer: str) -> bool:
    """Whether MedEvalKit's ``judge_open_end_vqa`` raises on this (parsed) answer: ``rouge``
    splits each text on "." and refuses one with no non-empty piece ("Hypothesis is empty." /
    "Reference is empty."), and ``calculate_f1`` returns a bare 0 for a text without words,
    which its caller cannot unpack."""

    def no_pieces(text: str) -> bool:
        return not [" ".join(p.split()) for p in text.lower().split(".") if len(p) > 0]

    return (
        no_pieces(prediction)
        or no_pieces(answer)
        or not prediction.lower().split()
        or not answer.lower().split()
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
    version = "9b12e3b-fixed.1"
    fixed = True
    description = (
        "MedEvalKit with its bugs fixed: yes/no as whole words, answer text stripped after "
        "the answer marker, closed/open by the dataset's answer type, SLAKE answers "
        "lower-cased before the yes/no test, unreadable multiple choice kept 'unparseable' "
        "(no difflib fallback), empty answers scored 0 (no crash), open F1/precision/recall "
        f"under their right names. Source: {MEDEVALKIT_SOURCE}."
    )
