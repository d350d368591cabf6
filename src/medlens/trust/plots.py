"""Reliability diagrams and risk-coverage curves as PNG bytes, for HTML/JSON reports.

matplotlib loads on first use, with the Agg canvas and no pyplot global state, so plotting is
safe in a server thread. Diagrams follow Guo et al. (ICML 2017, fig. 1): bars of accuracy per
confidence bin against the diagonal, with the count of each bin shown as a histogram below.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from medlens.errors import require
from medlens.trust import metrics


def _figure(width: float, height: float) -> Any:
    require("matplotlib", "bench", "Plotting reliability diagrams")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def reliability_diagram(
    curves: Mapping[str, tuple[ArrayLike, ArrayLike]],
    *,
    n_bins: int = 15,
    adaptive: bool = False,
    title: str = "Reliability",
) -> bytes:
    """A PNG of accuracy against confidence per bin for each named ``(confidence, correct)``
    (e.g. "raw" and "temperature"), with ECE in the legend."""
    figure = _figure(5.0, 5.6)
    top, bottom = figure.subplots(2, 1, height_ratios=(3, 1), sharex=True)
    top.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="perfect")
    width = 1.0 / n_bins
    for i, (name, (confidence, correct)) in enumerate(curves.items()):
        bins = metrics.calibration_bins(confidence, correct, n_bins, adaptive=adaptive)
        used = bins.count > 0
        value = metrics.ece(confidence, correct, n_bins, adaptive=adaptive)
        top.plot(
            bins.confidence[used],
            bins.accuracy[used],
            marker="o",
            label=f"{name} (ECE {value:.3f})",
        )
        centres = (bins.lower + bins.upper) / 2
        offset = (i - (len(curves) - 1) / 2) * width / max(len(curves), 1)
        bottom.bar(centres + offset, bins.count, width=width / max(len(curves), 1), label=name)
    top.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy", title=title)
    top.legend(loc="upper left", fontsize="small")
    bottom.set(xlabel="confidence", ylabel="answers")
    return _png(figure)


def risk_coverage_plot(
    curves: Mapping[str, tuple[ArrayLike, ArrayLike]],
    *,
    target_risk: float | None = None,
    title: str = "Risk-coverage",
) -> bytes:
    """A PNG of error rate among answered questions against coverage for each named
    ``(confidence, correct)``, with AURC in the legend and the target risk as a line."""
    figure = _figure(5.6, 4.2)
    axes = figure.subplots()
    for name, (confidence, correct) in curves.items():
        curve = metrics.risk_coverage(confidence, correct)
        axes.plot(curve.coverage, curve.risk, label=f"{name} (AURC {curve.aurc:.3f})")
    if target_risk is not None:
        axes.axhline(target_risk, color="0.4", linestyle=":", label=f"target {target_risk:.0%}")
    axes.set(xlim=(0, 1), ylim=(0, None), xlabel="coverage", ylabel="risk (error rate)")
    axes.set_title(title)
    axes.legend(fontsize="small")
    return _png(figure)


def bar_chart(
    values: Mapping[str, float],
    *,
    reference: float | None = None,
    reference_label: str = "",
    ylabel: str = "accuracy",
    title: str = "",
) -> bytes:
    """A PNG bar chart of named values, with an optional horizontal reference line (the prior
    baseline in sanity sections, the clean run in robustness sections)."""
    figure = _figure(max(4.0, 0.7 * len(values) + 2), 3.6)
    axes = figure.subplots()
    names: Sequence[str] = list(values)
    axes.bar(range(len(names)), [values[n] for n in names], color="#4c78a8")
    axes.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize="small")
    if reference is not None and np.isfinite(reference):
        axes.axhline(reference, color="#e45756", linestyle="--", label=reference_label)
        axes.legend(fontsize="small")
    axes.set(ylabel=ylabel, title=title)
    return _png(figure)
