"""``lmms-eval``: lmms-eval's SLAKE normalisation and whole-answer exact match (the "lmms-eval
SLAKE rule": lmms-eval has no VQA-RAD or PathVQA task, so on any other benchmark this is its
SLAKE rule applied there, and summaries say so).

>>> from medlens.bench.protocols import get_protocol
>>> from medlens.bench.samples import Sample
>>> closed = Sample("1", "slake", "test", "Is the lung healthy?", ("Yes",), "closed", ())
>>> get_protocol("lmms-eval").score(closed, "yeah").outcome  # a whole-answer synonym
'correct'
>>> get_protocol("lmms-eval").score(closed, "Yes, it is.").outcome  # verbose is wrong
'wrong'
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

from medlens.bench.protocols.base import SampleScore, ScoringProtocol
from medlens.bench.samples import Sample

LMMS_EVAL_SOURCE = (
    "EvolvingLMMs-Lab/lmms-eval@0a75d6bab2ec6a5e402cecd153cb23b2b4b8ee71 (the SLAKE task as "
    "added, unchanged at 75571cfe0fa36ca5ec2e6aa2bb268f9d38295af3) "
    "lmms_eval/tasks/slake/utils.py (normalize_answer, slake_process_results)"
)
_LMMS_YES = {"yes", "yeah", "yep", "true", "是", "是的", "有", "包含", "可以", "能", "会", "正常"}
_LMMS_NO = {
    "no",
    "nope",
    "false",
    "否",
    "不是",
    "没有",
    "无",
    "不包含",
    "不能",
    "不会",
    "不可以",
    "不正常",
    "异常",
}
_LMMS_ZH_PUNCT = (
    "！？｡。＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～、，。；：《》？【】（）"
)
_LMMS_TABLE = str.maketrans({c: " " for c in string.punctuation + _LMMS_ZH_PUNCT})


def lmms_normalize(text: str) -> str:
    """lmms-eval SLAKE ``normalize_answer``: strip, lower, drop parentheticals, punctuation to
    spaces, collapse spaces, "x ray"/"xray" → "xray", whole-answer yes/no synonyms."""
    text = text.strip().lower()
    text = re.sub(r"\([^)]*\)", " ", text)
    text = re.sub(r"（[^）]*）", " ", text)
    text = re.sub(r"\s+", " ", text.translate(_LMMS_TABLE)).strip()
    if text in {"x ray", "xray"}:
        text = "xray"
    if text in _LMMS_YES:
        return "yes"
    if text in _LMMS_NO:
        return "no"
    return text


class LmmsEvalProtocol(ScoringProtocol):
    name = "lmms-eval"
    harness_prompt = "lmms-eval"
    version = "0a75d6b"
    open_metric = "open_accuracy"
    description = (
        "lmms-eval SLAKE rule (lmms-eval's only medical VQA rule; on another benchmark it is "
        "this rule applied there, and labelled so): prediction and answer normalised by "
        "normalize_answer (strip, "
        "lower, parentheticals removed, ASCII and Chinese punctuation to spaces, whitespace "
        "collapsed, 'x ray' = 'xray', whole-answer yes/no synonyms) and compared by exact "
        "equality, for closed and open alike; a verbose 'Yes, there is.' is wrong. Overall = "
        "mean over all questions. Multiple choice, reports and boxes use medlens rules. "
        f"Source: {LMMS_EVAL_SOURCE}."
    )

    def score_vqa(self, sample: Sample, prediction: str) -> SampleScore:
        pred = lmms_normalize(prediction)
        ok = any(pred == lmms_normalize(a) for a in sample.answers)
        return SampleScore("correct" if ok else "wrong", float(ok), {"exact": float(ok)}, pred)

    def source_notes(
        self, samples: Sequence[Sample], scores: Sequence[SampleScore]
    ) -> tuple[str, ...]:
        """Labelled "lmms-eval SLAKE rule" off SLAKE."""
        others = sorted({s.benchmark for s in samples} - {"slake"})
        if not others:
            return ()
        note = (
            f"lmms-eval SLAKE rule applied to {', '.join(others)}: lmms-eval has no task for "
            f"{'it' if len(others) == 1 else 'them'}, so these are not lmms-eval figures"
        )
        return (note,)
