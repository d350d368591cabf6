"""Per-sample outputs of stored runs, as every evaluation harness offers them (lmms-eval's
``--log_samples``, VLMEvalKit's per-sample sheets): one row per (run, question) with the
question, gold answers, raw output, parsed answer, each protocol's score, the confidence and
whether the answer abstained.

Two forms, built from the store's typed records (``StoredAnswer``, ``SampleScore``), never
from a second reading of the dataset:

- ``write_samples(store, runs, "out.jsonl" | "out.csv" | folder)``: JSONL (one JSON object a
  line, nested scores) and/or CSV (flat, ``<protocol>:outcome`` / ``<protocol>:score``
  columns) for pandas, spreadsheets and diffing two runs.
- ``samples_section``: the HTML report's browsable table, wrong answers first, with filters
  (protocol, benchmark, correct or not, text) and a thumbnail of each image the model received
  (``Thumbnail``, ≤ 128 px, the de-identified and treated view; none when de-identification
  was off). Each distinct image is embedded once, as a CSS class holding a ``data:`` URI, so
  the page stays one self-contained file, and at most ``max_thumbnails`` of them (those of the
  first rows: the wrong answers), with a count of what was left out.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from medlens.bench.protocols import OUTCOMES, SampleScore
from medlens.bench.report.model import ReportData, ReportSection
from medlens.bench.samples import CATEGORY_KEY, Sample
from medlens.bench.scoring import report_key, stored_as
from medlens.bench.store import (
    RunInfo,
    RunStore,
    StoredAnswer,
    Thumbnail,
    answer_from_json,
    sample_from_json,
    score_from_json,
)
from medlens.errors import ConfigError

MAX_THUMBNAILS = 300
"""Distinct images a report embeds by default: at ~4 KB each, about 1.5 MB of page."""
SUFFIXES = (".jsonl", ".csv")
OUTCOME_ORDER = ("wrong", "unparseable", "partial", "abstained", "correct")
"""How the sample table sorts: what went wrong first, correct answers last."""
assert set(OUTCOME_ORDER) == set(OUTCOMES)


@dataclass(frozen=True)
class SampleRow:
    """One stored answer of a run, typed: the sample (no pixels), the answer as stored, its
    score under each protocol, the thumbnails of the images the model received."""

    run: RunInfo
    position: int
    sample: Sample
    answer: StoredAnswer
    scores: Mapping[str, SampleScore]
    thumbnails: tuple[Thumbnail, ...] = ()

    @property
    def confidence(self) -> Mapping[str, Any]:
        """``{"value", "method", "calibrated", ...}``, empty when the answer has none."""
        return dict(self.answer.record.get("confidence") or {})

    def record(self) -> dict[str, Any]:
        """The JSONL form (also what the CSV flattens)."""
        confidence = self.confidence
        return {
            "run_id": self.run.id,
            "model": self.run.model,
            "role": self.run.role,
            "benchmark": self.sample.benchmark,
            "split": self.sample.split,
            "id": self.sample.id,
            "kind": self.sample.kind,
            "category": self.sample.metadata.get(CATEGORY_KEY),
            "question": self.sample.question,
            "candidates": list(self.sample.candidates),
            "gold": list(self.sample.answers),
            "raw": self.answer.raw,
            "parsed": self.answer.text,
            "parse_ok": self.answer.parsed,
            "confidence": _finite(confidence.get("value")),
            "confidence_method": confidence.get("method"),
            "calibrated": bool(confidence.get("calibrated")),
            "abstained": self.answer.abstained,
            "error": self.answer.error,
            "scores": {
                name: {
                    "outcome": s.outcome,
                    "score": _finite(s.score),
                    "counted": s.counted,
                    "extracted": s.extracted,
                }
                for name, s in self.scores.items()
            },
            "views": [t.label for t in self.thumbnails]
            or list(self.answer.record.get("views", [])),
        }


def sample_rows(
    store: RunStore, runs: Sequence[RunInfo], protocols: Sequence[str] = ()
) -> list[SampleRow]:
    """Every stored answer of ``runs``, in run then benchmark order, scored under
    ``protocols`` (default: each run's own; a protocol a run was not scored with fails with
    the command that re-scores it). A protocol may be named as the report shows it,
    ``name@version`` for the scores of an earlier version (``protocols.versions``)."""
    rows = []
    for run in runs:
        wanted = list(protocols) or [report_key(run, name) for name in run.protocols]
        names = {p: stored_as(run, p) for p in wanted}
        missing = [p for p, name in names.items() if name is None]
        if missing:
            raise ConfigError(
                f"Run {run.id} was not scored with {', '.join(missing)}: score it first with "
                f"'medlens report {run.id} --protocol {','.join(wanted)}'."
            )
        thumbnails = store.thumbnails(run.id)
        for stored in store.results(run.id):
            rows.append(
                SampleRow(
                    run=run,
                    position=stored.position,
                    sample=sample_from_json(stored.sample),
                    answer=answer_from_json(stored.answer),
                    scores={
                        p: score_from_json(stored.scores[str(name)]) for p, name in names.items()
                    },
                    thumbnails=thumbnails.get(stored.sample_id, ()),
                )
            )
    return rows


def samples_paths(target: str | Path) -> list[Path]:
    """``x.jsonl`` or ``x.csv``: that file; anything else is a folder that gets both
    ``samples.jsonl`` and ``samples.csv``."""
    path = Path(target)
    if path.suffix.lower() in SUFFIXES:
        return [path]
    if path.suffix and not path.is_dir():
        raise ConfigError(
            f"Per-sample outputs are written as {' or '.join(SUFFIXES)} (by suffix), or both "
            f"into a folder; '{path}' is neither. Name a .jsonl or .csv file, or a folder."
        )
    return [path / f"samples{suffix}" for suffix in SUFFIXES]


def write_samples(
    store: RunStore,
    runs: Sequence[RunInfo],
    target: str | Path,
    protocols: Sequence[str] = (),
) -> list[Path]:
    """Write the per-sample rows of ``runs`` to ``target`` (``samples_paths``); return the
    files written."""
    rows = sample_rows(store, runs, protocols)
    names = list(dict.fromkeys(p for r in rows for p in r.scores))
    paths = samples_paths(target)
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="") as handle:
            if path.suffix.lower() == ".jsonl":
                handle.writelines(
                    json.dumps(r.record(), allow_nan=False, default=str) + "\n" for r in rows
                )
            else:
                writer = csv.DictWriter(handle, fieldnames=_csv_fields(names))
                writer.writeheader()
                writer.writerows(_csv_record(row.record()) for row in rows)
    return paths


def _csv_fields(protocols: Sequence[str]) -> list[str]:
    fixed = [
        "run_id",
        "model",
        "role",
        "benchmark",
        "split",
        "id",
        "kind",
        "category",
        "question",
        "candidates",
        "gold",
        "raw",
        "parsed",
        "parse_ok",
        "confidence",
        "confidence_method",
        "calibrated",
        "abstained",
        "error",
    ]
    return fixed + [f"{p}:{k}" for p in protocols for k in ("outcome", "score", "counted")]


def _csv_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """Lists joined by `` | `` (SLAKE and VQA-RAD answers never contain one), scores flat."""
    flat = {k: v for k, v in record.items() if k not in ("scores", "views")}
    flat["gold"] = " | ".join(record["gold"])
    flat["candidates"] = " | ".join(record["candidates"])
    for name, score in record["scores"].items():
        flat |= {f"{name}:{k}": score[k] for k in ("outcome", "score", "counted")}
    return flat


def _finite(value: Any) -> float | None:
    """A number for JSON (which has no NaN), None where there is none."""
    if value is None or not math.isfinite(float(value)):
        return None
    return float(value)


# --------------------------------------------------------------------------------------------
# The HTML sample table
# --------------------------------------------------------------------------------------------


def _order(rows: Sequence[SampleRow], protocol: str) -> list[int]:
    """Row indices, wrong answers first (``OUTCOME_ORDER``), lower scores first within an
    outcome, then benchmark order; runs not scored under ``protocol`` last."""
    rank = {o: i for i, o in enumerate(OUTCOME_ORDER)}

    def key(i: int) -> tuple[int, float, str, int]:
        score = rows[i].scores.get(protocol)
        place = (len(rank), 0.0) if score is None else (rank[score.outcome], score.score)
        return (*place, rows[i].run.benchmark, rows[i].position)

    return sorted(range(len(rows)), key=key)


def samples_section(
    data: ReportData, store: RunStore, *, max_thumbnails: int = MAX_THUMBNAILS
) -> ReportSection | None:
    """The sample table of the report's model runs (all its runs when it has none): every
    answer beside its gold, wrong first, filterable, with the image the model received."""
    protocols = list(data.protocols)
    runs = [s.run for s in data.runs if s.run.role == "model"] or [s.run for s in data.runs]
    rows = sample_rows(store, runs)  # each run under its own protocols
    if not rows:
        return None
    orders = [_order(rows, p) for p in protocols]
    ranks = [{index: k for k, index in enumerate(order)} for order in orders]
    budget = _Budget(max_thumbnails)
    several_runs = len(runs) > 1
    calibrated = any(r.confidence.get("calibrated") or r.answer.abstained for r in rows)
    first = orders[0] if orders else range(len(rows))  # unscored runs: as stored
    body = [
        _row_html(rows[i], protocols, [r[i] for r in ranks], budget, several_runs, calibrated)
        for i in first
    ]
    header = ["image", "benchmark · id", *(["run"] if several_runs else [])]
    header += ["question", "gold", "raw output", "parsed", *(["score"] if protocols else [])]
    header += ["confidence"]
    header += ["abstained"] if calibrated else []
    heads = "".join(f"<th class='l'>{escape(h)}</th>" for h in header)
    table = (
        f"<table id='sample-table'><thead><tr>{heads}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )
    left_out = _image_note(rows, runs, budget)
    html = (
        _style(protocols, budget)
        + _intro(rows, protocols)
        + f"<p class='muted' id='s-images'>{escape(left_out)}</p>"
        + f"<div id='samples' data-p='0'>{_filters(rows, protocols)}{table}</div>"
        + _SCRIPT
    )
    numbers = {
        "rows": len(rows),
        "runs": [r.id for r in runs],
        "thumbnails_shown": len(budget.shown),
        "thumbnails_left_out": len(budget.left_out),
        "max_thumbnails": max_thumbnails,
    }
    return ReportSection("Samples", html, numbers)


class _Budget:
    """Which distinct images get embedded: the first ``limit`` met in table order."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.shown: dict[str, Thumbnail] = {}
        self.left_out: set[str] = set()

    def take(self, thumbnail: Thumbnail) -> bool:
        if thumbnail.digest in self.shown:
            return True
        if len(self.shown) < self.limit:
            self.shown[thumbnail.digest] = thumbnail
            return True
        self.left_out.add(thumbnail.digest)
        return False


