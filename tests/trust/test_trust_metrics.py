"""Every metric against hand-computed values, and against scikit-learn where it has one."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medlens.errors import DataError
from medlens.trust import metrics

# Four answers, hand-worked below.
P = [0.95, 0.85, 0.65, 0.25]
Y = [True, False, True, False]


def test_ece_equal_width_by_hand() -> None:
    # 5 bins: (0.8,1]: conf .90 acc .5 gap .40 (2 items); (0.6,0.8]: .65 vs 1 gap .35;
    # (0.2,0.4]: .25 vs 0 gap .25  ->  (2*.40 + .35 + .25) / 4 = 0.35
    assert metrics.ece(P, Y, n_bins=5) == pytest.approx(0.35)
    assert metrics.mce(P, Y, n_bins=5) == pytest.approx(0.40)


def test_ece_adaptive_by_hand() -> None:
    # 2 equal-count bins: {.25, .65}: conf .45 acc .5 gap .05; {.85, .95}: conf .9 acc .5 gap .4
    assert metrics.ece(P, Y, n_bins=2, adaptive=True) == pytest.approx(0.225)
    assert metrics.mce(P, Y, n_bins=2, adaptive=True) == pytest.approx(0.40)


def test_equal_width_bin_edges_are_right_closed() -> None:
    bins = metrics.calibration_bins([0.0, 0.3, 0.30001, 1.0], [1, 1, 1, 1], n_bins=10)
    # 0 in the first bin, 0.3 in (0.2, 0.3], 0.30001 in (0.3, 0.4], 1.0 in the last bin
    assert bins.count.tolist() == [1, 0, 1, 1, 0, 0, 0, 0, 0, 1]


def test_perfect_calibration_has_zero_ece() -> None:
    p = [0.5, 0.5, 1.0, 1.0]
    y = [True, False, True, True]
    assert metrics.ece(p, y, n_bins=10) == pytest.approx(0.0)


def test_brier_and_nll_by_hand() -> None:
    assert metrics.brier(P, Y) == pytest.approx((0.05**2 + 0.85**2 + 0.35**2 + 0.25**2) / 4)
    expected = -(math.log(0.95) + math.log(0.15) + math.log(0.65) + math.log(0.75)) / 4
    assert metrics.nll(P, Y) == pytest.approx(expected)


def test_auroc_by_hand_and_degenerate() -> None:
    # Right answers .95 and .65 against wrong .85 and .25: 3 of 4 pairs ordered correctly.
    assert metrics.auroc(P, Y) == pytest.approx(0.75)
    assert metrics.auroc([0.7, 0.7], [True, False]) == pytest.approx(0.5)
    assert math.isnan(metrics.auroc([0.2, 0.9], [True, True]))


def test_risk_coverage_by_hand() -> None:
    curve = metrics.risk_coverage(P, Y)
    assert curve.coverage.tolist() == [0.25, 0.5, 0.75, 1.0]
    assert curve.risk == pytest.approx([0.0, 0.5, 1 / 3, 0.5])
    assert curve.aurc == pytest.approx((0 + 0.5 + 1 / 3 + 0.5) / 4)
    assert metrics.selective_accuracy(P, Y, 0.75) == pytest.approx(2 / 3)
    assert metrics.selective_accuracy(P, Y, 0.5) == pytest.approx(0.5)


def test_risk_coverage_ties_do_not_depend_on_order() -> None:
    a = metrics.risk_coverage([0.8, 0.8, 0.3], [True, False, True])
    b = metrics.risk_coverage([0.8, 0.8, 0.3], [False, True, True])
    assert a.risk == pytest.approx(b.risk)
    assert a.risk == pytest.approx([0.5, 0.5, 1 / 3])


def test_threshold_for_risk_by_hand() -> None:
    strict = metrics.threshold_for_risk(P, Y, 0.0)
    assert (strict.threshold, strict.coverage, strict.risk) == (0.95, 0.25, 0.0)
    loose = metrics.threshold_for_risk(P, Y, 0.4)
    assert loose.threshold == 0.65 and loose.coverage == 0.75
    assert loose.risk == pytest.approx(1 / 3)
    # A threshold keeps equal confidences together: the tie at .8 has risk .5.
    tied = metrics.threshold_for_risk([0.9, 0.8, 0.8], [True, True, False], 0.2)
    assert tied.threshold == 0.9 and tied.coverage == pytest.approx(1 / 3)
    # Nothing meets the target: abstain on everything.
    none = metrics.threshold_for_risk([0.6, 0.4], [False, False], 0.05)
    assert none.coverage == 0.0 and none.threshold > 0.6
    assert metrics.evaluate_threshold([0.6, 0.4], [False, False], none.threshold)[0] == 0.0


def test_evaluate_threshold() -> None:
    coverage, risk = metrics.evaluate_threshold(P, Y, 0.65)
    assert coverage == 0.75 and risk == pytest.approx(1 / 3)


def test_against_scikit_learn() -> None:
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    p = np.round(rng.uniform(0, 1, 500), 2)  # rounding makes ties
    y = rng.uniform(0, 1, 500) < p
    assert metrics.brier(p, y) == pytest.approx(sk.brier_score_loss(y, p))
    assert metrics.nll(p, y) == pytest.approx(sk.log_loss(y, p, labels=[False, True]))
    assert metrics.auroc(p, y) == pytest.approx(sk.roc_auc_score(y, p))


def test_summarize_counts_unparsed_and_abstained_apart() -> None:
    conf = [0.95, 0.85, 0.65, 0.25, float("nan"), 0.3]
    outcome = ["correct", "wrong", "correct", "wrong", "unparseable", "abstained"]
    s = metrics.summarize(conf, outcome, n_bins=5)
    assert s.counts == {"correct": 2, "wrong": 2, "partial": 0, "unparseable": 1, "abstained": 1}
    assert s.accuracy == pytest.approx(2 / 6)
    assert s.answered_accuracy == pytest.approx(0.5)
    assert s.unparseable_rate == pytest.approx(1 / 6) and s.abstention_rate == pytest.approx(1 / 6)
    assert s.n_scored == 4
    assert s.ece == pytest.approx(0.35)  # the unparsed and abstained rows are not in it
    assert s.auroc == pytest.approx(0.75)
    assert s.selective_accuracy["50%"] == pytest.approx(0.5)
    assert s.to_dict()["counts"]["unparseable"] == 1


def test_outcome_of_precedence() -> None:
    assert metrics.outcome_of(parsed=False, abstained=True, correct=False) == "abstained"
    assert metrics.outcome_of(parsed=False, abstained=False, correct=True) == "unparseable"
    assert metrics.outcome_of(parsed=True, abstained=False, correct=True) == "correct"


def test_bad_input_is_a_data_error() -> None:
    with pytest.raises(DataError, match="probabilities"):
        metrics.ece([1.5], [True])
    with pytest.raises(DataError, match="2 confidences but 1"):
        metrics.brier([0.1, 0.2], [True])
    with pytest.raises(DataError, match="Unknown outcome"):
        metrics.summarize([0.5], ["maybe"])


def test_threshold_with_a_risk_bound() -> None:
    pytest.importorskip("scipy")
    p = [0.9] * 50 + [0.5] * 50
    y = [True] * 50 + [True] * 40 + [False] * 10
    # Empirically the whole set meets 10 % risk ...
    assert metrics.threshold_for_risk(p, y, 0.10).coverage == 1.0
    # ... but not with 95 % confidence: 10 errors in 100 has an upper bound above 10 %, while
    # 0 errors in 50 bounds the risk by 1 - (0.05 / 2) ** (1 / 50) = 7.1 % (two thresholds
    # tried, so delta is halved).
    bounded = metrics.threshold_for_risk(p, y, 0.10, delta=0.05)
    assert bounded.threshold == 0.9 and bounded.coverage == 0.5 and bounded.risk == 0.0
    assert metrics.threshold_for_risk(p, y, 0.07, delta=0.05).coverage == 0.0
    with pytest.raises(DataError, match="delta"):
        metrics.threshold_for_risk(p, y, 0.1, delta=1.5)
