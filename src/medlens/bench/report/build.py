"""Reports of stored runs: HTML for people, JSON and CSV for programs.

``write_report(store, ["a1b2c3"])`` reads the runs (and, beside each model run, the baselines
that ran with it on the same benchmark), aggregates every protocol's scores with bootstrap
intervals, and writes ``report.html``, ``report.json`` and ``report.csv``. Several run ids
compare models side by side. Nothing is re-run; ``protocols`` re-scores stored generations
under protocols the runs were not scored with.

Extension point: a *section builder* ``(ReportData, RunStore) -> ReportSection | None`` adds a
section (reliability diagrams, risk-coverage curves, image reliance ...), either registered
once with ``@register_section`` or passed per call as ``extra_sections``.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from medlens.bench.protocols.versions import describe
from medlens.bench.report import html
from medlens.bench.report.model import (
    SECTIONS,
    SIBLING_ROLES,
    ReportData,
    ReportSection,
    RunSummary,
    SectionBuilder,
    summarize,
)
from medlens.bench.report.samples import MAX_THUMBNAILS, samples_section
from medlens.bench.report.table import sample_set_warnings, table_notes, table_rows
from medlens.bench.report.trust import DEFAULT_SECTIONS
from medlens.bench.samples import CATEGORY_KEY
from medlens.bench.scoring import outdated, prompt_notes, rescore_run, run_prompt
from medlens.bench.store import RunInfo, RunStore
from medlens.errors import ConfigError, MissingDependencyError


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    json: Path
    csv: Path


# --------------------------------------------------------------------------------------------
# Collecting
# --------------------------------------------------------------------------------------------


def select_runs(
    store: RunStore, run_ids: Sequence[str], *, baselines: bool = True
) -> list[RunInfo]:
    """The named runs, each followed by the runs beside it on the same benchmark (when
    ``baselines``): baselines, sanity checks and shifts; each run once, grouped by
    benchmark."""
    if not run_ids:
        raise ConfigError("Name at least one run id (see 'medlens report --list').")
    chosen: list[RunInfo] = []
    for run_id in run_ids:
        run = store.get_run(run_id)
        siblings = [
            r
            for r in store.group(run.id)
            if baselines and r.benchmark == run.benchmark and r.role in SIBLING_ROLES
        ]
        for candidate in (run, *siblings):
            if candidate.id not in {c.id for c in chosen}:
                chosen.append(candidate)
    order = list(dict.fromkeys(r.benchmark for r in chosen))
    # Models, then baselines, sanity checks and shifts, within each benchmark (stable otherwise).
    rank = {"model": 0, **{role: i + 1 for i, role in enumerate(SIBLING_ROLES)}}
    return sorted(chosen, key=lambda r: (order.index(r.benchmark), rank.get(r.role, 9)))


def collect(
    store: RunStore,
    run_ids: Sequence[str],
    *,
    protocols: Sequence[str] = (),
    baselines: bool = True,
    n_boot: int = 1000,
    seed: int = 0,
) -> ReportData:
    """Summaries of the chosen runs; ``protocols`` (default: those each run was scored with)
    are scored from stored generations first where a run lacks them."""
    runs = select_runs(store, run_ids, baselines=baselines)
    wanted = list(protocols)
    summaries = []
    for run in runs:
        missing = [p for p in wanted if p not in run.protocols or outdated(run, p)]
        if missing:
            run = rescore_run(store, run.id, missing)
        summaries.append(
            summarize(store, run, wanted or list(run.protocols), n_boot=n_boot, seed=seed)
        )
    names = list(dict.fromkeys(p for s in summaries for p in s.summaries))
    from medlens.bench.benchmarks import get_benchmark

    benchmarks: dict[str, dict[str, Any]] = {}
    for summary in summaries:
        run = summary.run
        if run.benchmark in benchmarks:
            continue
        bench = get_benchmark(run.benchmark)
        benchmarks[run.benchmark] = {
            "split": run.split,
            "scoring_rule": bench.scoring_rule,
            "citation": bench.citation,
            "license": bench.license,
            "homepage": bench.homepage,
            "quality": list(run.quality),
        }
    return ReportData(
        runs=tuple(summaries),
        protocols={
            key: dict(zip(("version", "description"), describe(key), strict=True)) for key in names
        },
        benchmarks=benchmarks,
    )


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def _label(summary: RunSummary) -> str:
    run = summary.run
    return f"{run.model} [{run.id}]" if run.role == "model" else run.model


def results_section(data: ReportData, benchmark: str) -> str:
    """The eval table (``table.table_rows``, the rows ``medlens eval`` prints): per protocol,
    one row per run (model, then the runs beside it) with closed, open, IoU where there are
    boxes, overall with its 95 % interval, Δ from the model in points and n scored / stored;
    † on protocols that reproduce known bugs; the notes; the calibrated runs' coverage,
    abstentions and selective accuracy; a warning when the runs answered different questions."""
    runs = data.runs_of(benchmark)
    rows = table_rows(runs)
    parts = [
        f"<p class='bad warning'>Warning: {escape(w)}</p>"
        for w in sample_set_warnings((s.run, s.sample_ids) for s in runs)
    ]
    boxes = any(r.iou is not None for r in rows)
    for name, info in data.protocols.items():
        of_protocol = [r for r in rows if r.protocol == name]
        if not of_protocol:
            continue
        open_metric = of_protocol[0].open_metric
        header = ["run", "closed", open_metric.replace("_", " "), *(["IoU"] if boxes else [])]
        header += ["overall", "Δ pts vs model", "n scored/stored"]
        body = []
        for r in of_protocol:
            cells = [html.text_cell(_label(r.summary), left=True)]
            cells += [html.estimate_cell(r.closed), html.estimate_cell(r.open)]
            cells += [html.text_cell(html.pct(r.iou))] if boxes else []
            cells += [
                html.estimate_cell(r.overall),
                html.text_cell(html.number(r.delta_points, "+.1f")),
                f"<td class='{'bad' if r.scored != r.stored else ''}'>{r.scored}/{r.stored}</td>",
            ]
            body.append((r.run.role, cells))
        mark = "†" if of_protocol[0].buggy else ""
        parts.append(
            f"<h3>Protocol <code>{escape(name)}</code>{mark} "
            f"<span class='muted'>version {escape(info['version'])}</span></h3>"
            + html.table(header, body)
        )
    notes = "".join(f"<li>{escape(n)}</li>" for n in table_notes(rows))
    parts.append(f"<ul class='notes muted'>{notes}</ul>")
    parts.append(calibrated_section(runs))
    return "".join(parts)


def calibrated_section(runs: Sequence[RunSummary]) -> str:
    """Every calibrated run's coverage, abstentions and selective accuracy on the questions
    its profile applies to, with the warning of a profile that answers almost nothing."""
    stats = [s.selective for s in runs if s.selective is not None]
    if not stats:
        return ""
    rows = [
        (
            "model",
            [
                html.text_cell(f"{st.run.model} [{st.run.id}]", left=True),
                html.text_cell(st.profile, left=True),
                html.text_cell(st.questions),
                html.text_cell(html.pct(st.coverage)),
                html.text_cell(st.answered),
                html.text_cell(st.abstained),
                html.text_cell(html.pct(st.accuracy)),
                html.text_cell(st.protocol),
                "<td class='bad'>answers almost nothing</td>" if st.useless else "<td></td>",
            ],
        )
        for st in stats
    ]
    header = ["calibrated run", "profile", "questions", "coverage %", "answered", "abstained"]
    header += ["selective accuracy %", "protocol", ""]
    return "<h3>Calibrated runs: coverage and selective accuracy</h3>" + html.table(header, rows)


def prompt_section(data: ReportData, benchmark: str) -> str:
    """Which prompt preset produced each run's generations, and which protocols score them
    under another harness's rules (``scoring.prompt_notes``)."""
    runs = [s for s in data.runs_of(benchmark) if s.run.role != "baseline"]
    if not runs:
        return ""
    items = "".join(
        f"<li><code>{escape(_label(s))}</code>: <code>{escape(run_prompt(s.run)['label'])}</code>"
        f" <span class='muted'>{escape(run_prompt(s.run)['description'])}</span></li>"
        for s in runs
    )
    notes = "".join(
        f"<li>{escape(note)}</li>" for s in runs for note in prompt_notes(s.run, list(s.summaries))
    )
    return f"<h3>Prompts</h3><ul>{items}</ul>" + (
        f"<ul class='muted'>{notes}</ul>" if notes else ""
    )


