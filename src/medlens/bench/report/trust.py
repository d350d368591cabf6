"""Default report sections from ``medlens.trust``: calibration / selective prediction per run,
"does the image matter?" per model (beside its no-image and ``--sanity`` runs and the prior
baseline), robustness per model (its ``--shift`` runs against its clean run), and pair scores
(MediConfusion). All use the outcomes of the report's first protocol.

They are ordinary section builders (see ``model.SectionBuilder``); ``write_report`` adds
them unless ``trust_sections=False``. Plots need matplotlib (``medlens[bench]``).
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

from medlens.bench.report.html import number, pct, pre_json, table, text_cell
from medlens.bench.report.model import ReportData, ReportSection, RunSummary
from medlens.bench.scoring import stored_as
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
    """Answers and outcomes of a run's rows under the report key ``protocol`` (scores of an
    earlier version are stored under the protocol's plain name: ``scoring.stored_as``)."""
    name = stored_as(summary.run, protocol) or protocol
    rows = store.results(summary.run.id)
    return [r.answer for r in rows], [r.scores[name]["outcome"] for r in rows]


def _siblings(data: ReportData, model: RunSummary) -> list[RunSummary]:
    """The runs that ran beside ``model``: same group, same benchmark."""
    run = model.run
    return [
        s
        for s in data.runs
        if s.run.group_id == run.group_id and s.run.benchmark == run.benchmark and s is not model
    ]


def _treated(siblings: list[RunSummary], role: str) -> dict[str, RunSummary]:
    """Sanity or shift runs by their probe spec."""
    return {
        str(s.run.config.get("treatment", {}).get("spec", s.run.model)): s
        for s in siblings
        if s.run.role == role
    }


def _model_runs(data: ReportData) -> list[RunSummary]:
    return [s for s in data.runs if s.run.role == "model"]


def _section(
    title: str, intro: str, parts: list[str], numbers: dict[str, Any]
) -> ReportSection | None:
    """A report section of the per-run parts, or None when no run had anything to show."""
    return ReportSection(title, intro + "".join(parts), numbers) if parts else None


def calibration(data: ReportData, store: RunStore) -> ReportSection | None:
    """Reliability diagram and risk-coverage curve of every model and baseline run that
    reports confidences (sanity and shift runs are summarised by the robustness section)."""
    from medlens.trust.sections import arrays, calibration_section

    protocol = next(iter(data.protocols), None)
    if protocol is None:
        return None
    parts, numbers = [], {}
    for summary in data.runs:
        if summary.run.role not in ("model", "baseline"):
            continue
        answers, outcomes = _outcomes(store, summary, protocol)
        confidence, outcome = arrays(answers, outcomes)
        if not any(math.isfinite(c) for c in confidence):
            continue
        title = f"{summary.run.benchmark} · {summary.run.label} [{summary.run.id}]"
        section = calibration_section(confidence, outcome, title=title)
        parts.append(_trust_html(section))
        numbers[summary.run.id] = section.to_dict()["data"]
    intro = (
        f"<p class='muted'>Outcomes under <code>{escape(protocol)}</code>; unparseable and "
        "abstained answers are left out of the curves and counted in the numbers.</p>"
    )
    return _section("Calibration and selective prediction", intro, parts, numbers)


def image_reliance(data: ReportData, store: RunStore) -> ReportSection | None:
    """Accuracy of each model with its real images, without them (``no-image``) and with
    them blanked, replaced by noise or by another sample's (``--sanity``): the drop from the
    real image is how much of the score needs the image, read beside the prior baseline."""
    from medlens.trust.sections import sanity_section

    protocol = next(iter(data.protocols), None)
    if protocol is None:
        return None
    parts, numbers = [], {}
    for model in _model_runs(data):
        siblings = _siblings(data, model)
        blind = {s.run.model: s for s in siblings if s.run.role == "baseline"}
        checks = _treated(siblings, "sanity")
        if "no-image" in blind:
            checks = {"no-image": blind["no-image"], **checks}
        if not checks:
            continue
        outcomes = {model.run.model: _outcomes(store, model, protocol)[1]}
        outcomes |= {name: _outcomes(store, s, protocol)[1] for name, s in checks.items()}
        prior = _outcomes(store, blind["prior"], protocol)[1] if "prior" in blind else None
        title = f"{model.run.benchmark} · {model.run.label}: does the image matter?"
        section = sanity_section(outcomes, clean=model.run.model, prior=prior, title=title)
        parts.append(_trust_html(section) + _sanity_table(section.data))
        numbers[model.run.id] = section.to_dict()["data"]
    intro = (
        f"<p class='muted'>Accuracy under <code>{escape(protocol)}</code>: the share of "
        "questions answered correctly (unparseable and abstained answers count as not correct, "
        "partial credit for open answers does not count, so it can be below the overall score "
        "above). The drop is the accuracy with the real image minus the accuracy with the "
        "image changed or removed.</p>"
    )
    return _section("Image reliance", intro, parts, numbers)


