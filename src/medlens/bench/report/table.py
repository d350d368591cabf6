"""The plain text ``medlens eval`` prints when its runs finish: per run and protocol, closed
accuracy, the protocol's open metric, mean IoU and overall with its 95 % interval, each
sibling run's change from the model run in points, n scored / stored, and the wall time, with
legends for what the marks mean and the calibrated runs' coverage; then the published figures
of the model zoo beside this run's."""

from __future__ import annotations

from collections.abc import Sequence

from medlens.bench.metrics.bootstrap import Estimate
from medlens.bench.protocols import PROTOCOLS
from medlens.bench.report.build import summarize
from medlens.bench.scoring import resolve_protocols
from medlens.bench.store import RunInfo, RunStore


def _pct(est: Estimate | None) -> str:
    return "–" if est is None or not est.n else f"{100 * est.value:.1f}"


def run_table(store: RunStore, runs: Sequence[RunInfo]) -> str:
    """Per run and protocol: closed accuracy, the protocol's open metric, mean IoU of boxes,
    overall with its 95 % interval, the change from the model's overall in points (runs
    beside the model), and ``n`` as scored / stored (a protocol may leave questions out);
    legends for the marks, the calibrated runs' coverage and selective accuracy."""
    header = (
        f"{'benchmark':<12} {'run':<10} {'model':<30} {'protocol':<19} {'closed':>6} "
        f"{'open':>6} {'IoU':>5} {'overall':>7} {'95% CI':>13} {'Δ pts':>6} {'n':>9} "
        f"{'time s':>7}"
    )
    lines = [header]
    reference: dict[tuple[str, str, str], float] = {}
    buggy: set[str] = set()
    mixed_n = False
    calibrated = []
    for run in runs:
        summary = summarize(store, run, run.protocols)
        protocols = resolve_protocols(run.protocols)
        label = run.label if run.role in ("model", "baseline") else run.model
        if run.config.get("calibration"):
            calibrated.append(run)
        for protocol, protocol_summary in summary.summaries.items():
            headline = protocol_summary.headline
            overall = headline.get("overall")
            scored = overall.n if overall is not None else 0
            open_est = headline.get(protocols[protocol].open_metric)
            ci = (
                f"[{100 * overall.low:.1f}, {100 * overall.high:.1f}]"
                if overall and scored
                else "–"
            )
            key = (run.group_id, run.benchmark, protocol)
            if run.role == "model" and overall and scored:
                reference[key] = overall.value
            delta = (
                f"{100 * (overall.value - reference[key]):+.1f}"
                if run.role != "model" and overall and scored and key in reference
                else ""
            )
            mark = ""
            if getattr(protocols[protocol], "fixed", None) is False:
                mark = "†"
                buggy.add(protocol)
            mixed_n |= scored != summary.n_results
            iou = protocol_summary.corpus.get("mean_iou")
            lines.append(
                f"{run.benchmark:<12} {run.id:<10} {label[:30]:<30} "
                f"{(protocol[:18] + mark):<19} {_pct(headline.get('closed_accuracy')):>6} "
                f"{_pct(open_est):>6} {'–' if iou is None else f'{100 * iou:.1f}':>5} "
                f"{_pct(overall):>7} {ci:>13} {delta:>6} "
                f"{f'{scored}/{summary.n_results}':>9} {run.elapsed_s:>7.1f}"
            )
    lines.append(
        "Scores in %. Δ pts: this run's overall minus the model's under the same protocol, "
        "in percentage points (negative: the baseline or probe scores lower)."
    )
    if mixed_n:
        lines.append(
            "n: questions the protocol scored / answers stored (a protocol may not count some "
            "questions, e.g. llava-med-ad758b6 drops wrong closed answers)."
        )
    for name in sorted(buggy):
        lines.append(
            f"†{name}: reproduces known bugs of the published code, as the literature ran "
            f"it; {_corrected(name)} is the corrected rule."
        )
    lines += [calibration_line(store, run) for run in calibrated]
    policies = {
        run.benchmark: run.config["pixel_policy"]["pixels"]
        for run in runs
        if run.role == "model" and "pixel_policy" in run.config
    }
    lines += [f"{name}: pixels {pixels}" for name, pixels in policies.items()]
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


def calibration_line(store: RunStore, run: RunInfo) -> str:
    """A calibrated run's abstentions on the questions its profile applies to (those with a
    calibrated confidence): coverage, how many it withheld, and the accuracy of what it
    answered (selective accuracy, medlens protocol where scored)."""
    results = [
        r for r in store.results(run.id) if (r.answer.get("confidence") or {}).get("calibrated")
    ]
    answered = [r for r in results if not r.answer.get("abstained")]
    protocol = "medlens" if "medlens" in run.protocols else run.protocols[0]
    correct = sum(r.scores.get(protocol, {}).get("outcome") == "correct" for r in answered)
    coverage = len(answered) / len(results) if results else 0.0
    selective = f"{100 * correct / len(answered):.1f} %" if answered else "– (answered none)"
    warning = "  WARNING: the profile answers almost nothing" if coverage < 0.05 else ""
    return (
        f"{run.id} calibrated by {run.config['calibration']} on {len(results)} question(s): "
        f"coverage {100 * coverage:.1f} % ({len(answered)} answered, "
        f"{len(results) - len(answered)} abstained), selective accuracy {selective} "
        f"({protocol}){warning}"
    )


def _corrected(name: str) -> str:
    """The ``-fixed`` protocol of a buggy one's family (``llava-med-ad758b6`` → ``llava-med-fixed``)."""
    fixed = [p for p in PROTOCOLS if p.endswith("-fixed") and name.startswith(p[: -len("-fixed")])]
    return max(fixed, key=len) if fixed else f"{name}-fixed"