def _row_html(
    row: SampleRow,
    protocols: Sequence[str],
    ranks: Sequence[int],
    budget: _Budget,
    several_runs: bool,
    calibrated: bool,
) -> str:
    scored = [row.scores.get(p) for p in protocols]
    attrs = f" data-bench='{escape(row.sample.benchmark)}'" + "".join(
        f" data-o{i}='{'' if s is None else s.outcome}' data-k{i}='{ranks[i]}'"
        for i, s in enumerate(scored)
    )
    images = "".join(
        f"<span class='thumb th-{t.digest}' role='img' aria-label='{escape(t.label)}' "
        f"title='{escape(t.label)}' style='width:{t.width}px;height:{t.height}px'></span>"
        if budget.take(t)
        else f"<span class='muted'>{escape(t.label)}: not embedded</span>"
        for t in row.thumbnails
    )
    scores = "".join(
        f"<span class='sp p{i} muted'>not scored</span>"
        if s is None
        else f"<span class='sp p{i} o-{s.outcome}'>{s.outcome} {s.score:.2f}"
        + ("" if s.counted else " (not counted)")
        + "</span>"
        for i, s in enumerate(scored)
    )
    value = _finite(row.confidence.get("value"))
    confidence = "–" if value is None else f"{value:.2f}"
    if row.confidence.get("calibrated"):
        confidence += " (calibrated)"
    cells = [
        f"<td class='img'>{images or '<span class=muted>–</span>'}</td>",
        _text(f"{row.sample.benchmark} · {row.sample.id}"),
        *([_text(row.run.label)] if several_runs else []),
        _text(row.sample.question),
        _text(" | ".join(row.sample.answers)),
        f"<td class='l s'><div class='raw'>{escape(row.answer.raw)}</div></td>",
        _text("–" if row.answer.text is None else row.answer.text),
        *([f"<td class='l'>{scores}</td>"] if protocols else []),
        f"<td>{escape(confidence)}</td>",
    ]
    if calibrated:
        cells.append(f"<td>{'yes' if row.answer.abstained else 'no'}</td>")
    return f"<tr{attrs}>{''.join(cells)}</tr>"


