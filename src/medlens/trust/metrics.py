"""Calibration and selective-prediction metrics, in plain numpy.

Each metric takes ``confidence`` (the probability the answer claims, in [0, 1]) and
``correct`` (whether it was right) for *answered* questions. ``summarize`` takes one outcome
per question instead, because an unparseable answer and an abstention are classes of their own
(never silently a wrong or a right answer): they are counted and reported beside the metrics,
which are computed over the answered questions only.

Definitions and sources:

- ECE, equal-width bins ``((m-1)/M, m/M]``: Guo et al., "On Calibration of Modern Neural
  Networks", ICML 2017, eq. 3; MCE is the largest bin gap (ibid.).
- Adaptive ECE, equal-mass bins: Nixon et al., "Measuring Calibration in Deep Learning",
  CVPR-W 2019.
- Brier score and NLL of the top-label confidence against correctness (Brier 1950); these equal
  scikit-learn's ``brier_score_loss(correct, confidence)`` and ``log_loss``.
- AUROC of correctness: Mann-Whitney U with average ranks for ties (= ``roc_auc_score``).
- Risk-coverage curve and its area (AURC): Geifman & El-Yaniv, "Selective Classification for
  Deep Neural Networks", NeurIPS 2017; Geifman et al., ICLR 2019. Ties in confidence are
  resolved by expectation over random order, so the curve does not depend on input order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from medlens.errors import DataError, require

Outcome = Literal["correct", "wrong", "partial", "unparseable", "abstained"]
OUTCOMES: tuple[Outcome, ...] = ("correct", "wrong", "partial", "unparseable", "abstained")
"""The outcome vocabulary of ``medlens.bench.protocols``; "partial" (an open answer with some
overlap) is answered but not correct."""


def outcome_of(*, parsed: bool, abstained: bool, correct: bool) -> Outcome:
    """The class of one answer: an abstention wins over parsing, parsing over correctness."""
    if abstained:
        return "abstained"
    if not parsed:
        return "unparseable"
    return "correct" if correct else "wrong"


def _arrays(confidence: ArrayLike, correct: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(confidence, dtype=float).reshape(-1)
    y = np.asarray(correct, dtype=bool).reshape(-1)
    if p.shape != y.shape:
        raise DataError(f"{p.size} confidences but {y.size} correctness flags; pass one each.")
    if p.size and (not np.all(np.isfinite(p)) or p.min() < 0.0 or p.max() > 1.0):
        raise DataError("Confidences must be finite probabilities in [0, 1].")
    return p, y


# --------------------------------------------------------------------------------------------
# Binned calibration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bins:
    """Per-bin statistics of a reliability diagram; empty bins have count 0 and NaN means."""

    lower: np.ndarray
    upper: np.ndarray
    count: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray

    @property
    def gap(self) -> np.ndarray:
        return np.asarray(np.abs(self.accuracy - self.confidence), dtype=float)


def calibration_bins(
    confidence: ArrayLike, correct: ArrayLike, n_bins: int = 15, *, adaptive: bool = False
) -> Bins:
    """Bin answers by confidence: equal-width ``((m-1)/M, m/M]`` (0 falls in the first bin)
    or, with ``adaptive``, ``M`` bins of (nearly) equal count in confidence order."""
    p, y = _arrays(confidence, correct)
    if n_bins < 1:
        raise DataError(f"n_bins must be at least 1, not {n_bins}.")
    if adaptive:
        order = np.argsort(p, kind="stable")
        groups = [g for g in np.array_split(order, min(n_bins, max(p.size, 1))) if g.size]
        index = np.empty(p.size, dtype=int)
        for b, g in enumerate(groups):
            index[g] = b
        n = len(groups)
        lower = np.array([p[g].min() for g in groups]) if groups else np.zeros(0)
        upper = np.array([p[g].max() for g in groups]) if groups else np.zeros(0)
    else:
        edges = np.linspace(0.0, 1.0, n_bins + 1)
        index = np.searchsorted(edges[1:-1], p, side="left")
        n = n_bins
        lower, upper = edges[:-1], edges[1:]
    count = np.bincount(index, minlength=n).astype(int)
    sums_p = np.bincount(index, weights=p, minlength=n)
    sums_y = np.bincount(index, weights=y.astype(float), minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.where(count > 0, sums_p / count, np.nan)
        mean_y = np.where(count > 0, sums_y / count, np.nan)
    return Bins(lower, upper, count, mean_p, mean_y)


def ece(
    confidence: ArrayLike, correct: ArrayLike, n_bins: int = 15, *, adaptive: bool = False
) -> float:
    """Expected calibration error: the count-weighted mean |accuracy - confidence| of bins."""
    bins = calibration_bins(confidence, correct, n_bins, adaptive=adaptive)
    total = bins.count.sum()
    if total == 0:
        return float("nan")
    used = bins.count > 0
    return float(np.sum(bins.count[used] * bins.gap[used]) / total)


def mce(
    confidence: ArrayLike, correct: ArrayLike, n_bins: int = 15, *, adaptive: bool = False
) -> float:
    """Maximum calibration error: the largest |accuracy - confidence| of a non-empty bin."""
    bins = calibration_bins(confidence, correct, n_bins, adaptive=adaptive)
    used = bins.count > 0
    return float(bins.gap[used].max()) if used.any() else float("nan")


# --------------------------------------------------------------------------------------------
# Proper scores and discrimination
# --------------------------------------------------------------------------------------------


def brier(confidence: ArrayLike, correct: ArrayLike) -> float:
    """Mean squared difference between confidence and correctness (0 is perfect)."""
    p, y = _arrays(confidence, correct)
    return float(np.mean((p - y) ** 2)) if p.size else float("nan")


def nll(confidence: ArrayLike, correct: ArrayLike, eps: float = 1e-15) -> float:
    """Mean negative log-likelihood of correctness under the confidence (natural log);
    probabilities are clipped to ``[eps, 1 - eps]`` as scikit-learn's ``log_loss`` does."""
    p, y = _arrays(confidence, correct)
    if not p.size:
        return float("nan")
    q = np.clip(p, eps, 1 - eps)
    return float(-np.mean(np.where(y, np.log(q), np.log1p(-q))))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their ranks."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    ranks = np.empty(values.size, dtype=float)
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], values.size]
    for s, e in zip(starts, ends):
        ranks[order[s:e]] = (s + 1 + e) / 2.0
    return ranks


