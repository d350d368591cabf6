"""The eval table, one source for the text ``medlens eval`` prints and the HTML report's
results tables: per run and protocol, closed accuracy, the protocol's open metric, mean IoU
of boxes and overall with its 95 % interval, each sibling run's change from the model run in
points, n scored / stored; the notes that say what the marks mean; the calibrated runs'
coverage, abstentions and selective accuracy; a warning when compared runs answered
different questions. Then the published figures of the model zoo beside this run's."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from medlens.backends.base import model_note
from medlens.bench.metrics.bootstrap import Estimate
from medlens.bench.protocols import PROTOCOLS
from medlens.bench.protocols.versions import as_scored
from medlens.bench.report.model import RunSummary, Selective, summarize
from medlens.bench.scoring import prompt_notes, run_prompt
from medlens.bench.store import RunInfo, RunStore

DELTA_NOTE = (
    "Δ pts: this run's overall minus the model's under the same protocol, in percentage "
    "points (negative: the baseline or probe scores lower)."
)
N_NOTE = (
    "n: questions the protocol scored / answers stored (a protocol may not count some "
    "questions, e.g. llava-med-ad758b6 drops wrong closed answers)."
)
IOU_NOTE = (
    "IoU: mean intersection over union of the first predicted box with the best reference "
    "box, over grounding questions; their overall is the hit rate at IoU ≥ 0.5."
)


@dataclass(frozen=True)
class TableRow:
    """One line of the eval table: a run under one protocol (estimates are fractions, None
    where the protocol has none)."""

    summary: RunSummary
    protocol: str
    buggy: bool
    """The protocol reproduces known bugs of published code (marked †)."""
    closed: Estimate | None
    open_metric: str
    open: Estimate | None
    iou: float | None
    overall: Estimate | None
    delta_points: float | None
    """Overall minus the model run's, in points (runs beside a model only)."""
    scored: int
    stored: int

    @property
    def run(self) -> RunInfo:
        return self.summary.run

    @property
    def label(self) -> str:
        run = self.run
        return run.label if run.role in ("model", "baseline") else run.model


def table_rows(summaries: Sequence[RunSummary]) -> list[TableRow]:
    """The rows of ``summaries`` (models before the runs beside them, as ``select_runs``
    orders them), each sibling's Δ against the model run of its group and benchmark."""
    rows = []
    reference: dict[tuple[str, str, str], float] = {}
    for summary in summaries:
        run = summary.run
        protocols = {key: as_scored(key) for key in summary.summaries}
        for protocol, protocol_summary in summary.summaries.items():
            headline = protocol_summary.headline
            overall = headline.get("overall")
            scored = overall.n if overall is not None else 0
            key = (run.group_id, run.benchmark, protocol)
            if run.role == "model" and overall is not None and scored:
                reference[key] = overall.value
            delta = (
                100 * (overall.value - reference[key])
                if run.role != "model" and overall is not None and scored and key in reference
                else None
            )
            open_metric = protocols[protocol].open_metric
            rows.append(
                TableRow(
                    summary=summary,
                    protocol=protocol,
                    buggy=getattr(protocols[protocol], "fixed", None) is False,
                    closed=headline.get("closed_accuracy"),
                    open_metric=open_metric,
                    open=headline.get(open_metric),
                    iou=protocol_summary.corpus.get("mean_iou"),
                    overall=overall,
                    delta_points=delta,
                    scored=scored,
                    stored=summary.n_results,
                )
            )
    return rows


def table_notes(rows: Sequence[TableRow]) -> list[str]:
    """What the columns and marks of ``rows`` mean: Δ's sign, n where a protocol scored
    fewer questions than were stored, IoU where there are boxes, † with the corrected rule."""
    notes = ["Scores in %. " + DELTA_NOTE]
    if any(r.scored != r.stored for r in rows):
        notes.append(N_NOTE)
    if any(r.iou is not None for r in rows):
        notes.append(IOU_NOTE)
    for name in sorted({r.protocol for r in rows if r.buggy}):
        notes.append(
            f"†{name}: reproduces known bugs of the published code, as the literature ran "
            f"it; {_corrected(name)} is the corrected rule."
        )
    return notes


def _pct(est: Estimate | None) -> str:
    return "–" if est is None or not est.n else f"{100 * est.value:.1f}"


