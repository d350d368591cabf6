"""Calibration: fit a map from raw to calibrated confidence, keep it as a named profile.

Three calibrators, registered in ``CALIBRATORS``:

- ``temperature``: temperature scaling (Guo et al., ICML 2017), one parameter ``T`` fitted by
  minimising the negative log-likelihood. With candidate probabilities it rescales them all,
  ``softmax(log p / T)``, and fits on the reference candidate's probability; for a single
  confidence (sequence, verbalised) it rescales the logit of the confidence (binary case).
- ``isotonic``: isotonic regression of correctness on confidence (Zadrozny & Elkan, KDD 2002),
  fitted with scikit-learn, applied by linear interpolation between its knots.
- ``histogram``: histogram binning (Zadrozny & Elkan, ICML 2001) with equal-count bins; the
  calibrated value is the accuracy of the bin.

A ``CalibrationProfile`` is data (JSON): the calibrator's parameters, the confidence method it
was fitted for, the abstention threshold chosen for a target risk, statistics of the split it
was fitted on, and the ``Fingerprint`` of what produced the confidences (model id and revision,
task/prompt template version, preprocessing recipe, decoding settings). Applying a profile
under another fingerprint raises ``CalibrationError`` naming what differs: a temperature
fitted on one model says nothing about another. Named profiles live in
``$MEDLENS_HOME/profiles/NAME.json``.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from medlens.errors import CalibrationError, require
from medlens.registry import Registry
from medlens.trust import metrics
from medlens.trust.abstain import Threshold
from medlens.types import Confidence, GenerationOptions

PROFILE_FORMAT = 1
DECODING_FIELDS = (
    "temperature",
    "top_p",
    "num_samples",
    "max_new_tokens",
    "stop",
    "score_candidates",
    "logprobs",
    "top_logprobs",
)
"""The ``GenerationOptions`` that change the confidence a model gives (the seed does not)."""
MIN_FIT_ITEMS = 10
MIN_COVERAGE = 0.05
"""A profile whose threshold answers fewer of its calibration questions than this is refused
(``fit_profile(min_coverage=...)``): it would abstain on nearly everything, and its risk on
the few answered questions means nothing."""


# --------------------------------------------------------------------------------------------
# Fingerprint
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fingerprint:
    """What produced the confidences a profile was fitted on."""

    model: str
    task: str
    recipe: str
    decoding: tuple[tuple[str, Any], ...]
    model_revision: str | None = None
    """Compared only when both sides know it (the pipeline may not)."""

    @classmethod
    def of(
        cls,
        *,
        model: str,
        task: str,
        recipe: str,
        options: GenerationOptions,
        model_revision: str | None = None,
    ) -> Fingerprint:
        decoding = tuple((name, _plain(getattr(options, name))) for name in DECODING_FIELDS)
        return cls(model, task, recipe, decoding, model_revision)

    def differences(self, other: Fingerprint) -> list[str]:
        """What differs, as "field: here vs profile" phrases (empty when compatible)."""
        out = [
            f"{name} '{getattr(other, name)}' here vs '{getattr(self, name)}' in the profile"
            for name in ("model", "task", "recipe")
            if getattr(self, name) != getattr(other, name)
        ]
        both = bool(self.model_revision and other.model_revision)
        if both and self.model_revision != other.model_revision:
            out.append(
                f"model revision '{other.model_revision}' here vs "
                f"'{self.model_revision}' in the profile"
            )
        mine, theirs = dict(self.decoding), dict(other.decoding)
        names = sorted(set(mine) | set(theirs))
        if mine.get("score_candidates") and theirs.get("score_candidates"):
            names = ["score_candidates"]  # scoring generates nothing: budgets, stops, sampling
        for name in names:
            if mine.get(name) != theirs.get(name):
                out.append(f"{name}={theirs.get(name)!r} here vs {mine.get(name)!r} in the profile")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "model_revision": self.model_revision,
            "task": self.task,
            "recipe": self.recipe,
            "decoding": dict(self.decoding),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fingerprint:
        decoding = tuple((k, _plain(v)) for k, v in dict(data["decoding"]).items())
        return cls(
            str(data["model"]),
            str(data["task"]),
            str(data["recipe"]),
            decoding,
            data.get("model_revision"),
        )


def _plain(value: Any) -> Any:
    """JSON-stable form: tuples and lists compare equal after a round trip."""
    return tuple(value) if isinstance(value, (list, tuple)) else value


# --------------------------------------------------------------------------------------------
# Calibrators
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FitItem:
    """One calibration-split answer: its raw confidence, whether it was right, and the
    reference answer's key in ``confidence.candidate_probs`` when the reference is a candidate
    (temperature scaling then fits on the full candidate distribution)."""

    confidence: Confidence
    correct: bool
    label: str | None = None


class Calibrator(Protocol):
    """Maps a raw confidence to a calibrated one; parameters are plain JSON data."""

    name: ClassVar[str]

    def fit(self, items: Sequence[FitItem]) -> None: ...

    def calibrate(self, confidence: Confidence) -> Confidence: ...

    def params(self) -> dict[str, Any]: ...

    def load_params(self, params: Mapping[str, Any]) -> None: ...


CALIBRATORS: Registry[type[Calibrator]] = Registry("calibrator")
EPS = 1e-12


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, EPS, 1 - EPS)
    return np.asarray(np.log(q) - np.log1p(-q), dtype=float)


def _chosen_key(confidence: Confidence) -> str | None:
    """The candidate whose probability is the confidence (any of equal ones: monotone maps
    keep equal probabilities equal, so the choice does not change the result)."""
    probs = confidence.candidate_probs
    if len(probs) < 2:
        return None
    return min(probs, key=lambda k: abs(probs[k] - confidence.value))


def _with_value(confidence: Confidence, value: float) -> Confidence:
    """Set the chosen answer's probability and rescale the others to share the rest."""
    value = float(min(1.0, max(0.0, value)))
    key = _chosen_key(confidence)
    if key is None:
        return replace(confidence, value=value)
    probs = dict(confidence.candidate_probs)
    rest = sum(v for k, v in probs.items() if k != key)
    scale = (1.0 - value) / rest if rest > 0 else 0.0
    probs = {k: (value if k == key else v * scale) for k, v in probs.items()}
    return replace(confidence, value=value, candidate_probs=probs)