def auroc(confidence: ArrayLike, correct: ArrayLike) -> float:
    """Probability that a right answer has higher confidence than a wrong one (ties count
    half); NaN when all answers are right or all wrong."""
    p, y = _arrays(confidence, correct)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(p)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


# --------------------------------------------------------------------------------------------
# Selective prediction
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RiskCoverage:
    """The risk (error rate among answered) when answering the ``k`` most confident
    questions, for ``k = 1..n``; ``threshold[k-1]`` is the confidence of the k-th."""

    coverage: np.ndarray
    risk: np.ndarray
    threshold: np.ndarray

    @property
    def aurc(self) -> float:
        """Area under the risk-coverage curve (mean risk over all coverages; lower is better)."""
        return float(np.mean(self.risk)) if self.risk.size else float("nan")

    def at_coverage(self, coverage: float) -> float:
        """Risk when answering the ``ceil(coverage * n)`` most confident questions."""
        n = self.risk.size
        if n == 0:
            return float("nan")
        if not 0.0 < coverage <= 1.0:
            raise DataError(f"Coverage must be in (0, 1], not {coverage}.")
        k = max(1, int(np.ceil(coverage * n - 1e-9)))
        return float(self.risk[k - 1])


def risk_coverage(confidence: ArrayLike, correct: ArrayLike) -> RiskCoverage:
    """Risk at every coverage, most confident first. Within a group of equal confidences the
    expected number of errors grows linearly (random order), so ties are handled exactly."""
    p, y = _arrays(confidence, correct)
    n = p.size
    order = np.argsort(-p, kind="stable")
    ps, errors = p[order], (~y[order]).astype(float)
    starts = np.flatnonzero(np.r_[True, ps[1:] != ps[:-1]]) if n else np.zeros(0, dtype=int)
    sizes = np.diff(np.r_[starts, n])
    group_errors = np.add.reduceat(errors, starts) if n else np.zeros(0)
    before = np.r_[0.0, np.cumsum(group_errors)[:-1]]
    group = np.repeat(np.arange(starts.size), sizes)
    k = np.arange(1, n + 1)
    expected = before[group] + (k - starts[group]) * group_errors[group] / sizes[group]
    return RiskCoverage(coverage=k / max(n, 1), risk=expected / k, threshold=ps)


