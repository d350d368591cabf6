"""Abstention: withhold an answer whose confidence is below a threshold, and say why.

The threshold is chosen on a calibration split to meet a target risk (the error rate among
answered questions; Geifman & El-Yaniv, NeurIPS 2017) by ``medlens.trust.calibration``; a
``Threshold`` carries that target so the reason can name it. An unparsed answer is not an
abstention: it is its own outcome, reported as such.
"""

from __future__ import annotations

from medlens.types import Answer, Confidence


class Threshold(float):
    """A confidence threshold that remembers the target risk it was chosen for."""

    target_risk: float | None

    def __new__(cls, value: float, target_risk: float | None = None) -> Threshold:  # noqa: PYI034
        self = super().__new__(cls, value)
        self.target_risk = target_risk
        return self

    def __repr__(self) -> str:
        return f"Threshold({float(self)!r}, target_risk={self.target_risk!r})"


def abstention_reason(
    answer: Answer, confidence: Confidence | None, threshold: float | None
) -> str | None:
    """Why the answer is withheld, or None to give it.

    A model that declined by itself keeps its own reason. Otherwise the answer is withheld
    when its confidence is below ``threshold``, e.g. "confidence 0.41 below threshold 0.73
    (target risk 5%)". Without a threshold, a confidence, or a parsed answer: no abstention.
    """
    if answer.abstained:
        return answer.abstain_reason or "the model declined to answer"
    if threshold is None or confidence is None or not answer.parsed:
        return None
    if confidence.value >= threshold:
        return None
    target = getattr(threshold, "target_risk", None)
    note = f" (target risk {target:.0%})" if target is not None else ""
    origin = f", calibrated by {confidence.profile}" if confidence.calibrated else ""
    return (
        f"confidence {confidence.value:.2f} ({confidence.method}{origin}) below threshold "
        f"{float(threshold):.2f}{note}"
    )
