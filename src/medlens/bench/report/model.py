"""The report model: what a report shows (``ReportData`` of ``RunSummary``s), its one section
type (``ReportSection``) and the section registry. Section builders (``report.trust`` and
users' own) and the writer (``report.build``) both import this module, never each other.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from medlens.bench.store import RunInfo, RunStore


@dataclass(frozen=True)
class RunSummary:
    """One run's numbers: per protocol, the headline estimates (``closed_accuracy``,
    ``open_f1`` or ``open_recall``, ``overall``, ...; each ``{"value", "low", "high", "n"}``,
    fractions) and per-category estimates, plus the protocol's own summary dict."""

    run: RunInfo
    n_results: int
    n_cached: int
    n_errors: int
    headline: Mapping[str, Mapping[str, Mapping[str, Any]]]
    """protocol → headline metric → estimate."""
    categories: Mapping[str, Mapping[str, Mapping[str, Any]]]
    """protocol → question category → estimate."""
    details: Mapping[str, Mapping[str, Any]]
    """protocol → ``ProtocolSummary.to_dict()``."""

    @property
    def seconds_per_sample(self) -> float:
        return self.run.elapsed_s / self.n_results if self.n_results else float("nan")


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
