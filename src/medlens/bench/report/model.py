"""The report model: what a report shows (``ReportData`` of ``RunSummary``s), its one section
type (``ReportSection``) and the section registry. Section builders (``report.trust`` and
users' own) and the writer (``report.build``) both import this module, never each other.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from medlens.bench.metrics.bootstrap import Estimate
from medlens.bench.protocols import ProtocolSummary
from medlens.bench.samples import CATEGORY_KEY
from medlens.bench.store import RunInfo, RunStore


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


@dataclass(frozen=True)
class ReportData:
    """Everything a report shows; section builders read it."""

    runs: tuple[RunSummary, ...]
    protocols: Mapping[str, Mapping[str, str]]
    """name → {"version", "description"}."""
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