def _text(value: str) -> str:
    return f"<td class='l s'>{escape(value)}</td>"


def _intro(rows: Sequence[SampleRow], protocols: Sequence[str]) -> str:
    if not protocols:
        return (
            f"<p class='muted'>{len(rows)} answers, not scored (the questions have no gold "
            "answers), in the order of the list.</p>"
        )
    wrong = sum(
        r.scores[protocols[0]].outcome != "correct" for r in rows if protocols[0] in r.scores
    )
    return (
        f"<p class='muted'>{len(rows)} answers, {wrong} not correct under "
        f"<code>{escape(protocols[0])}</code>, listed first (then partial credit, then "
        "correct). Choose the protocol whose scores order and filter the table. Every answer "
        "is also in <code>medlens report RUN --samples</code> (JSONL/CSV).</p>"
    )


def _image_note(rows: Sequence[SampleRow], runs: Sequence[RunInfo], budget: _Budget) -> str:
    """How many images are shown, how many were left out and why, which answers have none."""
    without = sum(not r.thumbnails for r in rows)
    off = [r.id for r in runs if r.config.get("pixel_policy", {}).get("deidentify") is False]
    side = max((max(t.width, t.height) for t in budget.shown.values()), default=0)
    shown = (
        f"Images: {len(budget.shown)} distinct images as the model received them (after "
        f"de-identification and any probe), thumbnails of at most {side} px."
    )
    parts = [shown]
    if budget.left_out:
        parts.append(
            f"{len(budget.left_out)} more left out (a report embeds at most {budget.limit}; "
            "medlens report --max-thumbnails N)."
        )
    if without:
        why = "no image, a study that failed to load, or a run stored before medlens kept them"
        if off:
            why = f"de-identification was off for run(s) {', '.join(off)}, or " + why
        parts.append(f"{without} answers have none ({why}).")
    return " ".join(parts)


