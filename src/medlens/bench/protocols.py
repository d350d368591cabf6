"""Scoring protocols: named, versioned rule sets that turn a raw model answer into a score.

The same generations score differently under different harnesses, and papers rarely say
which one they used. A protocol makes the rule explicit: how the answer is extracted from the
raw text, how it is normalised, which questions count as closed or open and how each is
scored, and what "overall" means. A run records the protocol name and version; a report
prints them; stored generations can be re-scored under another protocol without a model run.

Shipped protocols (``PROTOCOLS``):

- ``medlens``: strict. Closed answers are read by normalised exact match with yes/no as whole
  words; open answers get token F1 (headline) and recall; "unparseable" is its own outcome.
- ``medevalkit`` / ``medevalkit-fixed``: the rules behind the Lingshu / MedEvalKit tables, and
  the same rules with their bugs fixed.
- ``llava-med`` / ``llava-med-fixed``: LLaVA-Med's substring rule for closed questions and
  token recall for open ones, as many papers copied them, and a fixed variant.
- ``lmms-eval``: lmms-eval's SLAKE normalisation and exact match.
- ``medgemma-card``: closed accuracy and token F1, the figures Google's MedGemma card prints.

Each protocol normalises on its own, on purpose: that is what makes them differ. Question
kinds a source harness does not define (multiple choice for LLaVA-Med, reports, boxes) are
scored with medlens's rules, and the protocol's description says so.
"""

from __future__ import annotations

import difflib
import json
import re
import string
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from medlens.bench.benchmark import Sample
from medlens.bench.metrics.bootstrap import Estimate, bootstrap_mean
from medlens.bench.metrics.choice import correct_letters, extract_choice
from medlens.bench.metrics.grounding import average_precision, iou, parse_boxes
from medlens.bench.metrics.text import best_token_scores, normalize, read_yes_no
from medlens.registry import Registry

Outcome = Literal["correct", "wrong", "partial", "unparseable", "abstained"]
OUTCOMES: tuple[Outcome, ...] = ("correct", "wrong", "partial", "unparseable", "abstained")


@dataclass(frozen=True)
class SampleScore:
    """The score of one answer under one protocol.

    ``score`` is the protocol's headline value for the question (1/0 for closed and choice,
    F1 or recall or exact match for open answers, ROUGE-L for reports, IoU>=0.5 for boxes).
    ``metrics`` holds the other values; ``metrics["counted"] == 0`` marks a question the
    source harness leaves out of its denominator (LLaVA-Med's closed rule does this).
    ``extracted`` is what the protocol read from the raw text (None when nothing).
    """

    outcome: Outcome
    score: float
    metrics: Mapping[str, float] = field(default_factory=dict)
    extracted: str | None = None

    @property
    def counted(self) -> bool:
        return self.metrics.get("counted", 1.0) != 0.0


@dataclass(frozen=True)
class ProtocolSummary:
    """Headline numbers with bootstrap 95 % intervals, per-group breakdowns and outcome counts.

    ``headline``: e.g. ``closed_accuracy``, ``open_f1``, ``choice_accuracy``, ``overall``.
    ``groups[key][value][metric]``: the same per group (kind, question type, modality, organ).
    ``corpus``: corpus-level values without intervals (CIDEr, corpus BLEU, AP50, set accuracy).
    """

    protocol: str
    version: str
    n: int
    headline: Mapping[str, Estimate]
    groups: Mapping[str, Mapping[str, Mapping[str, Estimate]]]
    outcomes: Mapping[str, int]
    excluded: int = 0
    corpus: Mapping[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "version": self.version,
            "n": self.n,
            "headline": {k: v.to_dict() for k, v in self.headline.items()},
            "groups": {
                key: {value: {m: e.to_dict() for m, e in ms.items()} for value, ms in vals.items()}
                for key, vals in self.groups.items()
            },
            "outcomes": dict(self.outcomes),
            "excluded": self.excluded,
            "corpus": dict(self.corpus),
            "notes": list(self.notes),
        }

    def format(self) -> str:
        """A plain-text table: headline values with 95 % intervals, groups, outcome counts."""
        lines = [f"protocol {self.protocol} (version {self.version}) — {self.n} questions"]
        for metric, estimate in self.headline.items():
            lines.append(f"  {metric:<22} {estimate}")
        for key, values in self.groups.items():
            if key == "kind":
                continue
            lines.append(f"  by {key}:")
            for value, metrics in values.items():
                lines.append(f"    {value:<20} {metrics['score']}")
        for metric, number in self.corpus.items():
            lines.append(f"  {metric:<22} {number:.4f}")
        counts = ", ".join(f"{k} {v}" for k, v in self.outcomes.items() if v)
        lines.append(f"  outcomes: {counts}")
        if self.excluded:
            lines.append(f"  left out of denominators by the source rule: {self.excluded}")
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)


