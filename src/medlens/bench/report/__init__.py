"""Reports of stored runs (HTML, JSON, CSV): ``model`` (what a report shows, sections and
their registry), ``trust`` (the default trust sections), ``html``, ``build`` (the writer)."""

from medlens.bench.report.build import (
    ReportFiles,
    collect,
    render,
    select_runs,
    write_report,
)
from medlens.bench.report.model import (
    SECTIONS,
    ReportData,
    ReportSection,
    RunSummary,
    SectionBuilder,
    register_section,
    summarize,
)

__all__ = [
    "SECTIONS",
    "ReportData",
    "ReportFiles",
    "ReportSection",
    "RunSummary",
    "SectionBuilder",
    "collect",
    "register_section",
    "render",
    "select_runs",
    "summarize",
    "write_report",
]
