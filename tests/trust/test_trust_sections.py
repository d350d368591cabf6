"""Report sections and plots: real PNGs from matplotlib, figures computed from outcomes."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from medlens.trust import plots
from medlens.trust.sections import arrays, calibration_section, robustness_section, sanity_section


def _png_size(data: bytes) -> tuple[int, int]:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image.size


def _run(n: int = 200, seed: int = 0, acc: float = 0.7) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0.5, 1.0, n)
    outcome = ["correct" if u < acc else "wrong" for u in rng.uniform(size=n)]
    outcome[:5] = ["unparseable"] * 5
    conf[:5] = np.nan
    return conf, outcome


def test_plots_are_pngs() -> None:
    conf, outcome = _run()
    correct = [o == "correct" for o in outcome[5:]]
    png = plots.reliability_diagram({"raw": (conf[5:], correct)}, n_bins=10)
    assert _png_size(png) == (500, 560)
    rc = plots.risk_coverage_plot({"raw": (conf[5:], correct)}, target_risk=0.05)
    assert _png_size(rc)[0] == 560
    bars = plots.bar_chart({"image": 0.7, "blank": 0.5}, reference=0.55, reference_label="prior")
    assert _png_size(bars)[1] == 360


def test_calibration_section() -> None:
    conf, outcome = _run()
    calibrated = np.where(np.isfinite(conf), np.full_like(conf, 0.7), np.nan)
    section = calibration_section(
        conf, outcome, calibrated=calibrated, threshold=0.75, target_risk=0.05
    )
    data = section.data
    assert data["raw"]["counts"]["unparseable"] == 5 and data["raw"]["n_scored"] == 195
    # A constant 0.7 against ~70 % accuracy is close to calibrated; uniform(.5, 1) is not.
    assert data["calibrated"]["ece"] < data["raw"]["ece"]
    # Every calibrated value is 0.7 < 0.75: nothing is answered.
    assert data["abstention"]["coverage"] == 0.0
    assert set(section.images) == {"reliability", "risk_coverage"}
    encoded = json.dumps(section.to_dict())
    assert "data:image/png;base64," in encoded


def test_sanity_section_reports_reliance_beside_prior() -> None:
    runs = {
        "image": ["correct"] * 7 + ["wrong"] * 3,
        "blank": ["correct"] * 5 + ["wrong"] * 4 + ["unparseable"],
        "swap": ["correct"] * 6 + ["wrong"] * 4,
    }
    section = sanity_section(runs, prior=["correct"] * 6 + ["wrong"] * 4)
    rows = {r["run"]: r for r in section.data["rows"]}
    assert rows["blank"]["image_reliance"] == pytest.approx(0.2)
    assert rows["blank"]["counts"]["unparseable"] == 1
    assert section.data["prior_accuracy"] == pytest.approx(0.6)
    assert section.data["above_prior"] == pytest.approx(0.1)
    assert section.data["mean_image_reliance"] == pytest.approx(0.15)
    _png_size(section.images["accuracy"])


def test_robustness_section_deltas() -> None:
    clean = _run(acc=0.8)
    shifted = {"blur:radius=4": _run(seed=1, acc=0.6), "jpeg:quality=10": _run(seed=2, acc=0.8)}
    section = robustness_section(clean, shifted)
    rows = {r["shift"]: r for r in section.data["rows"]}
    assert rows["blur:radius=4"]["delta_accuracy"] == pytest.approx(
        rows["blur:radius=4"]["accuracy"] - section.data["clean"]["accuracy"]
    )
    assert rows["blur:radius=4"]["delta_accuracy"] < -0.1
    assert rows["jpeg:quality=10"]["unparseable_rate"] == pytest.approx(5 / 200)


def test_arrays_from_answer_records() -> None:
    answers = [{"confidence": {"value": 0.9}}, {"confidence": None}]
    conf, outcome = arrays(answers, ["correct", "unparseable"])
    assert conf[0] == 0.9 and np.isnan(conf[1]) and outcome == ["correct", "unparseable"]