class ScoringProtocol:
    """Base of every protocol: ``score`` one answer, ``aggregate`` many."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    description: ClassVar[str] = ""
    open_metric: ClassVar[str] = "open_f1"
    """Name of the open-answer headline (the value of ``SampleScore.score`` for open)."""

    def score(
        self,
        sample: Sample,
        prediction: str,
        *,
        parsed: str | None = None,
        parsed_ok: bool = True,
        abstained: bool = False,
    ) -> SampleScore:
        """Score the raw ``prediction`` (protocols extract answers as their source harness
        does); ``parsed``/``parsed_ok`` carry medlens's task parser result.

        Multiple choice, reports and boxes go to ``score_choice`` and the shared report and
        grounding metrics; closed and open questions to the protocol's own ``score_vqa``."""
        text = self.extract(prediction)
        if sample.kind == "choice":
            return self.score_choice(sample, text)
        if sample.kind == "report":
            return score_report(sample, text)
        if sample.kind == "grounding":
            return score_grounding(sample, text)
        return self.score_vqa(sample, text)

    def extract(self, prediction: str) -> str:
        """The part of the raw output the harness reads (e.g. a ``\\boxed{}`` answer)."""
        return prediction

    def score_choice(self, sample: Sample, text: str) -> SampleScore:
        return score_choice(sample, text)

    def score_vqa(self, sample: Sample, text: str) -> SampleScore:
        """Score a closed or open answer as the source harness does."""
        raise NotImplementedError

    def bucket(self, sample: Sample) -> str:
        """Which headline a question counts in; harnesses disagree (MedEvalKit calls a
        VQA-RAD question closed when its answer is yes/no, not by its answer type)."""
        return sample.kind

    def overall_value(self, score: SampleScore) -> float:
        return score.score

    def aggregate(
        self,
        samples: Sequence[Sample],
        scores: Sequence[SampleScore],
        *,
        group_by: Sequence[str] = ("kind",),
        n_boot: int = 1000,
        seed: int = 0,
    ) -> ProtocolSummary:
        """Headline numbers, per-group breakdowns and counts (percentile bootstrap, seeded)."""
        if len(samples) != len(scores):
            raise ValueError(f"{len(samples)} samples but {len(scores)} scores")
        names = {
            "closed": "closed_accuracy",
            "open": self.open_metric,
            "choice": "choice_accuracy",
            "report": "report_rougeL",
            "grounding": "grounding_acc50",
        }
        values: dict[str, list[float]] = defaultdict(list)
        grouped: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        excluded = 0
        for sample, result in zip(samples, scores):
            if not result.counted:
                excluded += 1
                continue
            values[names.get(self.bucket(sample), self.bucket(sample))].append(result.score)
            values["overall"].append(self.overall_value(result))
            for key in group_by:
                value = self.bucket(sample) if key == "kind" else sample.metadata.get(key)
                if value not in (None, ""):
                    grouped[key][str(value)].append(result.score)
        order = [*names.values(), "overall"]
        headline = {
            k: bootstrap_mean(values[k], n_boot=n_boot, seed=seed) for k in order if values.get(k)
        }
        groups = {
            key: {
                value: {"score": bootstrap_mean(v, n_boot=n_boot, seed=seed)}
                for value, v in sorted(vals.items())
            }
            for key, vals in grouped.items()
        }
        outcomes = Counter(s.outcome for s in scores)
        corpus, notes = corpus_metrics(samples, scores)
        return ProtocolSummary(
            protocol=self.name,
            version=self.version,
            n=len(samples),
            headline=headline,
            groups=groups,
            outcomes={o: outcomes.get(o, 0) for o in OUTCOMES},
            excluded=excluded,
            corpus=corpus,
            notes=notes,
        )