def _golden_min(f: Any, lo: float, hi: float, tol: float = 1e-6) -> float:
    """Minimise a unimodal ``f`` on ``[lo, hi]`` by golden-section search (Kiefer 1953)."""
    ratio = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = f(c), f(d)
    while b - a > tol:
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = f(d)
    return (a + b) / 2


@CALIBRATORS.register("temperature")
class TemperatureScaling:
    """One temperature for all answers (see the module docstring).

    A model that says 0.9 and is right three times in five is cooled to 0.6:

    >>> answers = [FitItem(Confidence(0.9, "sequence"), correct=i % 5 < 3) for i in range(20)]
    >>> scaling = CALIBRATORS.get("temperature")()
    >>> scaling.fit(answers)
    >>> round(scaling.temperature, 2)
    5.42
    >>> round(scaling.calibrate(Confidence(0.9, "sequence")).value, 2)
    0.6
    """

    name: ClassVar[str] = "temperature"

    def __init__(self, temperature: float = 1.0) -> None:
        self.temperature = temperature

    def fit(self, items: Sequence[FitItem]) -> None:
        multi: list[FitItem] = []
        single: list[FitItem] = []
        for item in items:
            known = item.label is not None and item.label in item.confidence.candidate_probs
            (multi if known else single).append(item)
        rows = [
            (
                np.log(np.clip(np.array(list(i.confidence.candidate_probs.values())), EPS, 1)),
                list(i.confidence.candidate_probs).index(str(i.label)),
            )
            for i in multi
        ]
        z = _logit(np.array([i.confidence.value for i in single]))
        y = np.array([i.correct for i in single], dtype=bool)

        def loss(log_beta: float) -> float:
            """NLL at inverse temperature exp(log_beta); convex in beta, hence unimodal."""
            beta = math.exp(log_beta)
            total = 0.0
            for logits, target in rows:
                scaled = beta * logits
                top = scaled.max()
                total += top + math.log(np.exp(scaled - top).sum()) - scaled[target]
            if z.size:
                s = beta * z
                total += float(np.sum(np.logaddexp(0.0, np.where(y, -s, s))))
            return total

        self.temperature = 1.0 / math.exp(_golden_min(loss, math.log(1e-2), math.log(1e2)))

    def calibrate(self, confidence: Confidence) -> Confidence:
        if _chosen_key(confidence) is None:
            value = 1.0 / (
                1.0 + math.exp(-float(_logit(np.array(confidence.value))) / self.temperature)
            )
            return replace(confidence, value=value)
        keys = list(confidence.candidate_probs)
        logits = np.log(np.clip(np.array([confidence.candidate_probs[k] for k in keys]), EPS, 1))
        scaled = logits / self.temperature
        probs = np.exp(scaled - scaled.max())
        probs /= probs.sum()
        new = dict(zip(keys, (float(p) for p in probs)))
        return replace(confidence, value=new[str(_chosen_key(confidence))], candidate_probs=new)

    def params(self) -> dict[str, Any]:
        return {"temperature": self.temperature}

    def load_params(self, params: Mapping[str, Any]) -> None:
        self.temperature = float(params["temperature"])


