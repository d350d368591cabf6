"""Fitting a calibration profile on a benchmark, and checking it on a held-out split
(``medlens calibrate``; the command only reads flags and prints).

The model answers a *calibration* split through ``medlens.pipeline.run`` (SLAKE: validation;
VQA-RAD: train without the rows that leak the test set), a bench protocol scores each answer,
``trust.calibration.fit_profile`` fits temperature scaling (or isotonic / histogram binning) on
the answered questions and chooses the abstention threshold that meets the target risk there.
``evaluate`` then reports, on a split the profile never saw, accuracy, ECE before and after,
and the coverage and risk the threshold gives.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from medlens.bench.plan import fit_prior, prior_training_rows
from medlens.bench.samples import Sample
from medlens.bench.scoring import resolve_protocols, sample_as_asked
from medlens.bench.treatments import item_of
from medlens.errors import ConfigError
from medlens.normalize import normalize_answer
from medlens.trust.calibration import MIN_COVERAGE
from medlens.trust.metrics import json_ready
from medlens.types import AnswerKind, GenerationOptions

if TYPE_CHECKING:
    from medlens.backends.base import Backend
    from medlens.bench.benchmark import Benchmark
    from medlens.bench.protocols import ScoringProtocol
    from medlens.pipeline import Result
    from medlens.trust.calibration import CalibrationProfile, FitItem


class Selection(Protocol):
    """Which questions calibrate: of one kind, train rows without what leaks the test set,
    the first ``limit`` of each split."""

    @property
    def data_dir(self) -> str | None: ...

    @property
    def kind(self) -> str: ...

    @property
    def limit(self) -> int | None: ...

    @property
    def leakage(self) -> Literal["images", "questions"]: ...


@dataclass(frozen=True)
class CalibrationSetup:
    """What ``medlens calibrate`` was asked to do (``Selection`` and how to fit)."""

    benchmark: str
    name: str
    model: str
    backend: str | None = None
    split: str | None = None
    """None: validation where the benchmark has one, else train."""
    kind: AnswerKind = "closed"
    leakage: Literal["images", "questions"] = "images"
    limit: int | None = None
    data_dir: str | None = None
    method: str = "temperature"
    target_risk: float = 0.05
    min_coverage: float = MIN_COVERAGE
    """Refuse a threshold that answers less than this share of the calibration questions."""
    delta: float | None = None
    confidence: str = "auto"
    protocol: str = "medlens"
    batch_size: int = 8
    deidentify: bool = True
    deid_ocr: str | None = None
    """OCR redaction of pixels as ``medlens eval`` takes it (``spec.pixel_policy``)."""
    options: GenerationOptions | None = None
    prompt: str | None = None
    """Prompt preset (``medlens.tasks.presets``); the profile's fingerprint names it."""

    candidate_scoring: bool = True
    """Closed/choice questions score their candidates where the model can, as ``medlens
    ask`` does (so the profile applies to ``ask``'s answers); False generates them."""
    progress: bool = False
    seed: int = 0
    """Seed of the random baseline."""
    evaluate: str | None = None
    """Report the profile on this split (one it was not fitted on)."""
    out: str | None = None
    """Write calibration.json and the PNG plots of the evaluation here."""


def calibrate(
    setup: CalibrationSetup, model_backend: Callable[[], Backend] | None = None
) -> dict[str, Any]:
    """Fit and save the profile ``setup`` describes; return its summary (the profile, where
    it was saved and, with ``setup.evaluate``, its numbers on that split). ``model_backend``
    builds the model's backend (default: ``load_backend(setup.model, setup.backend)``)."""
    from medlens import pipeline
    from medlens.bench.benchmarks import get_benchmark
    from medlens.trust.calibration import CALIBRATORS, fit_profile

    bench = get_benchmark(setup.benchmark)
    CALIBRATORS.get(setup.method)  # unknown names fail before any model loads
    (protocol,) = resolve_protocols([setup.protocol]).values()
    split = setup.split or ("validation" if "validation" in bench.splits else "train")
    if split == setup.evaluate:
        raise ConfigError(
            f"Calibrating and evaluating on the same split ('{split}') would report fitted "
            "numbers as if they were held out; evaluate on another split."
        )
    calibration_set, prior_rows = calibration_samples(bench, split, setup)
    backend = calibration_backend(setup, prior_rows, model_backend)
    try:
        fit_results = answers(calibration_set, backend, setup, bench)
        fingerprints = {pipeline.fingerprint_of(r.prepared, r.generation) for r, _ in fit_results}
        if len(fingerprints) != 1:
            raise ConfigError(
                "The calibration questions were asked under several setups (recipes or "
                "decoding); calibrate one kind of study at a time, e.g. with --kind."
            )
        items, counts = fit_items(fit_results, protocol)
        details: dict[str, Any] = {
            "benchmark": bench.name,
            "split": split,
            "kind": setup.kind,
            "protocol": f"{protocol.name}@{protocol.version}",
            "questions": len(fit_results),
            "outcomes": counts,
        }
        if split == "train":
            details["leakage_excluded"] = setup.leakage
        profile = fit_profile(
            setup.name,
            items,
            fingerprint=fingerprints.pop(),
            method=setup.method,
            target_risk=setup.target_risk,
            delta=setup.delta,
            details=details,
            min_coverage=setup.min_coverage,
        )
        path = profile.save()
        summary: dict[str, Any] = {"profile": profile.to_dict(), "path": str(path)}
        if setup.evaluate:
            test = _limit(_of_kind(bench.load(setup.evaluate, setup.data_dir), setup.kind), setup)
            summary["evaluation"] = evaluate_profile(
                profile, answers(test, backend, setup, bench), protocol, setup.evaluate, setup.out
            )
    finally:
        backend.close()
    return summary