def category_section(data: ReportData, benchmark: str) -> str:
    """Per-category bars (first protocol), baselines in grey beside the model (sanity and
    shift runs have their own sections; a bar each would bury the model's)."""
    runs = [r for r in data.runs_of(benchmark) if r.run.role in ("model", "baseline")]
    if not runs or not data.protocols:
        return ""
    name = next((p for p in data.protocols if any(p in r.categories for r in runs)), None)
    if name is None:
        return ""
    categories = sorted({c for r in runs for c in r.categories.get(name, {})})
    if not categories or categories == [""]:
        return ""
    series = []
    for index, summary in enumerate(runs):
        fill = html.colour(index, summary.run.backend, summary.run.role)
        series.append((_label(summary), fill, summary.categories.get(name, {})))
    return (
        f"<h3>Per question category (<code>{escape(name)}</code>, 95 % CI whiskers)</h3>"
        + html.legend([(label, fill) for label, fill, _ in series])
        + html.grouped_bars(categories, series)
    )


def quality_section(info: Mapping[str, Any]) -> str:
    issues = info.get("quality", [])
    if not issues:
        return "<p class='muted'>No data-quality findings.</p>"
    items = "".join(
        f"<li><b>{escape(i['kind'])}</b> ({int(i['count'])}): {escape(i['detail'])}"
        + (
            f" <span class='muted'>e.g. {escape(', '.join(i['examples']))}</span>"
            if i.get("examples")
            else ""
        )
        + "</li>"
        for i in issues
    )
    return f"<h3>Data quality</h3><ul class='quality'>{items}</ul>"


