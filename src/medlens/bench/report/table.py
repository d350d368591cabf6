"""The plain text ``medlens eval`` prints when its runs finish: per run and protocol, closed
accuracy, the protocol's open metric and overall with its 95 % interval, each sibling run's
change from the model run in points, and the wall time; then the published figures of the
model zoo beside this run's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from medlens.bench.report.build import summarize
from medlens.bench.scoring import resolve_protocols
from medlens.bench.store import RunInfo, RunStore


def _pct(est: Mapping[str, Any] | None) -> str:
    return "–" if not est or not est.get("n") else f"{100 * est['value']:.1f}"


def run_table(store: RunStore, runs: Sequence[RunInfo]) -> str:
    """Closed accuracy, the protocol's open metric and overall per run and protocol (overall
    with its 95 % interval and, for the runs beside the model, its change from the model's in
    points), and the wall time of each run."""
    header = (
        f"{'benchmark':<12} {'run':<10} {'model':<30} {'protocol':<18} {'closed':>6} "
        f"{'open':>6} {'overall':>7} {'95% CI':>13} {'Δ':>6} {'n':>5} {'time s':>7}"
    )
    lines = [header]
    reference: dict[tuple[str, str, str], float] = {}
    for run in runs:
        summary = summarize(store, run, run.protocols)
        protocols = resolve_protocols(run.protocols)
        label = run.label if run.role in ("model", "baseline") else run.model
        for protocol, headline in summary.headline.items():
            overall = headline.get("overall") or {}
            open_est = headline.get(protocols[protocol].open_metric)
            ci = (
                f"[{100 * overall['low']:.1f}, {100 * overall['high']:.1f}]"
                if overall.get("n")
                else "–"
            )
            key = (run.group_id, run.benchmark, protocol)
            if run.role == "model" and overall.get("n"):
                reference[key] = overall["value"]
            delta = (
                f"{100 * (overall['value'] - reference[key]):+.1f}"
                if run.role != "model" and overall.get("n") and key in reference
                else ""
            )
            lines.append(
                f"{run.benchmark:<12} {run.id:<10} {label[:30]:<30} {protocol[:18]:<18} "
                f"{_pct(headline.get('closed_accuracy')):>6} {_pct(open_est):>6} "
                f"{_pct(overall):>7} {ci:>13} {delta:>6} {summary.n_results:>5} "
                f"{run.elapsed_s:>7.1f}"
            )
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