def _of_kind(samples: Sequence[Sample], kind: str) -> list[Sample]:
    return [s for s in samples if s.kind == kind]


def _limit(samples: list[Sample], selection: Selection) -> list[Sample]:
    return samples[: selection.limit] if selection.limit else samples


def calibration_samples(
    bench: Benchmark, split: str, selection: Selection
) -> tuple[list[Sample], list[Sample]]:
    """The calibration questions, and the rows a ``prior`` baseline may be fitted on (train,
    minus test-question leakage, minus the calibration questions themselves)."""
    has_train = "train" in bench.splits
    train = bench.load("train", selection.data_dir) if has_train else []
    needs_test = "test" in bench.splits and bench.leaks_into_test and has_train
    test = bench.load("test", selection.data_dir) if needs_test else []
    samples: Sequence[Sample] = train if split == "train" else bench.load(split, selection.data_dir)
    if split == "train":
        samples = bench.exclude_leakage(samples, test, mode=selection.leakage)
    chosen = _limit(_of_kind(samples, selection.kind), selection)
    ids = {s.id for s in chosen}
    prior = [s for s in prior_training_rows(bench, train, test) if s.id not in ids] if train else []
    return chosen, prior


def calibration_backend(
    setup: CalibrationSetup, prior_rows: list[Sample], model_backend: Callable[[], Backend] | None
) -> Backend:
    """The model's backend; a ``prior``/``no-image`` baseline learns its table from
    ``prior_rows``, never from the questions it is calibrated or tested on."""
    from medlens.backends.base import BACKENDS, BASELINES, infer_backend_name, load_backend

    name = setup.backend or infer_backend_name(setup.model)
    if name not in BASELINES:
        return model_backend() if model_backend else load_backend(setup.model, backend=name)
    if name == "random":
        return BACKENDS.get(name)(name, seed=setup.seed)
    return BACKENDS.get(name)(name, prior=fit_prior(prior_rows) if prior_rows else None)


def answers(
    samples: list[Sample], backend: Backend, setup: CalibrationSetup, bench: Benchmark
) -> list[tuple[Result, Sample]]:
    """Each sample's pipeline result (raw confidence, no profile), in order, under the pixel
    policy ``medlens eval`` uses for ``bench`` (a publisher-de-identified release keeps its
    pixels as published: no OCR), with a progress bar."""
    import sys

    from tqdm import tqdm

    from medlens import pipeline
    from medlens.bench.spec import EvalSpec, pixel_policy

    spec = EvalSpec(
        (bench.name,), setup.model, deidentify=setup.deidentify, deid_ocr=setup.deid_ocr
    )
    deidentify, _ = pixel_policy(spec, bench)
    by_id = {s.id: s for s in samples}
    results = pipeline.run(
        [item_of(s) for s in samples],
        backend,
        batch_size=setup.batch_size,
        confidence_method=setup.confidence,
        deidentify=deidentify,
        options=setup.options,
        prompt=setup.prompt,
        candidate_scoring=setup.candidate_scoring,
    )
    bar = tqdm(
        results,
        total=len(samples),
        desc=f"calibrate {bench.name} · {backend.model_id}",
        unit="q",
        file=sys.stderr,
        disable=not setup.progress,
        dynamic_ncols=True,
    )
    return [(r, by_id[r.request.id]) for r in bar]


def _outcome(result: Result, sample: Sample, protocol: ScoringProtocol) -> str:
    return str(
        protocol.score_answer(sample_as_asked(sample, result.prepared), result.answer).outcome
    )


def fit_items(
    results: list[tuple[Result, Sample]], protocol: ScoringProtocol
) -> tuple[list[FitItem], dict[str, int]]:
    """Answered questions with a confidence, as ``FitItem``s, and every outcome's count
    (unparseable and abstained answers are counted, not fitted on)."""
    from collections import Counter

    from medlens.trust.calibration import FitItem

    items = []
    counts: Counter[str] = Counter()
    for result, sample in results:
        outcome = _outcome(result, sample, protocol)
        counts[outcome] += 1
        confidence = result.answer.confidence
        if outcome in ("correct", "wrong", "partial") and confidence is not None:
            refs = {normalize_answer(a) for a in sample.answers}
            label = next(
                (k for k in confidence.candidate_probs if normalize_answer(k) in refs), None
            )
            items.append(FitItem(confidence, outcome == "correct", label))
    return items, dict(counts)


def evaluate_profile(
    profile: CalibrationProfile,
    results: list[tuple[Result, Sample]],
    protocol: ScoringProtocol,
    split: str,
    out: str | None = None,
) -> dict[str, Any]:
    """Raw and calibrated metrics on ``results`` (a split the profile was not fitted on), and
    the coverage and risk of the profile's threshold there; writes plots into ``out``."""
    from medlens import pipeline
    from medlens.trust.sections import calibration_section

    if results:
        first = results[0][0]
        profile.check(pipeline.fingerprint_of(first.prepared, first.generation))
    outcomes = [_outcome(r, s, protocol) for r, s in results]
    confidences = [r.answer.confidence for r, _ in results]
    raw = [c.value if c is not None else math.nan for c in confidences]
    calibrated = [profile.apply(c).value if c is not None else math.nan for c in confidences]
    section = calibration_section(
        raw,
        outcomes,
        calibrated=calibrated,
        threshold=profile.threshold,
        target_risk=profile.target_risk,
        title=f"{profile.name} on {split}",
    )
    if out:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        data = json_ready(dict(section.data))
        (folder / "calibration.json").write_text(json.dumps(data, indent=2, allow_nan=False))
        for name, png in section.images.items():
            (folder / f"{name}.png").write_bytes(png)
    return {"split": split, **dict(section.data)}
