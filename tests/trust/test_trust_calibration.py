"""Calibrators, profiles and fingerprints."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from medlens.errors import CalibrationError, UnknownNameError
from medlens.trust import metrics
from medlens.trust.calibration import (
    CALIBRATORS,
    CalibrationProfile,
    Fingerprint,
    FitItem,
    HistogramBinning,
    TemperatureScaling,
    fit_profile,
    profiles_dir,
)
from medlens.trust.confidence import softmax
from medlens.types import Confidence, GenerationOptions

FP = Fingerprint.of(
    model="tiny-qwen", task="closed@1", recipe="xray@1", options=GenerationOptions()
)


def _overconfident_items(n: int = 600, true_t: float = 2.5, seed: int = 0) -> list[FitItem]:
    """Two-candidate answers whose logits are ``true_t`` times too sharp."""
    rng = np.random.default_rng(seed)
    items = []
    for _ in range(n):
        z = rng.normal(0, 2.0, size=2)
        p_true = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        label = "yes" if rng.uniform() < p_true[0] else "no"
        probs = softmax({"yes": true_t * z[0], "no": true_t * z[1]})
        chosen = max(probs, key=probs.__getitem__)
        conf = Confidence(probs[chosen], "candidates", candidate_probs=probs)
        items.append(FitItem(conf, chosen == label, label))
    return items


def test_temperature_scaling_recovers_the_temperature() -> None:
    items = _overconfident_items()
    ts = TemperatureScaling()
    ts.fit(items)
    assert ts.temperature == pytest.approx(2.5, rel=0.2)
    before = [i.confidence.value for i in items]
    after = [ts.calibrate(i.confidence).value for i in items]
    correct = [i.correct for i in items]
    assert metrics.ece(after, correct) < metrics.ece(before, correct) / 2
    assert metrics.nll(after, correct) < metrics.nll(before, correct)


def test_temperature_is_the_nll_minimum() -> None:
    """Independent check: a grid search over T finds the same optimum."""
    items = _overconfident_items(n=200, seed=3)
    ts = TemperatureScaling()
    ts.fit(items)

    def nll(t: float) -> float:
        total = 0.0
        for i in items:
            logits = {k: math.log(v) / t for k, v in i.confidence.candidate_probs.items()}
            total -= math.log(softmax(logits)[str(i.label)])
        return total

    grid = np.exp(np.linspace(math.log(0.5), math.log(10), 2000))
    best = grid[int(np.argmin([nll(t) for t in grid]))]
    assert ts.temperature == pytest.approx(best, rel=0.01)


def test_temperature_on_single_confidences_is_binary() -> None:
    """Sequence or verbalised confidences carry no candidates: the logit is scaled."""
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 1, 500)
    correct = rng.uniform(size=500) < 1 / (1 + np.exp(-logits))
    raw = 1 / (1 + np.exp(-3 * logits))  # three times too sharp
    items = [FitItem(Confidence(float(p), "sequence"), bool(c)) for p, c in zip(raw, correct)]
    ts = TemperatureScaling()
    ts.fit(items)
    assert ts.temperature == pytest.approx(3.0, rel=0.25)
    out = ts.calibrate(Confidence(0.9, "sequence"))
    assert out.value == pytest.approx(1 / (1 + math.exp(-math.log(9) / ts.temperature)))


def test_isotonic_matches_scikit_learn() -> None:
    isotonic = pytest.importorskip("sklearn.isotonic")
    items = _overconfident_items(n=300, seed=5)
    x = [i.confidence.value for i in items]
    y = [float(i.correct) for i in items]
    ref = isotonic.IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(x, y)
    cal = CALIBRATORS.get("isotonic")()
    cal.fit(items)
    probes = [0.5, 0.62, 0.8, 0.97, 1.0]
    got = [
        cal.calibrate(Confidence(p, "candidates", candidate_probs={"a": p, "b": 1 - p})).value
        for p in probes
    ]
    assert got == pytest.approx(ref.predict(probes).tolist())
    # The other candidate shares the rest of the probability.
    c = cal.calibrate(Confidence(0.8, "candidates", candidate_probs={"a": 0.8, "b": 0.2}))
    assert c.candidate_probs["b"] == pytest.approx(1 - c.value)


def test_histogram_binning_by_hand() -> None:
    conf = [0.55, 0.6, 0.65, 0.9, 0.95, 0.99]
    correct = [False, True, False, True, True, True]
    items = [FitItem(Confidence(p, "verbalized"), c) for p, c in zip(conf, correct)]
    hb = HistogramBinning(n_bins=2)
    hb.fit(items)
    assert hb.values == pytest.approx([1 / 3, 1.0])
    assert hb.calibrate(Confidence(0.6, "verbalized")).value == pytest.approx(1 / 3)
    assert hb.calibrate(Confidence(0.92, "verbalized")).value == pytest.approx(1.0)
    assert hb.calibrate(Confidence(0.2, "verbalized")).value == pytest.approx(1 / 3)


def test_profile_round_trip_by_name_and_path(tmp_path: Path) -> None:
    profile = fit_profile("rad-tiny", _overconfident_items(), fingerprint=FP, target_risk=0.1)
    saved = profile.save()
    assert saved == profiles_dir() / "rad-tiny.json"
    loaded = CalibrationProfile.load("rad-tiny")
    assert loaded.to_dict() == profile.to_dict()
    assert loaded.threshold is not None and loaded.threshold.target_risk == 0.1
    assert loaded.fit_stats["after"]["ece"] < loaded.fit_stats["before"]["ece"]
    raw = Confidence(0.99, "candidates", candidate_probs={"yes": 0.99, "no": 0.01})
    applied = loaded.apply(raw)
    assert applied.calibrated and applied.profile == "rad-tiny"
    assert applied.value == pytest.approx(profile.apply(raw).value) and applied.value < 0.99
    path = profile.save(tmp_path / "p.json")
    assert CalibrationProfile.load(path).params == profile.params
    assert json.loads(path.read_text())["fingerprint"]["model"] == "tiny-qwen"


def test_threshold_meets_target_risk_on_fit_split() -> None:
    items = _overconfident_items()
    profile = fit_profile("t", items, fingerprint=FP, target_risk=0.05)
    assert profile.threshold is not None
    after = [profile.apply(i.confidence).value for i in items]
    coverage, risk = metrics.evaluate_threshold(
        after, [i.correct for i in items], profile.threshold
    )
    assert risk <= 0.05 and coverage == pytest.approx(profile.fit_stats["coverage"])
    assert 0 < coverage < 1


def test_fingerprint_mismatch_says_what_differs() -> None:
    profile = fit_profile("rad", _overconfident_items(n=50), fingerprint=FP)
    profile.check(
        Fingerprint.of(
            model="tiny-qwen", task="closed@1", recipe="xray@1", options=GenerationOptions(seed=7)
        )
    )
    other = Fingerprint.of(
        model="tiny-gemma",
        task="closed@1",
        recipe="xray@1",
        options=GenerationOptions(temperature=0.7),
    )
    with pytest.raises(CalibrationError) as info:
        profile.check(other)
    message = str(info.value)
    assert "model 'tiny-gemma' here vs 'tiny-qwen' in the profile" in message
    assert "temperature=0.7 here vs 0.0 in the profile" in message
    assert "recipe" not in message.split("Use the")[0]


def test_model_revision_compared_when_both_known() -> None:
    a = Fingerprint.of(
        model="m", task="t", recipe="r", options=GenerationOptions(), model_revision="abc"
    )
    b = Fingerprint.of(
        model="m", task="t", recipe="r", options=GenerationOptions(), model_revision="def"
    )
    unknown = Fingerprint.of(model="m", task="t", recipe="r", options=GenerationOptions())
    assert a.differences(unknown) == []
    assert a.differences(b) == ["model revision 'def' here vs 'abc' in the profile"]


def test_apply_refuses_another_confidence_method() -> None:
    profile = fit_profile("rad", _overconfident_items(n=50), fingerprint=FP)
    with pytest.raises(CalibrationError, match="fitted on 'candidates'.*'sequence'"):
        profile.apply(Confidence(0.5, "sequence"))
    with pytest.raises(CalibrationError, match="already calibrated"):
        profile.apply(
            profile.apply(Confidence(0.5, "candidates", candidate_probs={"a": 0.5, "b": 0.5}))
        )


def test_fit_errors() -> None:
    with pytest.raises(CalibrationError, match="at least 10"):
        fit_profile("x", _overconfident_items(n=3), fingerprint=FP)
    mixed = _overconfident_items(n=20) + [FitItem(Confidence(0.5, "sequence"), True)]
    with pytest.raises(CalibrationError, match="one method"):
        fit_profile("x", mixed, fingerprint=FP)
    with pytest.raises(CalibrationError, match="valid profile name"):
        fit_profile("bad name!", _overconfident_items(n=20), fingerprint=FP)
    with pytest.raises(UnknownNameError, match="Did you mean 'isotonic'"):
        fit_profile("x", _overconfident_items(n=20), fingerprint=FP, method="isotonc")


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match="No calibration profile"):
        CalibrationProfile.load("nope")
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": 1, "name": "x"}')
    with pytest.raises(CalibrationError, match="malformed"):
        CalibrationProfile.load(bad)
    bad.write_text('{"format": 99}')
    with pytest.raises(CalibrationError, match="format 99"):
        CalibrationProfile.load(bad)


def _coin_items(n: int = 200) -> list[FitItem]:
    """A baseline's answers: confidence near 0.5 and right every other time, the most
    confident one wrong (no threshold reaches a low risk)."""
    items = []
    for i, p in enumerate(np.linspace(0.56, 0.5, n)):
        conf = Confidence(float(p), "candidates", candidate_probs={"yes": p, "no": 1 - p})
        items.append(FitItem(conf, i % 2 == 1, "yes"))
    return items


def test_a_profile_that_answers_almost_nothing_is_refused_with_what_would_work() -> None:
    """Target risk 5 % on a coin-flip model: every threshold answers ~0 %; refusing, with the
    coverage other targets give, is the honest outcome (issue 14: it was saved silently)."""
    with pytest.raises(CalibrationError) as caught:
        fit_profile("useless", _coin_items(), fingerprint=FP, target_risk=0.05)
    message = str(caught.value)
    assert "would answer" in message and "it is useless" in message
    assert "Answering every question has risk" in message and "--min-coverage 0" in message
    assert not (profiles_dir() / "useless.json").exists()


def test_saved_profiles_are_strict_json_even_at_zero_coverage(tmp_path: Path) -> None:
    profile = fit_profile("kept", _coin_items(), fingerprint=FP, target_risk=0.05, min_coverage=0.0)
    assert profile.fit_stats["coverage"] == 0.0 and math.isnan(profile.fit_stats["risk"])
    path = profile.save(tmp_path / "kept.json")

    def refuse(token: str) -> float:
        raise AssertionError(f"{token} is not JSON")

    data = json.loads(path.read_text(), parse_constant=refuse)
    assert data["fit"]["risk"] is None and data["fit"]["coverage"] == 0.0
    assert CalibrationProfile.load(path).threshold_value == profile.threshold_value
    assert metrics.json_ready({"a": [float("inf"), np.float64("nan"), 1.5]}) == {
        "a": [None, None, 1.5]
    }


def test_scoring_fingerprints_ignore_what_scoring_does_not_use() -> None:
    """A scored answer's confidence does not depend on the generation budget, stops or
    sampling, so a profile fitted by scoring applies to any scoring run (eval's 256-token
    budget, ask's task default), and never to a generating one."""
    scored = Fingerprint.of(
        model="m", task="closed@1", recipe="r", options=GenerationOptions(score_candidates=True)
    )
    budget = GenerationOptions(max_new_tokens=32, stop=("\n",), score_candidates=True)
    other = Fingerprint.of(model="m", task="closed@1", recipe="r", options=budget)
    generated = Fingerprint.of(model="m", task="closed@1", recipe="r", options=GenerationOptions())
    assert scored.differences(other) == []
    assert scored.differences(generated) == ["score_candidates=False here vs True in the profile"]