@CALIBRATORS.register("isotonic")
class IsotonicCalibrator:
    """A monotone step map fitted by scikit-learn's ``IsotonicRegression``.

    >>> seen = [(0.99, 1), (0.95, 1), (0.9, 1), (0.85, 0), (0.8, 1), (0.7, 0), (0.65, 0),
    ...         (0.6, 0), (0.55, 1), (0.5, 0)]
    >>> isotonic = CALIBRATORS.get("isotonic")()
    >>> isotonic.fit([FitItem(Confidence(p, "sequence"), correct=bool(y)) for p, y in seen])
    >>> [isotonic.calibrate(Confidence(p, "sequence")).value for p in (0.9, 0.82, 0.6)]
    [1.0, 0.5, 0.25]
    """

    name: ClassVar[str] = "isotonic"

    def __init__(self) -> None:
        self.x: list[float] = [0.0, 1.0]
        self.y: list[float] = [0.0, 1.0]

    def fit(self, items: Sequence[FitItem]) -> None:
        isotonic = require("sklearn.isotonic", "bench", "Isotonic calibration")
        model = isotonic.IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        model.fit([i.confidence.value for i in items], [float(i.correct) for i in items])
        self.x = [float(v) for v in model.X_thresholds_]
        self.y = [float(v) for v in model.y_thresholds_]

    def calibrate(self, confidence: Confidence) -> Confidence:
        return _with_value(confidence, float(np.interp(confidence.value, self.x, self.y)))

    def params(self) -> dict[str, Any]:
        return {"x": self.x, "y": self.y}

    def load_params(self, params: Mapping[str, Any]) -> None:
        self.x, self.y = [float(v) for v in params["x"]], [float(v) for v in params["y"]]


@CALIBRATORS.register("histogram")
class HistogramBinning:
    """Equal-count bins of confidence; a bin's calibrated value is its accuracy.

    >>> seen = [(0.99, 1), (0.95, 1), (0.9, 1), (0.85, 0), (0.8, 1), (0.7, 0), (0.65, 0),
    ...         (0.6, 0), (0.55, 1), (0.5, 0)]
    >>> binning = CALIBRATORS.get("histogram")(n_bins=2)
    >>> binning.fit([FitItem(Confidence(p, "sequence"), correct=bool(y)) for p, y in seen])
    >>> binning.edges, [binning.calibrate(Confidence(p, "sequence")).value for p in (0.9, 0.6)]
    ([0.75], [0.8, 0.2])
    """

    name: ClassVar[str] = "histogram"

    def __init__(self, n_bins: int = 10) -> None:
        self.n_bins = n_bins
        self.edges: list[float] = []
        self.values: list[float] = []

    def fit(self, items: Sequence[FitItem]) -> None:
        p = np.array([i.confidence.value for i in items])
        y = np.array([i.correct for i in items], dtype=float)
        bins = metrics.calibration_bins(p, y, self.n_bins, adaptive=True)
        used = bins.count > 0
        upper = bins.upper[used]
        # Inner edges halfway between neighbouring bins: values between two bins go to the
        # nearer one.
        self.edges = [float(v) for v in (upper[:-1] + bins.lower[used][1:]) / 2]
        self.values = [float(v) for v in bins.accuracy[used]]

    def calibrate(self, confidence: Confidence) -> Confidence:
        index = int(np.searchsorted(self.edges, confidence.value, side="left"))
        return _with_value(confidence, self.values[index])

    def params(self) -> dict[str, Any]:
        return {"n_bins": self.n_bins, "edges": self.edges, "values": self.values}

    def load_params(self, params: Mapping[str, Any]) -> None:
        self.n_bins = int(params["n_bins"])
        self.edges = [float(v) for v in params["edges"]]
        self.values = [float(v) for v in params["values"]]


def build_calibrator(method: str, params: Mapping[str, Any] | None = None) -> Calibrator:
    calibrator = CALIBRATORS.get(method)()
    if params is not None:
        calibrator.load_params(params)
    return calibrator


