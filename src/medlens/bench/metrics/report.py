"""Report-generation metrics through the implementations the literature uses.

- BLEU-1..4: ``nltk.translate.bleu_score`` (Papineni et al., 2002), sentence and corpus
  level, with Chen & Cherry (2014) smoothing method 1 (``SmoothingFunction().method1``) so
  that a short report without a matching 4-gram scores near 0 instead of exactly 0.
- ROUGE-L: Google's ``rouge-score`` package (Lin, 2004), F-measure, no stemming.
- METEOR: ``nltk.translate.meteor_score`` (Banerjee & Lavie, 2005); it needs the WordNet data
  of nltk. Without it METEOR is reported as unavailable, with the install line.
- CIDEr-D is corpus-level (its IDF weights come from all references): ``pycocoevalcap``'s
  ``Cider`` (Vedantam et al., 2015), the pure-Python part of the COCO caption toolkit.
- Clinical metrics (CheXbert F1, RadGraph F1) need their model weights, which medlens does not
  download; they are reported unavailable with the reason.

Tokenisation: lower case, punctuation split off as in the COCO PTB tokenizer's spirit but
without its Java dependency: ``re.findall(r"\\w+|[^\\w\\s]")``, then punctuation dropped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from medlens.errors import require

_WORD = re.compile(r"\w+")


def report_tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class Unavailable:
    """A metric that cannot be computed here, and why."""

    metric: str
    reason: str


def bleu(prediction: str, references: Sequence[str]) -> dict[str, float]:
    """Sentence BLEU-1..4 (cumulative n-gram weights), smoothing method 1."""
    bleu_score: Any = require("nltk.translate.bleu_score", "bench", "BLEU")
    smooth = bleu_score.SmoothingFunction().method1
    hyp = report_tokens(prediction)
    refs = [report_tokens(r) for r in references]
    out = {}
    for n in range(1, 5):
        weights = tuple([1.0 / n] * n)
        value = (
            bleu_score.sentence_bleu(refs, hyp, weights=weights, smoothing_function=smooth)
            if hyp
            else 0.0
        )
        out[f"bleu{n}"] = float(value)
    return out


def corpus_bleu(
    predictions: Sequence[str], references: Sequence[Sequence[str]]
) -> dict[str, float]:
    """Corpus BLEU-1..4 (the number report papers print), smoothing method 1."""
    bleu_score: Any = require("nltk.translate.bleu_score", "bench", "BLEU")
    smooth = bleu_score.SmoothingFunction().method1
    hyps = [report_tokens(p) for p in predictions]
    refs = [[report_tokens(r) for r in rs] for rs in references]
    return {
        f"bleu{n}": float(
            bleu_score.corpus_bleu(
                refs, hyps, weights=tuple([1.0 / n] * n), smoothing_function=smooth
            )
        )
        for n in range(1, 5)
    }


def rouge_l(prediction: str, references: Sequence[str]) -> float:
    """ROUGE-L F-measure, best over references."""
    rouge_scorer: Any = require("rouge_score.rouge_scorer", "bench", "ROUGE-L")
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    return max((scorer.score(r, prediction)["rougeL"].fmeasure for r in references), default=0.0)


def meteor(prediction: str, references: Sequence[str]) -> float | Unavailable:
    """METEOR with nltk, or ``Unavailable`` when WordNet data is not installed."""
    meteor_score: Any = require("nltk.translate.meteor_score", "bench", "METEOR")
    try:
        return float(
            meteor_score.meteor_score(
                [report_tokens(r) for r in references], report_tokens(prediction)
            )
        )
    except LookupError:
        return Unavailable(
            "meteor",
            "nltk's WordNet data is not installed; run: python -m nltk.downloader wordnet",
        )


def cider(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus CIDEr-D with pycocoevalcap (n=4, sigma=6, as in the COCO toolkit)."""
    cider_mod: Any = require("pycocoevalcap.cider.cider", "bench", "CIDEr")
    gts = {i: [" ".join(report_tokens(r)) for r in refs] for i, refs in enumerate(references)}
    res = {i: [" ".join(report_tokens(p))] for i, p in enumerate(predictions)}
    score, _ = cider_mod.Cider().compute_score(gts, res)
    return float(score)


CLINICAL_UNAVAILABLE = (
    Unavailable("chexbert_f1", "CheXbert labeler weights are not bundled with medlens"),
    Unavailable("radgraph_f1", "RadGraph model weights are not bundled with medlens"),
)


def sample_report_metrics(prediction: str, references: Sequence[str]) -> dict[str, float]:
    """Per-report BLEU-1..4, ROUGE-L and (when WordNet is present) METEOR."""
    out = bleu(prediction, references)
    out["rougeL"] = rouge_l(prediction, references)
    value = meteor(prediction, references)
    if isinstance(value, float):
        out["meteor"] = value
    return out
