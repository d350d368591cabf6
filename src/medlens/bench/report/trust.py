"""Default report sections from ``medlens.trust``: calibration / selective prediction per run
and "does the image matter?" per benchmark (the model beside its no-image self and the
baselines). Both use the outcomes of the report's first protocol.

They are ordinary section builders (see ``build.SectionBuilder``); ``write_report`` adds
them unless ``trust_sections=False``. Plots need matplotlib (``medlens[bench]``).
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

from medlens.bench.report.build import ReportData, ReportSection, RunSummary
from medlens.bench.report.html import pre_json
from medlens.bench.store import RunStore


def _trust_html(section: Any) -> str:
    """A ``trust.sections.Section`` as HTML: its PNGs inline, its numbers as JSON."""
    rendered = section.to_dict()
    images = "".join(
        f"<img alt='{escape(name)}' src='{uri}' style='max-width:48%;margin-right:1%'>"
        for name, uri in rendered["images"].items()
    )
    return f"<h3>{escape(section.title)}</h3><div>{images}</div>" + (
        f"<details><summary>numbers</summary>{pre_json(rendered['data'])}</details>"
    )


def _outcomes(store: RunStore, summary: RunSummary, protocol: str) -> tuple[list[Any], list[str]]:
    rows = store.results(summary.run.id)
    return [r.answer for r in rows], [r.scores[protocol]["outcome"] for r in rows]


def calibration(data: ReportData, store: RunStore) -> ReportSection | None:
    """Reliability diagram and risk-coverage curve of every run that reports confidences."""
    from medlens.trust.sections import arrays, calibration_section

    protocol = next(iter(data.protocols), None)
    if protocol is None:
        return None
    parts, numbers = [], {}
    for summary in data.runs:
        answers, outcomes = _outcomes(store, summary, protocol)
        confidence, outcome = arrays(answers, outcomes)
        if not any(math.isfinite(c) for c in confidence):
            continue
        title = f"{summary.run.benchmark} · {summary.run.label} [{summary.run.id}]"
        section = calibration_section(confidence, outcome, title=title)
        parts.append(_trust_html(section))
        numbers[summary.run.id] = section.to_dict()["data"]
    if not parts:
        return None
    intro = (
        f"<p class='muted'>Outcomes under <code>{escape(protocol)}</code>; unparseable and "
        "abstained answers are left out of the curves and counted in the numbers.</p>"
    )
    return ReportSection("Calibration and selective prediction", intro + "".join(parts), numbers)


def image_reliance(data: ReportData, store: RunStore) -> ReportSection | None:
    """Accuracy of each model next to its no-image run and the baselines of its group."""
    from medlens.trust.sections import sanity_section

    protocol = next(iter(data.protocols), None)
    if protocol is None:
        return None
    parts, numbers = [], {}
    for benchmark in data.benchmarks:
        runs = data.runs_of(benchmark)
        by_model = {s.run.model: s for s in runs}
        if "no-image" not in by_model:
            continue
        for model in (s for s in runs if s.run.role == "model"):
            outcomes = {
                name: _outcomes(store, s, protocol)[1]
                for name, s in [(model.run.model, model)]
                + [(b, by_model[b]) for b in ("no-image", "random") if b in by_model]
            }
            prior = (
                _outcomes(store, by_model["prior"], protocol)[1] if "prior" in by_model else None
            )
            title = f"{benchmark} · {model.run.label}: does the image matter?"
            section = sanity_section(outcomes, clean=model.run.model, prior=prior, title=title)
            parts.append(_trust_html(section))
            numbers[model.run.id] = section.to_dict()["data"]
    if not parts:
        return None
    return ReportSection("Image reliance", "".join(parts), numbers)


DEFAULT_SECTIONS = (calibration, image_reliance)