# --------------------------------------------------------------------------------------------
# Profiles
# --------------------------------------------------------------------------------------------

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def profiles_dir() -> Path:
    """``$MEDLENS_HOME/profiles`` (``~/.medlens/profiles`` by default)."""
    from medlens.config import home_dir

    return home_dir() / "profiles"


def _profile_path(name_or_path: str | os.PathLike[str]) -> Path:
    """A bare name is a named profile; anything with a separator or ``.json`` is a path."""
    text = os.fspath(name_or_path)
    if os.sep in text or "/" in text or text.endswith(".json"):
        return Path(text)
    if not _NAME.match(text):
        raise CalibrationError(
            f"'{text}' is not a valid profile name: use letters, digits, '.', '_' or '-' "
            "(or give a path ending in .json)."
        )
    return profiles_dir() / f"{text}.json"


@dataclass(frozen=True)
class CalibrationProfile:
    """A fitted calibrator with the fingerprint it belongs to and its abstention threshold."""

    name: str
    fingerprint: Fingerprint
    method: str
    params: Mapping[str, Any]
    confidence_method: str
    target_risk: float | None = None
    threshold_value: float | None = None
    fit_stats: Mapping[str, Any] = field(default_factory=dict)
    """Where and how it was fitted: benchmark, split, n, metrics before/after."""
    created: str = ""
    _calibrator: Calibrator = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_calibrator", build_calibrator(self.method, self.params))

    @property
    def threshold(self) -> Threshold | None:
        """Abstain below this calibrated confidence (it meets ``target_risk`` on the fit split)."""
        if self.threshold_value is None:
            return None
        return Threshold(self.threshold_value, self.target_risk)

    def check(self, fingerprint: Fingerprint) -> None:
        """Raise ``CalibrationError`` unless ``fingerprint`` matches the one fitted under."""
        diffs = self.fingerprint.differences(fingerprint)
        if diffs:
            raise CalibrationError(
                f"Calibration profile '{self.name}' was fitted under another setup: "
                + "; ".join(diffs)
                + ". Use the model, prompt, recipe and decoding settings it was fitted with, "
                "or fit a profile for this setup with `medlens calibrate`."
            )

    def apply(self, confidence: Confidence) -> Confidence:
        """The calibrated confidence (``calibrated=True``, ``profile`` set)."""
        if confidence.calibrated:
            raise CalibrationError(
                f"The confidence was already calibrated by '{confidence.profile}'; "
                "apply one profile only."
            )
        if confidence.method != self.confidence_method:
            raise CalibrationError(
                f"Calibration profile '{self.name}' was fitted on '{self.confidence_method}' "
                f"confidence, but this answer's confidence is '{confidence.method}'. Ask for "
                f"--confidence {self.confidence_method} or fit a profile for "
                f"'{confidence.method}'."
            )
        calibrated = self._calibrator.calibrate(confidence)
        return replace(calibrated, calibrated=True, profile=self.name)

    # ---- persistence ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PROFILE_FORMAT,
            "name": self.name,
            "fingerprint": self.fingerprint.to_dict(),
            "method": self.method,
            "params": dict(self.params),
            "confidence_method": self.confidence_method,
            "target_risk": self.target_risk,
            "threshold": self.threshold_value,
            "fit": dict(self.fit_stats),
            "created": self.created,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CalibrationProfile:
        if data.get("format") != PROFILE_FORMAT:
            raise CalibrationError(
                f"Calibration profile format {data.get('format')!r} is not supported "
                f"(this medlens reads format {PROFILE_FORMAT}); fit the profile again."
            )
        return cls(
            name=str(data["name"]),
            fingerprint=Fingerprint.from_dict(data["fingerprint"]),
            method=str(data["method"]),
            params=dict(data["params"]),
            confidence_method=str(data["confidence_method"]),
            target_risk=data.get("target_risk"),
            threshold_value=data.get("threshold"),
            fit_stats=dict(data.get("fit") or {}),
            created=str(data.get("created", "")),
        )

    def save(self, target: str | os.PathLike[str] | None = None) -> Path:
        """Write the profile as JSON to ``target`` (a path, or a name under the profiles
        folder; by default its own name) and return the path."""
        path = _profile_path(target if target is not None else self.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = metrics.json_ready(self.to_dict())  # risk at coverage 0 is NaN: written as null
        path.write_text(json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")
        return path

    @classmethod
    def load(cls, name_or_path: str | os.PathLike[str]) -> CalibrationProfile:
        """Read a profile by name (``$MEDLENS_HOME/profiles/NAME.json``) or path."""
        path = _profile_path(name_or_path)
        if not path.is_file():
            known = sorted(p.stem for p in profiles_dir().glob("*.json"))
            raise CalibrationError(
                f"No calibration profile at {path}. Fit one with `medlens calibrate --name "
                f"NAME`; named profiles here: {', '.join(known) or 'none'}."
            )
        try:
            data = json.loads(path.read_text())
            return cls.from_dict(data)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise CalibrationError(
                f"Calibration profile {path} is malformed ({exc}); fit it again."
            ) from exc


# --------------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------------


def _metrics_of(confidences: Sequence[float], correct: Sequence[bool]) -> dict[str, float]:
    return {
        "accuracy": float(np.mean(correct)),
        "ece": metrics.ece(confidences, correct),
        "adaptive_ece": metrics.ece(confidences, correct, adaptive=True),
        "brier": metrics.brier(confidences, correct),
        "nll": metrics.nll(confidences, correct),
    }


def fit_profile(
    name: str,
    items: Sequence[FitItem],
    *,
    fingerprint: Fingerprint,
    method: str = "temperature",
    target_risk: float | None = 0.05,
    delta: float | None = None,
    details: Mapping[str, Any] | None = None,
    min_coverage: float = MIN_COVERAGE,
) -> CalibrationProfile:
    """Fit ``method`` on ``items`` (answered questions of a calibration split with their raw
    confidence), choose the abstention threshold for ``target_risk`` on the calibrated
    confidences (with a (1 - ``delta``) risk bound when given: ``metrics.threshold_for_risk``),
    and return the profile. ``details`` (benchmark, split, counts of unparsed
    answers...) is stored with the fit statistics. A threshold that answers less than
    ``min_coverage`` of the questions is refused with the coverage other target risks would
    give (a profile that abstains on everything is useless, not safe); ``min_coverage=0``
    keeps it."""
    _profile_path(name)  # validate the name before the work
    if len(items) < MIN_FIT_ITEMS:
        raise CalibrationError(
            f"Only {len(items)} answered question(s) with a confidence to fit on; calibration "
            f"needs at least {MIN_FIT_ITEMS}. Use a larger calibration split."
        )
    methods = sorted({i.confidence.method for i in items})
    if len(methods) != 1 or any(i.confidence.calibrated for i in items):
        raise CalibrationError(
            f"Calibration needs raw confidences of one method; got {methods}. Choose one "
            "with --confidence."
        )
    calibrator = build_calibrator(method)
    calibrator.fit(items)
    correct = [i.correct for i in items]
    before = [i.confidence.value for i in items]
    after = [calibrator.calibrate(i.confidence).value for i in items]
    stats: dict[str, Any] = dict(details or {})
    stats.update(
        n=len(items), before=_metrics_of(before, correct), after=_metrics_of(after, correct)
    )
    threshold: float | None = None
    if target_risk is not None:
        choice = metrics.threshold_for_risk(after, correct, target_risk, delta=delta)
        if choice.coverage < min_coverage:
            raise CalibrationError(
                f"At target risk {target_risk:.1%} the profile would answer "
                f"{choice.coverage:.1%} of the {len(items)} calibration questions and abstain "
                f"on the rest: it is useless. {_coverage_hint(after, correct, delta)} Raise "
                "--target-risk, use a better model, or pass --min-coverage 0 to save it anyway."
            )
        threshold = choice.threshold
        stats.update(coverage=choice.coverage, risk=choice.risk, delta=delta)
    return CalibrationProfile(
        name=name,
        fingerprint=fingerprint,
        method=calibrator.name,
        params=calibrator.params(),
        confidence_method=methods[0],
        target_risk=target_risk,
        threshold_value=threshold,
        fit_stats=stats,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def _coverage_hint(
    confidences: Sequence[float], correct: Sequence[bool], delta: float | None
) -> str:
    """What other target risks would give on the same questions, e.g. "Answering everything
    has risk 48.9 %; target risk 30 % gives coverage 12.0 %."."""
    everything = 1.0 - float(np.mean(correct))
    parts = [f"Answering every question has risk {everything:.1%}"]
    for target in (0.1, 0.2, 0.3, 0.4):
        if target >= everything:
            break
        choice = metrics.threshold_for_risk(confidences, correct, target, delta=delta)
        if choice.coverage > 0:
            parts.append(f"target risk {target:.0%} gives coverage {choice.coverage:.1%}")
    return "; ".join(parts) + "."