def timing_section(runs: Sequence[RunSummary]) -> str:
    rows = []
    for s in runs:
        r = s.run
        rows.append(
            (
                r.role,
                [
                    html.text_cell(_label(s), left=True),
                    html.text_cell(r.backend),
                    html.text_cell(r.status),
                    html.text_cell(f"{s.n_results}/{r.n_planned or s.n_results}"),
                    html.text_cell(s.n_cached),
                    html.text_cell(s.n_errors),
                    html.text_cell(f"{r.elapsed_s:.1f}"),
                    html.text_cell(
                        "–"
                        if math.isnan(s.seconds_per_sample)
                        else f"{1000 * s.seconds_per_sample:.1f}"
                    ),
                ],
            )
        )
    return "<h3>Runs and times</h3>" + html.table(
        ["run", "backend", "status", "samples", "cached", "errors", "wall s", "ms/sample"], rows
    )


def config_section(runs: Sequence[RunSummary]) -> str:
    blocks = "".join(
        f"<details><summary>{escape(_label(s))}: configuration and fingerprint</summary>"
        + html.pre_json(
            {
                "id": s.run.id,
                "group": s.run.group_id,
                "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s.run.created)),
                "split": s.run.split,
                "model": s.run.model,
                "backend": s.run.backend,
                "protocols": list(s.run.protocols),
                **dict(s.run.config),
            }
        )
        + "</details>"
        for s in runs
    )
    return f"<h3>Configuration</h3>{blocks}"


