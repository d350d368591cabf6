"""The report model: what a report shows (``ReportData`` of ``RunSummary``s, made by
``summarize`` from a stored run), its one section type (``ReportSection``) and the section
registry. Section builders (``report.trust``, ``report.samples`` and users' own), the tables
(``report.table``) and the writer (``report.build``) import this module, never each other's.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from medlens.bench.metrics.bootstrap import Estimate
from medlens.bench.protocols import ProtocolSummary
from medlens.bench.protocols.versions import as_scored, describe, split_key
from medlens.bench.samples import CATEGORY_KEY
from medlens.bench.scoring import report_key
from medlens.bench.store import (
    RunInfo,
    RunStore,
    StoredResult,
    sample_from_json,
    score_from_json,
)

USELESS_COVERAGE = 0.05
"""Below this coverage a calibration profile answers almost nothing: said loudly."""


@dataclass(frozen=True)
class Selective:
    """A calibrated run's abstentions on the questions its profile applies to (those with a
    calibrated confidence), and the accuracy of what it answered under ``protocol``
    (selective accuracy: Geifman & El-Yaniv, NeurIPS 2017)."""

    run: RunInfo
    profile: str
    protocol: str
    questions: int
    answered: int
    correct: int

    @property
    def abstained(self) -> int:
        return self.questions - self.answered

    @property
    def coverage(self) -> float:
        return self.answered / self.questions if self.questions else 0.0

    @property
    def accuracy(self) -> float | None:
        """Selective accuracy; None when the run answered none."""
        return self.correct / self.answered if self.answered else None

    @property
    def useless(self) -> bool:
        """The profile answers (almost) nothing: coverage below ``USELESS_COVERAGE``."""
        return self.coverage < USELESS_COVERAGE


def selective(run: RunInfo, stored: Sequence[StoredResult], protocols: Sequence[str]) -> Selective:
    """``Selective`` of a calibrated run, under medlens's protocol where it was scored."""
    results = [r for r in stored if (r.answer.get("confidence") or {}).get("calibrated")]
    answered = [r for r in results if not r.answer.get("abstained")]
    protocol = "medlens" if "medlens" in protocols else protocols[0]
    correct = sum(r.scores.get(protocol, {}).get("outcome") == "correct" for r in answered)
    profile = str(run.config.get("calibration", ""))
    return Selective(run, profile, protocol, len(results), len(answered), correct)


@dataclass(frozen=True)
class RunSummary:
    """One run's numbers: per protocol, its ``ProtocolSummary`` (headline estimates such as
    ``closed_accuracy``, ``open_f1`` or ``open_recall`` and ``overall``, fractions with
    bootstrap intervals; per-group estimates; corpus values). Typed until a report is written
    (``to_json``)."""

    run: RunInfo
    n_results: int
    n_cached: int
    n_errors: int
    summaries: Mapping[str, ProtocolSummary]
    """protocol → its summary of the run, in the order the run's protocols were asked for."""
    sample_ids: frozenset[str] = frozenset()
    """The questions the run holds answers to (runs compared must hold the same)."""
    selective: Selective | None = None
    """Coverage and selective accuracy of a run made with a calibration profile."""

    @property
    def headline(self) -> dict[str, Mapping[str, Estimate]]:
        """protocol → headline metric → estimate."""
        return {name: summary.headline for name, summary in self.summaries.items()}

    @property
    def categories(self) -> dict[str, dict[str, Estimate]]:
        """protocol → question category (``samples.CATEGORY_KEY``) → estimate."""
        return {
            name: {
                value: metrics["score"]
                for value, metrics in summary.groups.get(CATEGORY_KEY, {}).items()
            }
            for name, summary in self.summaries.items()
        }

    @property
    def seconds_per_sample(self) -> float:
        return self.run.elapsed_s / self.n_results if self.n_results else float("nan")

    def to_json(self) -> dict[str, Any]:
        """The numbers as ``report.json`` holds them: ``results`` (protocol → metric →
        ``{"value", "low", "high", "n"}``), ``categories`` alike, and ``protocol_summaries``
        (protocol → ``ProtocolSummary.to_dict()``)."""
        summaries = {name: summary.to_dict() for name, summary in self.summaries.items()}
        return {
            "results": {name: s["headline"] for name, s in summaries.items()},
            "categories": {
                name: {v: m["score"] for v, m in s["groups"].get(CATEGORY_KEY, {}).items()}
                for name, s in summaries.items()
            },
            "protocol_summaries": summaries,
        }


def summarize(
    store: RunStore,
    run: RunInfo,
    protocol_names: Sequence[str],
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> RunSummary:
    """Aggregate a stored run under each protocol (bootstrap 95 % intervals), each under the
    version its scores were made with: scores of an earlier version are reported under
    ``name@version`` (``protocols.versions``), never as the current rule."""
    stored = store.results(run.id)
    keys = {name: report_key(run, name) for name in protocol_names}
    samples = [sample_from_json(r.sample) for r in stored]
    return RunSummary(
        run=run,
        n_results=len(stored),
        n_cached=sum(r.cached for r in stored),
        n_errors=sum(r.error is not None for r in stored),
        sample_ids=frozenset(r.sample_id for r in stored),
        selective=selective(run, stored, list(protocol_names))
        if run.config.get("calibration") and protocol_names
        else None,
        summaries={
            key: dataclasses.replace(
                as_scored(key).aggregate(
                    samples,
                    [score_from_json(r.scores[stored_as]) for r in stored],
                    group_by=("kind", CATEGORY_KEY),
                    n_boot=n_boot,
                    seed=seed,
                ),
                protocol=split_key(key)[0],
                version=describe(key)[0],
            )
            for stored_as, key in keys.items()
        },
    )


@dataclass(frozen=True)
class ReportData:
    """Everything a report shows; section builders read it."""

    runs: tuple[RunSummary, ...]
    protocols: Mapping[str, Mapping[str, str]]
    """protocol (``name`` or ``name@version`` for an earlier version's scores) →
    {"version", "description"}."""
    benchmarks: Mapping[str, Mapping[str, Any]]
    """name → {"scoring_rule", "citation", "license", "quality"}."""
    generated: float = field(default_factory=time.time)

    def runs_of(self, benchmark: str) -> list[RunSummary]:
        return [r for r in self.runs if r.run.benchmark == benchmark]


@dataclass(frozen=True)
class ReportSection:
    """A section of the report: a title, an HTML fragment (escaped by its builder) and data
    that goes into ``report.json`` under ``sections``."""

    title: str
    html: str
    data: Mapping[str, Any] = field(default_factory=dict)


SIBLING_ROLES = ("baseline", "sanity", "shift")
"""Roles of the runs an evaluation starts beside the model (``plan.planned_runs``)."""

SectionBuilder = Callable[[ReportData, RunStore], "ReportSection | None"]
SECTIONS: list[SectionBuilder] = []


def register_section(builder: SectionBuilder) -> SectionBuilder:
    """Add a section to every report from now on (decorator)."""
    if builder not in SECTIONS:
        SECTIONS.append(builder)
    return builder