def aurc(confidence: ArrayLike, correct: ArrayLike) -> float:
    """Area under the risk-coverage curve."""
    return risk_coverage(confidence, correct).aurc


def selective_accuracy(confidence: ArrayLike, correct: ArrayLike, coverage: float) -> float:
    """Accuracy on the ``coverage`` fraction of questions the model is most confident about."""
    return 1.0 - risk_coverage(confidence, correct).at_coverage(coverage)


@dataclass(frozen=True)
class ThresholdChoice:
    """An abstention threshold and what it gives on the data it was chosen on."""

    threshold: float
    target_risk: float
    coverage: float
    risk: float
    n: int


def threshold_for_risk(
    confidence: ArrayLike, correct: ArrayLike, target_risk: float, *, delta: float | None = None
) -> ThresholdChoice:
    """The lowest confidence threshold (largest coverage) whose answered questions, those with
    confidence >= threshold, have an error rate <= ``target_risk``. When no threshold meets
    the target, the threshold lies just above the highest confidence: abstain on everything.

    Without ``delta`` the rule is empirical: one lucky confident answer can "meet" the target.
    With ``delta``, the one-sided Clopper-Pearson upper bound of the risk must meet it, with a
    union bound over the candidate thresholds, so that the true risk at the chosen threshold
    is <= ``target_risk`` with probability >= 1 - delta (the guarantee of Geifman & El-Yaniv's
    SGR, NeurIPS 2017, by a simpler correction). Either way, report the coverage and risk it
    gives on a separate test split.
    """
    p, y = _arrays(confidence, correct)
    if not 0.0 <= target_risk < 1.0:
        raise DataError(f"Target risk must be in [0, 1), not {target_risk}.")
    if p.size == 0:
        raise DataError("Cannot choose an abstention threshold without any answered question.")
    if delta is not None and not 0.0 < delta < 1.0:
        raise DataError(f"delta must be in (0, 1), not {delta}.")
    curve = risk_coverage(p, y)
    # Only the ends of tie groups are reachable: a threshold keeps a tie group whole.
    ends = np.flatnonzero(np.r_[curve.threshold[1:] != curve.threshold[:-1], True])
    risk = curve.risk[ends]
    if delta is not None:
        risk = _risk_upper_bound(np.rint(risk * (ends + 1)), ends + 1, delta / ends.size)
    ok = ends[risk <= target_risk + 1e-12]
    if ok.size == 0:
        top = float(np.nextafter(p.max(), np.inf))
        return ThresholdChoice(top, target_risk, 0.0, float("nan"), int(p.size))
    k = int(ok.max())
    return ThresholdChoice(
        float(curve.threshold[k]),
        target_risk,
        float(curve.coverage[k]),
        float(curve.risk[k]),
        int(p.size),
    )


def _risk_upper_bound(errors: np.ndarray, n: np.ndarray, delta: float) -> np.ndarray:
    """One-sided Clopper-Pearson (1 - delta) upper bounds of error rates ``errors / n``."""
    stats: Any = require("scipy.stats", "bench", "A risk bound for the abstention threshold")
    bound = stats.beta.ppf(1.0 - delta, errors + 1, np.maximum(n - errors, 1))
    return np.where(errors >= n, 1.0, bound)