def privacy_line(runs: Sequence[RunSummary]) -> str:
    """How the runs' studies were de-identified (``spec.pixel_policy``): whether the pixels
    are exactly as published decides whether scores compare with the literature."""
    policies = [s.run.config["pixel_policy"] for s in runs if "pixel_policy" in s.run.config]
    if not policies:
        return ""
    what = (
        "headers and question text de-identified"
        if any(p.get("deidentify") for p in policies)
        else "off"
    )
    pixels = "; ".join(dict.fromkeys(str(p.get("pixels", "")) for p in policies))
    return f"<p class='muted'>De-identification: {what}; pixels {escape(pixels)}.</p>"


def published_section(data: ReportData, benchmark: str) -> str:
    """Published figures of the zoo (medlens.bench.models) beside the model runs' own."""
    from medlens.bench.models import beside_run

    lines = [
        f"<li><code>{escape(s.run.model)}</code>: {escape(f['line'])}</li>"
        for s in data.runs_of(benchmark)
        if s.run.role == "model"
        for f in beside_run(s.run.model, benchmark, s.headline)
    ]
    return f"<h3>Published figures</h3><ul>{''.join(lines)}</ul>" if lines else ""


def rules_section(data: ReportData, benchmark: str) -> str:
    info = data.benchmarks.get(benchmark, {})
    protocol_items = "".join(
        f"<li><code>{escape(n)}</code> (version {escape(p['version'])}): "
        f"{escape(p['description'])}</li>"
        for n, p in data.protocols.items()
    )
    return (
        "<h3>Scoring</h3>"
        f"<p><b>The dataset's rule:</b> {escape(str(info.get('scoring_rule') or '–'))}</p>"
        f"<ul>{protocol_items}</ul>"
        f"<p class='muted'>Source: {escape(str(info.get('citation') or ''))} "
        f"Licence: {escape(str(info.get('license') or '–'))}.</p>"
    )


def render(data: ReportData, sections: Sequence[ReportSection] = ()) -> str:
    """The report page."""
    import medlens

    body = []
    for benchmark, info in data.benchmarks.items():
        runs = data.runs_of(benchmark)
        body.append(f"<h2>{escape(benchmark)} · {escape(str(info.get('split', '')))}</h2>")
        body.append(
            "<p class='muted'>Accuracy-type scores in percent with percentile-bootstrap 95 % "
            "intervals over questions; baselines (prior from the train split, no-image, "
            "random), sanity checks (<code>sanity:</code>) and shifts (<code>shift:</code>, "
            "the model on changed images or questions) ran on the same samples.</p>"
        )
        body.append(privacy_line(runs))
        body.append(results_section(data, benchmark))
        body.append(prompt_section(data, benchmark))
        body.append(published_section(data, benchmark))
        body.append(category_section(data, benchmark))
        body.append(quality_section(info))
        body.append(rules_section(data, benchmark))
        body.append(timing_section(runs))
        body.append(config_section(runs))
    for section in sections:
        body.append(f"<h2>{escape(section.title)}</h2>{section.html}")
    models = sorted({s.run.model for s in data.runs if s.run.role == "model"})
    title = "medlens report: " + ", ".join(models or [s.run.model for s in data.runs][:1])
    subtitle = (
        f"{', '.join(data.benchmarks)} · runs {', '.join(s.run.id for s in data.runs)} · "
        f"generated {time.strftime('%Y-%m-%d %H:%M', time.localtime(data.generated))}"
    )
    return html.page(title, subtitle, "".join(body), medlens.__version__)