def _sanity_table(data: Any) -> str:
    rows = [
        (
            "model" if i == 0 else "baseline" if r["run"] == "no-image" else "sanity",
            [
                text_cell(r["run"], left=True),
                text_cell(r["n"]),
                text_cell(pct(r["accuracy"])),
                text_cell("–" if i == 0 else pct(r["image_reliance"])),
            ],
        )
        for i, r in enumerate(data["rows"])
    ]
    prior = data.get("prior_accuracy")
    if prior is not None:
        cells = [text_cell("prior", left=True), text_cell(""), text_cell(pct(prior))]
        rows.append(("baseline", [*cells, text_cell("")]))
    return table(["run", "n", "accuracy %", "drop (points)"], rows)


def robustness(data: ReportData, store: RunStore) -> ReportSection | None:
    """Accuracy, ECE and AUROC of correctness of each model under each ``--shift``, and
    their change from its clean run (Hendrycks & Dietterich, ICLR 2019)."""
    from medlens.trust.sections import arrays, robustness_section

    protocol = next(iter(data.protocols), None)
    if protocol is None:
        return None
    parts, numbers = [], {}
    for model in _model_runs(data):
        shifted = _treated(_siblings(data, model), "shift")
        if not shifted:
            continue
        clean = arrays(*_outcomes(store, model, protocol))
        runs = {name: arrays(*_outcomes(store, s, protocol)) for name, s in shifted.items()}
        title = f"{model.run.benchmark} · {model.run.label}: robustness"
        section = robustness_section(clean, runs, title=title)
        parts.append(_trust_html(section) + _robustness_table(section.data))
        numbers[model.run.id] = section.to_dict()["data"]
    intro = (
        f"<p class='muted'>Outcomes under <code>{escape(protocol)}</code>; ECE and AUROC over "
        "answered questions with a confidence (– where the model gives none).</p>"
    )
    return _section("Robustness", intro, parts, numbers)


def _robustness_table(data: Any) -> str:
    clean = data["clean"]
    rows = [
        (
            "model",
            [
                text_cell("clean", left=True),
                text_cell(clean["n"]),
                text_cell(pct(clean["accuracy"])),
            ]
            + [text_cell("–"), text_cell(number(clean["ece"])), text_cell("–")]
            + [text_cell(number(clean["auroc"]))],
        )
    ]
    for r in data["rows"]:
        rows.append(
            (
                "shift",
                [text_cell(r["shift"], left=True), text_cell(r["n"]), text_cell(pct(r["accuracy"]))]
                + [
                    text_cell(number(100 * r["delta_accuracy"], "+.1f")),
                    text_cell(number(r["ece"])),
                ]
                + [text_cell(number(r["delta_ece"], "+.3f")), text_cell(number(r["auroc"]))],
            )
        )
    header = ["run", "n", "accuracy %", "Δ accuracy", "ECE", "Δ ECE", "AUROC"]
    return table(header, rows)


def pairs(data: ReportData, store: RunStore) -> ReportSection | None:
    """MediConfusion-style pair scores of every run whose samples carry ``pair_id``: set
    accuracy (both questions of a pair right) and confusion (the same option for both). The
    numbers are the scoring protocol's own (``protocols.corpus_metrics``), not recomputed."""
    protocol = next(iter(data.protocols), None)
    if protocol is None:
        return None
    rows, numbers = [], {}
    for summary in data.runs:
        if protocol not in summary.summaries:
            continue
        corpus = summary.summaries[protocol].corpus
        if "set_accuracy" not in corpus:
            continue
        numbers[summary.run.id] = {k: corpus[k] for k in ("pairs", "set_accuracy", "confusion")}
        rows.append(
            (
                summary.run.role,
                [
                    text_cell(f"{summary.run.benchmark} · {summary.run.model}", left=True),
                    text_cell(int(corpus["pairs"])),
                    text_cell(pct(corpus["set_accuracy"])),
                    text_cell(pct(corpus["confusion"])),
                ],
            )
        )
    if not rows:
        return None
    intro = (
        f"<p class='muted'>Under <code>{escape(protocol)}</code>. A model that answers from the "
        "question alone gets at most one question of a pair right (Sepehri et al., ICLR "
        "2025).</p>"
    )
    header = ["run", "pairs", "set accuracy %", "confusion %"]
    return ReportSection("Pairs", intro + table(header, rows), numbers)


DEFAULT_SECTIONS = (calibration, image_reliance, robustness, pairs)