def _filters(rows: Sequence[SampleRow], protocols: Sequence[str]) -> str:
    protocol_options = "".join(
        f"<option value='{i}'>{escape(p)}</option>" for i, p in enumerate(protocols)
    )
    benchmarks = dict.fromkeys(r.sample.benchmark for r in rows)
    bench_options = "".join(f"<option>{escape(b)}</option>" for b in benchmarks)
    scored = (
        f"<label>protocol <select id='s-protocol'>{protocol_options}</select></label>"
        "<label>answers <select id='s-outcome'><option value=''>all</option>"
        "<option value='wrong'>not correct</option><option value='correct'>correct</option>"
        "</select></label>"
    )
    return (
        "<div class='filters'>"
        f"{scored if protocols else ''}"
        "<label>benchmark <select id='s-bench'><option value=''>all</option>"
        f"{bench_options}</select></label>"
        "<label>search <input id='s-search' type='search' placeholder='question, answer, id'>"
        f"</label><span id='s-count' class='muted'>{len(rows)} of {len(rows)} answers</span>"
        "</div>"
    )


def _style(protocols: Sequence[str], budget: _Budget) -> str:
    """The table's CSS: the active protocol's score visible, one class per embedded image."""
    active = "".join(
        f"#samples[data-p='{i}'] .p{i}{{display:inline}}" for i in range(len(protocols))
    )
    images = "".join(
        f".th-{t.digest}{{background-image:url({t.data_uri()})}}" for t in budget.shown.values()
    )
    return (
        "<style>"
        "#samples .filters label{margin-right:14px}"
        "#samples .sp{display:none}"
        f"{active}"
        "#samples .o-correct{color:#3a9e5c}#samples .o-wrong,#samples .o-unparseable"
        "{color:var(--bad)}"
        "#samples td.img{text-align:left}#samples .thumb{display:inline-block;background-size:contain;"
        "background-repeat:no-repeat;margin-right:4px;vertical-align:top}"
        "#samples td.s{max-width:260px;overflow-wrap:anywhere}"
        "#samples .raw{max-height:7em;overflow:auto;white-space:pre-wrap}"
        f"{images}"
        "</style>"
    )


_SCRIPT = """<script>
(() => {
  const root = document.getElementById("samples");
  const body = root.querySelector("tbody");
  const rows = Array.from(body.rows);
  const field = (id) => document.getElementById(id);
  const text = (row) => (row._text ??= Array.from(row.querySelectorAll("td.s"))
    .map((cell) => cell.textContent).join(" ").toLowerCase());
  const value = (id) => (field(id) ? field(id).value : "");
  function apply() {
    const p = value("s-protocol"), bench = value("s-bench"), want = value("s-outcome");
    const query = value("s-search").trim().toLowerCase();
    if (p) {  // scored runs: the chosen protocol's order
      root.dataset.p = p;
      rows.sort((a, b) => a.dataset["k" + p] - b.dataset["k" + p]);
    }
    let shown = 0;
    for (const row of rows) {
      const correct = row.dataset["o" + p] === "correct";
      row.hidden = !((!bench || row.dataset.bench === bench)
        && (!want || (want === "correct") === correct)
        && (!query || text(row).includes(query)));
      shown += !row.hidden;
      body.appendChild(row);
    }
    field("s-count").textContent = shown + " of " + rows.length + " answers";
  }
  for (const id of ["s-protocol", "s-bench", "s-outcome", "s-search"]) {
    if (field(id)) field(id).addEventListener("input", apply);
  }
})();
</script>"""