def to_json(data: ReportData, sections: Sequence[ReportSection] = ()) -> dict[str, Any]:
    from medlens.bench.models import beside_run

    return {
        "generated": data.generated,
        "protocols": data.protocols,
        "benchmarks": data.benchmarks,
        "runs": [
            {
                "id": s.run.id,
                "group": s.run.group_id,
                "benchmark": s.run.benchmark,
                "split": s.run.split,
                "model": s.run.model,
                "backend": s.run.backend,
                "role": s.run.role,
                "status": s.run.status,
                "n_results": s.n_results,
                "n_planned": s.run.n_planned,
                "n_cached": s.n_cached,
                "n_errors": s.n_errors,
                "elapsed_s": s.run.elapsed_s,
                "config": s.run.config,
                "prompt": run_prompt(s.run),
                "prompt_notes": prompt_notes(s.run, list(s.summaries)),
                **s.to_json(),
                "published": beside_run(s.run.model, s.run.benchmark, s.headline)
                if s.run.role == "model"
                else [],
            }
            for s in data.runs
        ],
        "sections": {s.title: dict(s.data) for s in sections},
    }


def csv_rows(data: ReportData) -> Iterable[dict[str, Any]]:
    """One row per (run, protocol, group): the long format spreadsheets and pandas read."""
    for s in data.runs:
        categories = s.categories
        for protocol, headline in s.headline.items():
            tables = [("", headline), (f"{CATEGORY_KEY}:", categories[protocol])]
            for prefix, estimates in tables:
                for group, est in estimates.items():
                    yield {
                        "benchmark": s.run.benchmark,
                        "split": s.run.split,
                        "run_id": s.run.id,
                        "model": s.run.model,
                        "backend": s.run.backend,
                        "role": s.run.role,
                        "protocol": protocol,
                        "metric": prefix + group,
                        "n": est.n,
                        "value": est.value,
                        "ci_low": est.low,
                        "ci_high": est.high,
                    }


def write_report(
    store: RunStore,
    run_ids: Sequence[str],
    out_dir: str | Path,
    *,
    protocols: Sequence[str] = (),
    baselines: bool = True,
    extra_sections: Sequence[SectionBuilder] = (),
    trust_sections: bool = True,
    max_thumbnails: int = MAX_THUMBNAILS,
    n_boot: int = 1000,
    seed: int = 0,
) -> ReportFiles:
    """Write ``report.html``, ``report.json`` and ``report.csv`` of ``run_ids`` in ``out_dir``.

    Sections: ``trust_sections`` (calibration, image reliance), then the registered ones,
    then ``extra_sections``, then the sample table (``report.samples``, embedding at most
    ``max_thumbnails`` distinct images)."""
    data = collect(
        store, run_ids, protocols=protocols, baselines=baselines, n_boot=n_boot, seed=seed
    )
    builders: list[SectionBuilder] = [*SECTIONS, *extra_sections]
    sections = [s for b in builders if (s := b(data, store)) is not None]
    if trust_sections:
        sections[:0] = _trust_sections(data, store)
    table = samples_section(data, store, max_thumbnails=max_thumbnails)
    sections += [table] if table is not None else []
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(out / "report.html", out / "report.json", out / "report.csv")
    files.html.write_text(render(data, sections), encoding="utf-8")
    files.json.write_text(
        json.dumps(_finite(to_json(data, sections)), indent=2, allow_nan=False, default=str),
        encoding="utf-8",
    )
    with open(files.csv, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(
            handle,
            fieldnames=[
                "benchmark",
                "split",
                "run_id",
                "model",
                "backend",
                "role",
                "protocol",
                "metric",
                "n",
                "value",
                "ci_low",
                "ci_high",
            ],
        )
        writer.writeheader()
        writer.writerows(csv_rows(data))
    return files


def _trust_sections(data: ReportData, store: RunStore) -> list[ReportSection]:
    """The default trust sections; without matplotlib, a note with the install line."""
    try:
        return [s for b in DEFAULT_SECTIONS if (s := b(data, store)) is not None]
    except MissingDependencyError as exc:
        note = f"<p class='muted'>Not drawn: {escape(str(exc))}</p>"
        return [ReportSection("Calibration and image reliance", note, {"skipped": str(exc)})]


def _finite(value: Any) -> Any:
    """NaN (an empty group) as JSON null: ``json`` would write the non-standard ``NaN``."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
