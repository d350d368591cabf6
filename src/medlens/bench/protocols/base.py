"""What every scoring protocol shares: the per-answer ``SampleScore``, the aggregated
``ProtocolSummary``, the ``ScoringProtocol`` base (extract → score → aggregate with bootstrap
intervals) and the medlens rules for question kinds a source harness does not define
(multiple choice, reports, boxes).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

from medlens.bench.metrics.bootstrap import Estimate, bootstrap_mean
from medlens.bench.metrics.choice import correct_letters, extract_choice
from medlens.bench.metrics.grounding import average_precision, parse_boxes
from medlens.bench.samples import Sample
from medlens.registry import Registry
from medlens.types import box_iou

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


class Scorable(Protocol):
    """What a protocol reads of an answer: the pipeline's ``Answer`` and the run store's
    ``StoredAnswer`` both are one."""

    @property
    def raw(self) -> str: ...

    @property
    def text(self) -> str | None: ...

    @property
    def parsed(self) -> bool: ...

    @property
    def abstained(self) -> bool: ...


class ScoringProtocol:
    """Base of every protocol: ``score`` one answer, ``aggregate`` many."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    description: ClassVar[str] = ""
    open_metric: ClassVar[str] = "open_f1"
    """Name of the open-answer headline (the value of ``SampleScore.score`` for open)."""
    harness_prompt: ClassVar[str] = "medlens"
    """The prompt preset (``medlens.tasks.presets``) of the harness this rule comes from:
    generations made with another preset are that harness's rule on other prompts."""
    scores_parsed: ClassVar[bool] = False
    """True: score medlens's task parser reading of the answer (an abstention is "abstained",
    an answer the parser could not read "unparseable"); False: the raw text, which the
    protocol extracts as its source harness does."""

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
        does); ``parsed``/``parsed_ok``/``abstained`` carry medlens's task parser result,
        which only a protocol that ``scores_parsed`` reads.

        Multiple choice, reports and boxes go to ``score_choice`` and the shared report and
        grounding metrics; closed and open questions to the protocol's own ``score_vqa``."""
        if self.scores_parsed:
            if abstained:
                return SampleScore("abstained", 0.0, {}, None)
            if not parsed_ok:
                return unparseable()
            # A grounding answer's parsed text is its label: its boxes are in the raw text.
            if parsed is not None and sample.kind != "grounding":
                prediction = parsed
        text = self.extract(prediction)
        if sample.kind == "choice":
            return self.score_choice(sample, text)
        if sample.kind == "report":
            return score_report(sample, text)
        if sample.kind == "grounding":
            return score_grounding(sample, text)
        return self.score_vqa(sample, text)

    def score_answer(self, sample: Sample, answer: Scorable) -> SampleScore:
        """Score a typed answer: its raw text, with the task parser's reading of it."""
        return self.score(
            sample,
            answer.raw,
            parsed=answer.text,
            parsed_ok=answer.parsed,
            abstained=answer.abstained,
        )

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
            notes=(*notes, *self.source_notes(samples, scores)),
        )

    def source_notes(
        self, samples: Sequence[Sample], scores: Sequence[SampleScore]
    ) -> tuple[str, ...]:
        """What a reader must know about how the source harness would have treated this file
        (a crash, a rule applied outside its benchmark); none by default."""
        return ()


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
    corpus.update(benchmark_metrics(samples, scores))
    return corpus, tuple(notes)


def benchmark_metrics(samples: Sequence[Sample], scores: Sequence[SampleScore]) -> dict[str, float]:
    """What each registered benchmark adds over its own samples (``Benchmark.corpus_metrics``,
    e.g. MediConfusion's pair scores), so that no protocol knows one benchmark's rules."""
    from medlens.bench.benchmarks import BENCHMARKS

    values: dict[str, float] = {}
    for name in dict.fromkeys(s.benchmark for s in samples):
        if name not in BENCHMARKS:
            continue
        own = [(s, r) for s, r in zip(samples, scores) if s.benchmark == name]
        values.update(
            BENCHMARKS.get(name)().corpus_metrics(
                [s for s, _ in own],
                [r.extracted for _, r in own],
                [r.outcome == "correct" for _, r in own],
            )
        )
    return values


# --------------------------------------------------------------------------------------------
# Question kinds scored alike by every protocol that does not define its own rule
# --------------------------------------------------------------------------------------------


def unparseable(metrics: Mapping[str, float] | None = None) -> SampleScore:
    return SampleScore("unparseable", 0.0, dict(metrics or {}), None)


def score_choice(sample: Sample, text: str) -> SampleScore:
    """medlens multiple choice: an unambiguous letter or option text, else unparseable."""
    letter = extract_choice(text, sample.candidates)
    if letter is None:
        return unparseable()
    ok = letter in correct_letters(sample.answers, sample.candidates)
    return SampleScore("correct" if ok else "wrong", float(ok), {"exact": float(ok)}, letter)


def score_report(sample: Sample, text: str) -> SampleScore:
    """Report metrics per sample (ROUGE-L is the per-sample headline; CIDEr is corpus-level)."""
    from medlens.bench.metrics.report import sample_report_metrics

    if not text.strip():
        return unparseable()
    metrics = sample_report_metrics(text, sample.answers)
    return SampleScore(
        "partial" if metrics["rougeL"] > 0 else "wrong", metrics["rougeL"], metrics, text
    )


def score_grounding(sample: Sample, text: str) -> SampleScore:
    """IoU of the first predicted box with the best-matching reference box; hit at 0.5."""
    predicted = parse_boxes(text)
    if not predicted:
        return unparseable()
    truth = [tuple(b["box"]) for b in sample.metadata.get("boxes", [])]
    best = max((box_iou(predicted[0], t) for t in truth), default=0.0)
    hit = best >= 0.5
    return SampleScore(
        "correct" if hit else "wrong", float(hit), {"iou": best}, json.dumps(predicted[0])
    )


PROTOCOLS: Registry[type[ScoringProtocol]] = Registry("scoring protocol")
"""Every protocol class by name, registered in one place (``medlens.bench.protocols``)."""