def corpus_metrics(
    samples: Sequence[Sample], scores: Sequence[SampleScore]
) -> tuple[dict[str, float], tuple[str, ...]]:
    """Corpus-level values: report BLEU/CIDEr, grounding AP50, MediConfusion pair scores."""
    corpus: dict[str, float] = {}
    notes: list[str] = []
    reports = [(s, r) for s, r in zip(samples, scores) if s.kind == "report"]
    if reports:
        from medlens.bench.metrics.report import CLINICAL_UNAVAILABLE, cider, corpus_bleu

        preds = [r.extracted or "" for _, r in reports]
        refs = [s.answers for s, _ in reports]
        corpus.update({f"corpus_{k}": v for k, v in corpus_bleu(preds, refs).items()})
        corpus["cider"] = cider(preds, refs)
        if not any("meteor" in r.metrics for _, r in reports):
            notes.append("meteor unavailable: nltk WordNet data not installed")
        notes.extend(f"{u.metric} unavailable: {u.reason}" for u in CLINICAL_UNAVAILABLE)
    boxes = [(s, r) for s, r in zip(samples, scores) if s.kind == "grounding"]
    if boxes:
        box_preds = [(s.id, 1.0, tuple(json.loads(r.extracted))) for s, r in boxes if r.extracted]
        truth = [(s.id, tuple(b["box"])) for s, _ in boxes for b in s.metadata.get("boxes", [])]
        corpus["ap50"] = average_precision(box_preds, truth)
        corpus["mean_iou"] = sum(r.metrics.get("iou", 0.0) for _, r in boxes) / len(boxes)
    if any("pair_id" in s.metadata for s in samples):
        from medlens.bench.benchmarks.mediconfusion import pair_scores

        corpus.update(
            pair_scores(
                samples, [r.extracted for r in scores], [r.outcome == "correct" for r in scores]
            )
        )
    return corpus, tuple(notes)


# --------------------------------------------------------------------------------------------
# medlens: strict
# --------------------------------------------------------------------------------------------


def _unparseable(metrics: Mapping[str, float] | None = None) -> SampleScore:
    return SampleScore("unparseable", 0.0, dict(metrics or {}), None)


def score_choice(sample: Sample, text: str) -> SampleScore:
    """medlens multiple choice: an unambiguous letter or option text, else unparseable."""
    letter = extract_choice(text, sample.candidates)
    if letter is None:
        return _unparseable()
    ok = letter in correct_letters(sample.answers, sample.candidates)
    return SampleScore("correct" if ok else "wrong", float(ok), {"exact": float(ok)}, letter)


def score_report(sample: Sample, text: str) -> SampleScore:
    """Report metrics per sample (ROUGE-L is the per-sample headline; CIDEr is corpus-level)."""
    from medlens.bench.metrics.report import sample_report_metrics

    if not text.strip():
        return _unparseable()
    metrics = sample_report_metrics(text, sample.answers)
    return SampleScore(
        "partial" if metrics["rougeL"] > 0 else "wrong", metrics["rougeL"], metrics, text
    )


def score_grounding(sample: Sample, text: str) -> SampleScore:
    """IoU of the first predicted box with the best-matching reference box; hit at 0.5."""
    predicted = parse_boxes(text)
    if not predicted:
        return _unparseable()
    truth = [tuple(b["box"]) for b in sample.metadata.get("boxes", [])]
    best = max((iou(predicted[0], t) for t in truth), default=0.0)
    hit = best >= 0.5
    return SampleScore(
        "correct" if hit else "wrong", float(hit), {"iou": best}, json.dumps(predicted[0])
    )