def run_table(store: RunStore, runs: Sequence[RunInfo]) -> str:
    """The table ``medlens eval`` prints: ``table_rows`` as text, ``table_notes``, the
    calibrated runs' coverage and selective accuracy, the prompt preset of each model run
    (with a note where a protocol comes from another harness), the judge where one graded,
    each benchmark's pixel policy."""
    summaries = [summarize(store, run, run.protocols) for run in runs]
    rows = table_rows(summaries)
    width = max([18, *(len(row.protocol) for row in rows)]) + 1
    header = (
        f"{'benchmark':<12} {'run':<10} {'model':<30} {'protocol':<{width}} {'closed':>6} "
        f"{'open':>6} {'IoU':>5} {'overall':>7} {'95% CI':>13} {'Δ pts':>6} {'n':>9} "
        f"{'time s':>7}"
    )
    lines = [header]
    for row in rows:
        run, overall = row.run, row.overall
        ci = (
            f"[{100 * overall.low:.1f}, {100 * overall.high:.1f}]"
            if overall is not None and overall.n
            else "–"
        )
        delta = "" if row.delta_points is None else f"{row.delta_points:+.1f}"
        iou = "–" if row.iou is None else f"{100 * row.iou:.1f}"
        lines.append(
            f"{run.benchmark:<12} {run.id:<10} {row.label[:30]:<30} "
            f"{(row.protocol + ('†' if row.buggy else '')):<{width}} {_pct(row.closed):>6} "
            f"{_pct(row.open):>6} {iou:>5} {_pct(overall):>7} {ci:>13} {delta:>6} "
            f"{f'{row.scored}/{row.stored}':>9} {run.elapsed_s:>7.1f}"
        )
    lines += table_notes(rows)
    lines += [f"{run.id} prompt: {run_prompt(run)['label']}" for run in runs if run.role == "model"]
    lines += [note for s in summaries for note in prompt_notes(s.run, list(s.summaries))]
    lines += [judge_line(run) for run in runs if run.role == "model" and run.config.get("judge")]
    lines += [calibration_line(s.selective) for s in summaries if s.selective is not None]
    policies = {
        run.benchmark: run.config["pixel_policy"]["pixels"]
        for run in runs
        if run.role == "model" and "pixel_policy" in run.config
    }
    lines += [f"{name}: pixels {pixels}" for name, pixels in policies.items()]
    lines += sorted({note for run in runs if (note := model_note(run.model))})
    lines.append(f"store: {store.path}  (report: medlens report RUN_ID)")
    return "\n".join(lines)


def published_lines(store: RunStore, runs: Sequence[RunInfo]) -> list[str]:
    """For each model run whose model the zoo (medlens.bench.models) has a published figure
    for on this benchmark: the figure beside this run's ``overall`` under the same protocol."""
    from medlens.bench.models import beside_run, find_model

    lines = []
    for run in runs:
        if run.role != "model" or find_model(run.model) is None:
            continue
        headline = summarize(store, run, run.protocols).headline
        lines += [
            f"{run.benchmark} {run.model}: {f['line']}"
            for f in beside_run(run.model, run.benchmark, headline)
        ]
    return lines


def judge_line(run: RunInfo) -> str:
    """Who graded a run's open answers for the judged protocol (``judge_record``)."""
    judge = run.config["judge"]
    where = f" at {judge['endpoint']}" if judge.get("endpoint") else ""
    return (
        f"{run.id} {judge['protocol']} verdicts by {judge['model']} ({judge['backend']}{where}; "
        f"prompt {judge['prompt'].split()[0]})"
    )


# --------------------------------------------------------------------------------------------
# Calibrated runs: coverage, abstentions, selective accuracy
# --------------------------------------------------------------------------------------------


def calibration_line(stats: Selective) -> str:
    accuracy = "– (answered none)" if stats.accuracy is None else f"{100 * stats.accuracy:.1f} %"
    warning = "  WARNING: the profile answers almost nothing" if stats.useless else ""
    return (
        f"{stats.run.id} calibrated by {stats.profile} on {stats.questions} question(s): "
        f"coverage {100 * stats.coverage:.1f} % ({stats.answered} answered, "
        f"{stats.abstained} abstained), selective accuracy {accuracy} "
        f"({stats.protocol}){warning}"
    )


# --------------------------------------------------------------------------------------------
# Compared runs
# --------------------------------------------------------------------------------------------


def sample_set_warnings(runs: Iterable[tuple[RunInfo, Collection[str]]]) -> list[str]:
    """Runs of one benchmark compared side by side must have answered the same questions;
    a 50-question run beside a 451-question one compares nothing. ``runs``: each run with
    the ids of the samples it holds. One warning per benchmark whose runs differ, naming
    the counts and the overlap."""
    by_benchmark: dict[str, list[tuple[str, frozenset[str]]]] = {}
    for run, ids in runs:
        by_benchmark.setdefault(f"{run.benchmark} {run.split}", []).append((run.id, frozenset(ids)))
    warnings = []
    for benchmark, held in by_benchmark.items():
        if len({ids for _, ids in held}) <= 1:
            continue
        common = frozenset.intersection(*(ids for _, ids in held))
        counts = ", ".join(f"{run_id}: {len(ids)}" for run_id, ids in held)
        warnings.append(
            f"the {benchmark} runs answered different questions ({counts}; {len(common)} in "
            "common), so their numbers are not comparable. Compare runs made with the same "
            "--split and --limit."
        )
    return warnings


def _corrected(name: str) -> str:
    """The ``-fixed`` protocol of a buggy one's family (``llava-med-ad758b6`` → ``llava-med-fixed``)."""
    fixed = [p for p in PROTOCOLS if p.endswith("-fixed") and name.startswith(p[: -len("-fixed")])]
    return max(fixed, key=len) if fixed else f"{name}-fixed"
