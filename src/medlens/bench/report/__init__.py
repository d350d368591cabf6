"""Reports of stored runs (HTML, JSON, CSV); see ``build`` for the extension point."""

from medlens.bench.report.build import (
    SECTIONS,
    ReportData,
    ReportFiles,
    ReportSection,
    RunSummary,
    SectionBuilder,
    collect,
    register_section,
    render,
    select_runs,
    summarize,
    write_report,
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