class MedlensProtocol(ScoringProtocol):
    name = "medlens"
    version = "1"
    description = (
        "Strict medlens rules (medlens.bench.metrics.text). Normalisation: NFKC, lower case, "
        "punctuation to spaces except decimal points and thousands separators, articles "
        "dropped, number words zero..twenty to digits, 'none' kept. Closed yes/no: yes or no "
        "must appear as a whole word, exactly one of them ('normal', 'nodule', 'not sure' are "
        "not 'no'); other closed answers: normalised exact match. Open: SQuAD token F1 "
        "(headline), recall and exact match, best over accepted answers. Multiple choice: an "
        "unambiguous letter or option text. Anything unreadable is 'unparseable' (never a "
        "random or most-similar option). Overall = mean of per-question scores."
    )

    def score(
        self,
        sample: Sample,
        prediction: str,
        *,
        parsed: str | None = None,
        parsed_ok: bool = True,
        abstained: bool = False,
    ) -> SampleScore:
        if abstained:
            return SampleScore("abstained", 0.0, {}, None)
        if not parsed_ok:
            return _unparseable()
        return super().score(sample, parsed if parsed is not None else prediction)

    def score_vqa(self, sample: Sample, text: str) -> SampleScore:
        refs = {normalize(a) for a in sample.answers}
        if sample.kind == "closed":
            if refs and refs <= {"yes", "no"}:
                value = read_yes_no(text)
                if value is None:
                    return _unparseable()
            else:
                value = normalize(text)
                if not value:
                    return _unparseable()
            ok = value in refs
            return SampleScore("correct" if ok else "wrong", float(ok), {"exact": float(ok)}, value)
        if not normalize(text):
            return _unparseable()
        ts = best_token_scores(text, sample.answers)
        outcome: Outcome = "correct" if ts.exact else ("partial" if ts.f1 > 0 else "wrong")
        metrics = {"exact": ts.exact, "recall": ts.recall, "precision": ts.precision, "f1": ts.f1}
        return SampleScore(outcome, ts.f1, metrics, normalize(text))


# --------------------------------------------------------------------------------------------
# MedEvalKit (Lingshu tables)
# --------------------------------------------------------------------------------------------

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
                return _unparseable({"exact": exact})
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
            return _unparseable()
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


# --------------------------------------------------------------------------------------------
# LLaVA-Med
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# lmms-eval (SLAKE task)
# --------------------------------------------------------------------------------------------

LMMS_EVAL_SOURCE = (
    "github.com/EvolvingLMMs-Lab/lmms-eval @ 65ef07dfd5aae0f3bda3106bb672364a1ca00d0a: "
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
    version = "65ef07d"
    open_metric = "open_accuracy"
    description = (
        "lmms-eval SLAKE task: prediction and answer normalised by normalize_answer (strip, "
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


# --------------------------------------------------------------------------------------------
# MedGemma model card
# --------------------------------------------------------------------------------------------

_CARD_PUNCT = str.maketrans({c: " " for c in string.punctuation})


def card_tokens(text: str) -> list[str]:
    return text.lower().translate(_CARD_PUNCT).split()


class MedGemmaCardProtocol(ScoringProtocol):
    name = "medgemma-card"
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


PROTOCOLS: Registry[ScoringProtocol] = Registry("scoring protocol")
for _protocol in (
    MedlensProtocol(),
    MedEvalKitProtocol(),
    MedEvalKitFixedProtocol(),
    LlavaMedProtocol(),
    LlavaMedFixedProtocol(),
    LmmsEvalProtocol(),
    MedGemmaCardProtocol(),
):
    PROTOCOLS.register(_protocol.name, _protocol)


def get_protocol(name: str) -> ScoringProtocol:
    """The protocol registered as ``name`` ("did you mean ..." for unknown names)."""
    return PROTOCOLS.get(name)


def rescore(
    protocol: str | ScoringProtocol,
    samples: Sequence[Sample],
    predictions: Sequence[str],
    **aggregate_options: Any,
) -> tuple[list[SampleScore], ProtocolSummary]:
    """Score stored raw generations under ``protocol`` (no model run) and aggregate them."""
    chosen = get_protocol(protocol) if isinstance(protocol, str) else protocol
    scores = [chosen.score(s, p) for s, p in zip(samples, predictions, strict=True)]
    return scores, chosen.aggregate(samples, scores, **aggregate_options)


__all__ = [
    "PROTOCOLS",
    "ProtocolSummary",
    "SampleScore",
    "ScoringProtocol",
    "get_protocol",
    "rescore",
]
