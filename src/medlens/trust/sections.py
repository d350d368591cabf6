"""Report sections: JSON-ready figures plus PNG images, for the bench report and the server.

Each function takes per-question arrays the run store already holds, the confidence value
(NaN when none) and the protocol outcome ("correct", "wrong", "partial", "unparseable",
"abstained"), and returns a ``Section``. ``arrays`` turns stored answer records into them.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from medlens.trust import metrics, plots

Run = tuple[ArrayLike, Sequence[str]]
"""(confidence per question, outcome per question) of one run."""


@dataclass(frozen=True)
class Section:
    """A titled block of a report: ``data`` is JSON-serialisable, ``images`` are PNG bytes."""

    title: str
    data: Mapping[str, Any]
    images: Mapping[str, bytes] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """``data`` with each image as a ``data:image/png;base64,...`` URI (for HTML/JSON)."""
        return {
            "title": self.title,
            "data": dict(self.data),
            "images": {
                name: "data:image/png;base64," + base64.b64encode(png).decode("ascii")
                for name, png in self.images.items()
            },
        }


def arrays(
    answers: Sequence[Mapping[str, Any]], outcomes: Sequence[str]
) -> tuple[np.ndarray, list[str]]:
    """Confidence values from ``Result.to_json()``-style records (NaN when an answer has no
    confidence), paired with the given outcomes."""
    values = [
        float(a["confidence"]["value"]) if a.get("confidence") else float("nan") for a in answers
    ]
    return np.asarray(values, dtype=float), list(outcomes)


def _scored(confidence: ArrayLike, outcome: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Answered questions with a confidence: (confidence, correct)."""
    p = np.asarray(confidence, dtype=float)
    o = np.asarray(list(outcome), dtype=object)
    keep = np.isin(o, ("correct", "wrong", "partial")) & np.isfinite(p)
    return p[keep], o[keep] == "correct"


def calibration_section(
    confidence: ArrayLike,
    outcome: Sequence[str],
    *,
    calibrated: ArrayLike | None = None,
    threshold: float | None = None,
    target_risk: float | None = None,
    n_bins: int = 15,
    title: str = "Calibration and selective prediction",
) -> Section:
    """Metrics of the raw (and calibrated) confidences, the coverage and risk an abstention
    ``threshold`` gives here, a reliability diagram and a risk-coverage plot."""
    data: dict[str, Any] = {"raw": metrics.summarize(confidence, outcome, n_bins=n_bins).to_dict()}
    curves = {"raw": _scored(confidence, outcome)}
    if calibrated is not None:
        data["calibrated"] = metrics.summarize(calibrated, outcome, n_bins=n_bins).to_dict()
        curves["calibrated"] = _scored(calibrated, outcome)
    if threshold is not None:
        p, y = curves["calibrated" if calibrated is not None else "raw"]
        coverage, risk = metrics.evaluate_threshold(p, y, threshold)
        data["abstention"] = {
            "threshold": float(threshold),
            "target_risk": target_risk,
            "coverage": coverage,
            "risk": risk,
        }
    images = {}
    if any(p.size for p, _ in curves.values()):
        images["reliability"] = plots.reliability_diagram(curves, n_bins=n_bins, title=title)
        images["risk_coverage"] = plots.risk_coverage_plot(
            curves, target_risk=target_risk, title=title
        )
    return Section(title, data, images)


def _accuracy(outcome: Sequence[str]) -> float:
    o = list(outcome)
    return sum(x == "correct" for x in o) / len(o) if o else float("nan")


def sanity_section(
    runs: Mapping[str, Sequence[str]],
    *,
    clean: str = "image",
    prior: Sequence[str] | float | None = None,
    title: str = "Does the image matter?",
) -> Section:
    """Accuracy with the real image (``runs[clean]``) and under each sanity probe (no image,
    blank, noise, another sample's image), the drop from the real image ("image reliance"),
    and the prior baseline beside them. Accuracy counts unparseable and abstained answers as
    not correct; their counts are listed per run."""
    clean_acc = _accuracy(runs[clean])
    prior_acc = prior if isinstance(prior, float) or prior is None else _accuracy(prior)
    rows: list[dict[str, Any]] = []
    for name, outcome in runs.items():
        acc = _accuracy(outcome)
        rows.append(
            {
                "run": name,
                "n": len(outcome),
                "accuracy": acc,
                "image_reliance": clean_acc - acc if name != clean else 0.0,
                "counts": {k: int(sum(x == k for x in outcome)) for k in metrics.OUTCOMES},
            }
        )
    drops = [r["image_reliance"] for r in rows if r["run"] != clean]
    data = {
        "rows": rows,
        "clean": clean,
        "prior_accuracy": prior_acc,
        "above_prior": clean_acc - prior_acc if prior_acc is not None else None,
        "mean_image_reliance": float(np.mean(drops)) if drops else None,
    }
    chart = plots.bar_chart(
        {r["run"]: r["accuracy"] for r in rows},
        reference=prior_acc,
        reference_label="prior baseline",
        title=title,
    )
    return Section(title, data, {"accuracy": chart})


def robustness_section(
    clean: Run,
    shifted: Mapping[str, Run],
    *,
    n_bins: int = 15,
    title: str = "Robustness to controlled shifts",
) -> Section:
    """Per shift (named as ``probe_name`` writes them): accuracy, ECE and AUROC of
    correctness, and their change from the clean run."""
    base = metrics.summarize(*clean, n_bins=n_bins)
    rows: list[dict[str, Any]] = []
    for name, (confidence, outcome) in shifted.items():
        s = metrics.summarize(confidence, outcome, n_bins=n_bins)
        rows.append(
            {
                "shift": name,
                "n": s.n,
                "accuracy": s.accuracy,
                "delta_accuracy": s.accuracy - base.accuracy,
                "ece": s.ece,
                "delta_ece": s.ece - base.ece,
                "auroc": s.auroc,
                "unparseable_rate": s.unparseable_rate,
            }
        )
    data = {"clean": base.to_dict(), "rows": rows}
    chart = plots.bar_chart(
        {r["shift"]: r["accuracy"] for r in rows},
        reference=base.accuracy,
        reference_label="clean",
        title=title,
    )
    return Section(title, data, {"accuracy": chart})