def evaluate_threshold(
    confidence: ArrayLike, correct: ArrayLike, threshold: float
) -> tuple[float, float]:
    """(coverage, risk) of answering only where confidence >= ``threshold``; risk is NaN when
    nothing is answered."""
    p, y = _arrays(confidence, correct)
    keep = p >= threshold
    if not p.size:
        return float("nan"), float("nan")
    coverage = float(keep.mean())
    risk = float((~y[keep]).mean()) if keep.any() else float("nan")
    return coverage, risk


# --------------------------------------------------------------------------------------------
# One summary with explicit answer classes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrustSummary:
    """Accuracy, calibration and selective-prediction figures of one run.

    ``accuracy`` is correct / all questions; ``answered_accuracy`` is correct / answered
    (correct, partial or wrong). Unparseable and abstained answers are counted in ``counts`` and never enter the
    calibration metrics, which use the answered questions that carry a confidence
    (``n_scored``).
    """

    n: int
    counts: Mapping[str, int]
    accuracy: float
    answered_accuracy: float
    unparseable_rate: float
    abstention_rate: float
    n_scored: int
    ece: float
    adaptive_ece: float
    mce: float
    brier: float
    nll: float
    auroc: float
    aurc: float
    selective_accuracy: Mapping[str, float] = field(default_factory=dict)
    """Accuracy at fixed coverage, keyed "50%", "80%", ..."""
    n_bins: int = 15

    def to_dict(self) -> dict[str, Any]:
        return {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in asdict(self).items()}


def _ratio(a: int, b: int) -> float:
    return a / b if b else float("nan")


def summarize(
    confidence: ArrayLike,
    outcome: Sequence[str],
    *,
    n_bins: int = 15,
    coverages: Sequence[float] = (0.5, 0.8, 0.9),
) -> TrustSummary:
    """All metrics of one run. ``confidence`` may hold NaN where an answer has none (it is
    then left out of the calibration metrics, still counted in accuracy)."""
    p = np.asarray(confidence, dtype=float).reshape(-1)
    o = np.asarray(list(outcome), dtype=object)
    if p.size != o.size:
        raise DataError(f"{p.size} confidences but {o.size} outcomes; pass one each.")
    unknown = sorted({str(x) for x in o} - set(OUTCOMES))
    if unknown:
        raise DataError(f"Unknown outcome(s) {unknown}; expected one of {list(OUTCOMES)}.")
    counts: dict[str, int] = {name: int(np.sum(o == name)) for name in OUTCOMES}
    n = int(o.size)
    answered = (o == "correct") | (o == "wrong") | (o == "partial")
    scored = answered & np.isfinite(p)
    ps, ys = p[scored], (o[scored] == "correct")
    sel = {
        f"{c:.0%}": selective_accuracy(ps, ys, c) if ps.size else float("nan") for c in coverages
    }
    return TrustSummary(
        n=n,
        counts=counts,
        accuracy=_ratio(counts["correct"], n),
        answered_accuracy=_ratio(counts["correct"], int(answered.sum())),
        unparseable_rate=_ratio(counts["unparseable"], n),
        abstention_rate=_ratio(counts["abstained"], n),
        n_scored=int(scored.sum()),
        ece=ece(ps, ys, n_bins),
        adaptive_ece=ece(ps, ys, n_bins, adaptive=True),
        mce=mce(ps, ys, n_bins),
        brier=brier(ps, ys),
        nll=nll(ps, ys),
        auroc=auroc(ps, ys),
        aurc=aurc(ps, ys),
        selective_accuracy=sel,
        n_bins=n_bins,
    )


def json_ready(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None, so that ``json.dumps``
    writes valid JSON (RFC 8259 has no NaN; Python's ``NaN`` token breaks every other
    reader). Containers are copied; dataclass-free plain data only."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, np.generic):
        return json_ready(value.item())
    return value
