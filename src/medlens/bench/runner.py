"""Evaluation runs: benchmark samples → ``pipeline.run`` → scores → the run store.

The runner holds no pipeline logic of its own: it turns each ``Sample`` into a
``pipeline.Item``, streams the items through ``medlens.pipeline.run`` with the run store as
generation cache, scores every ``Result`` under each requested protocol and commits the batch.

- **Resumable.** Results are committed one batch at a time; ``resume`` skips the sample ids a
  run already holds, so a run killed at any point (``kill -9``) finishes without losing or
  duplicating a sample.
- **Baselines beside the model.** ``prior`` (most frequent answer per question type and
  category, fitted on the benchmark's *train* split), ``no-image`` and ``random`` run in the
  same evaluation as sibling runs sharing a group id, so every report shows them next to the
  model (the "blind" and "prior" baselines of Goyal et al., 2017, VQA v2, and of MedVQA audits).
- **Batch-size invariant.** Nothing here depends on how samples fall into batches: the
  same samples in the same order get the same request ids, keys and scores.
- **``limit``** keeps the first N samples in the release's own order (the loader's order), the
  same subset as lmms-eval's ``--limit``; it is deterministic and part of the run's identity.
- **Pixels as published.** A benchmark its publisher de-identified
  (``Benchmark.deidentified_release``) is de-identified with ``DeidPolicy(ocr="never")``:
  headers and question text are still scrubbed, but no OCR redaction changes the images the
  literature scored (``deid_ocr`` overrides; ``deidentify=False`` turns everything off).
- **Calibrated confidence.** With a calibration profile (``medlens calibrate``), the model's
  answers to the questions the profile was fitted on (its task, e.g. closed) are stored with
  calibrated confidence and abstain below its threshold (or ``abstain_below``); a profile
  fitted under another model, prompt, recipe or decoding fails before any sample runs.
- **Sanity and robustness runs.** ``sanity`` re-runs the model with the image blanked,
  replaced by noise or by another sample's image, or removed (``no-image``): the accuracy it
  keeps is what it gets without looking (Agrawal et al. 2018). ``shifts`` re-run it under
  controlled corruptions (Hendrycks & Dietterich, ICLR 2019) and question rewrites. Each is a
  sibling run of the model run in its group, scored like it, so reports put them side by side.
"""

from __future__ import annotations

import difflib
import hashlib
import inspect
import itertools
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from medlens.bench.benchmark import QualityIssue, Sample
from medlens.bench.store import RunInfo, RunStore, StoredResult, sample_from_json, sample_to_json
from medlens.errors import ConfigError, UnknownNameError
from medlens.types import GenerationOptions, TextPart, View

if TYPE_CHECKING:
    from medlens.backends.base import Backend
    from medlens.bench.benchmark import Benchmark
    from medlens.pipeline import Item, Result
    from medlens.privacy import DeidPolicy
    from medlens.privacy.policy import OcrMode
    from medlens.trust.calibration import CalibrationProfile

OCR_MODES = ("auto", "always", "never")
SANITY_CHECKS = ("blank", "noise-image", "swap", "no-image")
"""What ``--sanity`` runs when given no names: the image replaced by one grey level, by
noise, by another sample's image, and removed."""

CATEGORY_KEY = "question_type"
"""The ``Sample.metadata`` key loaders fill with the question category (VQA-RAD
``question_type``, SLAKE ``content_type``); the prior baseline and per-category tables use it."""


@dataclass(frozen=True)
class EvalSpec:
    """What ``medlens eval`` was asked to do."""

    benchmarks: tuple[str, ...]
    model: str
    backend: str | None = None
    """None: inferred from ``model`` (``backends.base.infer_backend_name``)."""
    split: str = "test"
    limit: int | None = None
    batch_size: int = 8
    data_dir: str | None = None
    protocols: tuple[str, ...] = ()
    """Empty: every protocol registered."""
    baselines: bool = True
    deidentify: bool = True
    deid_ocr: str | None = None
    """OCR redaction of pixels ("auto", "always", "never"); None: "never" for a
    publisher-de-identified release, else "auto" (``pixel_policy``)."""
    options: GenerationOptions | None = None
    """Decoding options; None lets each task choose its defaults."""
    seed: int = 0
    """Seed of the random baseline."""
    calibration: str | None = None
    """Calibration profile (name or path) applied to the model's answers of its task."""
    abstain_below: float | None = None
    """Abstain below this confidence (default: the calibration profile's threshold)."""
    sanity: tuple[str, ...] = ()
    """Sanity checks run beside the model (``SANITY_CHECKS``), stored canonical."""
    shifts: tuple[str, ...] = ()
    """Robustness shifts (image probes and question shifts of ``medlens.trust.probes``, as
    ``"jpeg:quality=10"``), stored canonical."""

    def __post_init__(self) -> None:
        if not self.benchmarks:
            raise ConfigError("Name at least one benchmark, e.g. 'medlens eval vqa-rad ...'.")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be 1 or more, not {self.batch_size}.")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"--limit must be 1 or more, not {self.limit}.")
        object.__setattr__(self, "sanity", canonical_probes(self.sanity, "sanity"))
        object.__setattr__(self, "shifts", canonical_probes(self.shifts, "shift"))
        if self.deid_ocr is not None and self.deid_ocr not in OCR_MODES:
            raise ConfigError(
                f"--deid-ocr must be one of {', '.join(OCR_MODES)}, not '{self.deid_ocr}'."
            )
        if self.abstain_below is not None and not 0.0 <= self.abstain_below <= 1.0:
            raise ConfigError(
                f"--abstain-below is a confidence between 0 and 1, not {self.abstain_below}."
            )
        if self.deid_ocr is not None and not self.deidentify:
            raise ConfigError(
                "--deid-ocr chooses how studies are de-identified, and --no-deid turns "
                "de-identification off; give one of them."
            )

    @property
    def backend_name(self) -> str:
        from medlens.backends.base import infer_backend_name

        return self.backend or infer_backend_name(self.model)


@dataclass(frozen=True)
class RunOutcome:
    """What one (benchmark, model) run did in this session."""

    run: RunInfo
    n_total: int
    n_new: int
    n_cached: int
    elapsed_s: float


# --------------------------------------------------------------------------------------------
# De-identification of benchmark studies
# --------------------------------------------------------------------------------------------


def pixel_policy(spec: EvalSpec, bench: Benchmark) -> tuple[bool | DeidPolicy, dict[str, Any]]:
    """What ``pipeline.prepare`` gets as ``deidentify`` for ``bench``, and the record of it
    that goes into the run config and the report."""
    if not spec.deidentify:
        return False, {"deidentify": False, "pixels": "unchanged: de-identification off"}
    from medlens.privacy import DeidPolicy

    published = bench.deidentified_release and spec.deid_ocr is None
    ocr = spec.deid_ocr or ("never" if bench.deidentified_release else "auto")
    if ocr == "never":
        pixels = (
            "unchanged: publisher-de-identified release"
            if published
            else "unchanged: --deid-ocr never"
        )
    else:
        pixels = f"redacted where OCR finds burned-in text (--deid-ocr {ocr})"
    record = {
        "deidentify": True,
        "ocr": ocr,
        "ocr_source": "benchmark" if spec.deid_ocr is None else "--deid-ocr",
        "pixels": pixels,
    }
    return DeidPolicy(ocr=cast("OcrMode", ocr)), record


# --------------------------------------------------------------------------------------------
# Sanity and robustness runs
# --------------------------------------------------------------------------------------------


def split_probe_list(text: str) -> tuple[str, ...]:
    """``"blur:radius=2,typos:rate=0.1,seed=1,paraphrase"`` → one spec per probe: a piece
    with ``=`` and no ``:`` is one more parameter of the probe before it."""
    specs: list[str] = []
    for piece in filter(None, (p.strip() for p in text.split(","))):
        if specs and "=" in piece and ":" not in piece:
            specs[-1] += f",{piece}"
        else:
            specs.append(piece)
    return tuple(specs)


def canonical_probes(specs: Sequence[str], role: str) -> tuple[str, ...]:
    """Checked specs in canonical form (``probes.probe_name``), each once: ``role`` "sanity"
    takes ``SANITY_CHECKS``, "shift" the corruptions and question shifts of
    ``medlens.trust.probes``. Unknown names and parameters fail here, before any run."""
    if not specs:
        return ()
    from medlens.trust.probes import (
        PROBES,
        QUESTION_SHIFTS,
        SANITY_PROBES,
        parse_probe,
        probe_name,
    )

    if role == "sanity":
        allowed = list(SANITY_CHECKS)
    else:
        allowed = [n for n in PROBES.names() if n not in SANITY_PROBES] + QUESTION_SHIFTS.names()
    flag = f"--{role}"
    out: list[str] = []
    for text in specs:
        name, params = parse_probe(text)
        if name not in allowed:
            close = difflib.get_close_matches(name, allowed, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise UnknownNameError(
                f"Unknown {flag} '{name}'.{hint} Available: {', '.join(allowed)}."
            )
        factory = (
            None
            if name == "no-image"
            else (QUESTION_SHIFTS if name in QUESTION_SHIFTS else PROBES).get(name)
        )
        accepted = (
            set() if factory is None else set(inspect.signature(factory).parameters) - {"pool"}
        )
        unknown = sorted(set(params) - accepted)
        if unknown:
            takes = ", ".join(sorted(accepted)) or "no parameters"
            raise ConfigError(f"{flag} '{text}': '{name}' takes {takes}, not {', '.join(unknown)}.")
        out.append(probe_name(name, params))
    return tuple(dict.fromkeys(out))


@dataclass(frozen=True)
class Treatment:
    """How a sibling run changes the model's input: a view transform (sanity images and
    corruptions), a question shift, or other images per sample (``swap``)."""

    role: str
    """"sanity" or "shift"."""
    spec: str
    view_transform: Callable[[View], View] | None = None
    question_shift: Callable[[str], str] | None = None
    images: Mapping[str, tuple[str | bytes, ...]] = field(default_factory=dict)
    """Sample id → the images shown instead of its own."""

    def item(self, sample: Sample) -> Item:
        item = item_of(sample)
        question = self.question_shift(item.question) if self.question_shift else item.question
        return replace(item, question=question, sources=self.images.get(sample.id, item.sources))


def make_treatment(role: str, spec: str, samples: Sequence[Sample], seed: int = 0) -> Treatment:
    """The treatment a canonical spec names. ``swap`` replaces each sample's image sources by
    another sample's (``swap_images``) rather than using the view-level ``probes.swap``, which
    picks from a pool by pixel hash: a view does not say which sample it belongs to, so only
    the sources can guarantee that a question never sees its own image; the other image then
    goes through the same loader, de-identification and recipe as it would in its own row."""
    from medlens.trust.probes import (
        QUESTION_SHIFTS,
        make_probe,
        make_question_shift,
        parse_probe,
    )

    name, params = parse_probe(spec)
    if name == "swap":
        return Treatment(role, spec, images=swap_images(samples, int(params.get("seed", seed))))
    if name in QUESTION_SHIFTS:
        return Treatment(role, spec, question_shift=make_question_shift(spec))
    return Treatment(role, spec, view_transform=make_probe(spec))


def _image_key(source: str | bytes) -> str:
    """Content hash of an image source (file bytes), so copies of one image share a key."""
    if isinstance(source, bytes):
        data = source
    else:
        try:
            data = Path(source).read_bytes()
        except OSError:  # unreadable: the pipeline reports it per sample; key by name
            data = source.encode()
    return hashlib.sha256(data).hexdigest()


def swap_images(samples: Sequence[Sample], seed: int = 0) -> dict[str, tuple[str | bytes, ...]]:
    """Per sample, another sample's images: a seeded derangement of the distinct images (by
    content) of ``samples``, so no question is shown its own image, even when several
    questions share one (VQA-RAD asks about 2 questions per image)."""
    import numpy as np

    keys: dict[str | bytes, str] = {}
    first: dict[str, str | bytes] = {}
    for sample in samples:
        for source in sample.images:
            if source not in keys:
                keys[source] = _image_key(source)
                first.setdefault(keys[source], source)
    distinct = list(first)
    if len(distinct) < 2:
        raise ConfigError(
            "The 'swap' sanity check shows each question another sample's image, and these "
            f"{len(samples)} samples hold {len(distinct)} distinct image(s); raise --limit."
        )
    order = [distinct[i] for i in np.random.default_rng(seed).permutation(len(distinct))]
    # One cycle through a shuffled order: every image maps to another one.
    target = {key: order[(i + 1) % len(order)] for i, key in enumerate(order)}
    return {s.id: tuple(first[target[keys[src]]] for src in s.images) for s in samples}


# --------------------------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------------------------


def task_of(sample: Sample) -> str:
    """The task and version (``"closed@1"``) a sample is asked with, as fingerprints name it."""
    from medlens.tasks import get_task

    task = get_task(sample.kind)
    return f"{task.name}@{task.version}"


def calibrated_samples(
    profile: CalibrationProfile, samples: Sequence[Sample], benchmark: str
) -> list[Sample]:
    """The samples of the profile's task; a profile that fits none of them is an error."""
    fits = [s for s in samples if task_of(s) == profile.fingerprint.task]
    if not fits:
        tasks = ", ".join(sorted({task_of(s) for s in samples}))
        raise ConfigError(
            f"Calibration profile '{profile.name}' was fitted on '{profile.fingerprint.task}' "
            f"questions, and none of the {len(samples)} {benchmark} samples is one ({tasks}). "
            "Fit a profile for these questions (medlens calibrate --kind ...) or leave out "
            "--calibration."
        )
    return fits


def check_calibration(
    profile: CalibrationProfile,
    items: Sequence[Item],
    backend: Backend,
    **prepare_options: Any,
) -> None:
    """Raise ``CalibrationError`` unless ``profile`` was fitted under the setup ``items`` are
    about to run with (model, task, recipe, decoding), before the model answers any of them:
    the fingerprint is built from the first item whose study loads, as ``pipeline.finish``
    would check it."""
    from medlens import pipeline
    from medlens.errors import StudyError
    from medlens.trust.calibration import Fingerprint

    for item in items:
        try:
            prepared = pipeline.prepare(
                item.sources,
                item.question,
                kind=item.kind,
                candidates=item.candidates,
                metadata=item.metadata,
                model=backend.model_id,
                **prepare_options,
            )
        except StudyError:
            continue
        request = prepared.request
        profile.check(
            Fingerprint.of(
                model=backend.model_id,
                task=prepared.task_version,
                recipe=prepared.recipe,
                options=request.options,
            )
        )
        return


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------


PRIMARY_PROTOCOL = "medlens"
"""Listed first when every protocol is scored, so tables and charts lead with the strict rules."""


def resolve_protocols(names: Sequence[str] = ()) -> dict[str, Any]:
    """Protocol objects by name; every registered protocol (``medlens`` first) when ``names``
    is empty."""
    from medlens.bench.protocols import PROTOCOLS

    everything = sorted(PROTOCOLS.names(), key=lambda n: (n != PRIMARY_PROTOCOL, n))
    return {name: PROTOCOLS.get(name) for name in (names or everything)}


def score_answer(
    protocols: Mapping[str, Any], sample: Sample, answer: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """Score one stored answer (``answer_record``) under each protocol."""
    scores = {}
    for name, protocol in protocols.items():
        result = protocol.score(
            sample,
            answer.get("raw", ""),
            parsed=answer.get("text"),
            parsed_ok=bool(answer.get("parsed", False)),
            abstained=bool(answer.get("abstained", False)),
        )
        scores[name] = {
            "outcome": result.outcome,
            "score": float(result.score),
            "metrics": dict(result.metrics),
            "extracted": result.extracted,
        }
    return scores


def answer_record(result: Result) -> dict[str, Any]:
    """``Result.to_json()`` plus the parsed text even when the answer abstained, so that a
    stored answer can be re-scored under any protocol."""
    return {**result.to_json(), "text": result.answer.text}


def rescore(store: RunStore, run_id: str, protocols: Sequence[str]) -> RunInfo:
    """Score a stored run's generations under ``protocols`` without running a model."""
    resolved = resolve_protocols(protocols)
    run = store.get_run(run_id)
    stored = store.results(run.id)
    for name, protocol in resolved.items():
        scores = {
            r.sample_id: score_answer({name: protocol}, sample_from_json(r.sample), r.answer)[name]
            for r in stored
        }
        store.set_scores(run.id, name, scores)
    versions = {**run.config.get("protocol_versions", {})}
    versions.update({n: p.version for n, p in resolved.items()})
    merged = list(dict.fromkeys([*run.protocols, *resolved]))
    store.update_run(run.id, protocols=merged, config={"protocol_versions": versions})
    return store.get_run(run.id)


# --------------------------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------------------------


def item_of(sample: Sample) -> Item:
    """The pipeline item for a sample: its images, question, kind, options and category."""
    from medlens.pipeline import Item

    metadata = {k: v for k, v in sample.metadata.items() if k != "boxes"}
    metadata.setdefault("benchmark", sample.benchmark)
    return Item(
        id=sample.id,
        sources=tuple(sample.images),
        question=sample.question,
        kind=sample.kind,
        candidates=tuple(sample.candidates),
        metadata=metadata,
    )


def _prompt_text(result: Result) -> str:
    return "\n\n".join(
        f"[{m.role}] " + "\n".join(p.text for p in m.content if isinstance(p, TextPart))
        for m in result.request.messages
    )


def run_samples(
    store: RunStore,
    run: RunInfo,
    samples: Sequence[Sample],
    backend: Backend,
    protocols: Mapping[str, Any],
    *,
    batch_size: int = 8,
    cache: bool = True,
    deidentify: bool | DeidPolicy = True,
    options: GenerationOptions | None = None,
    calibration: CalibrationProfile | None = None,
    abstain_below: float | None = None,
    treatment: Treatment | None = None,
    progress: bool = True,
) -> RunOutcome:
    """Run the samples ``run`` does not hold yet and store each batch as it completes.

    ``cache``: look generations up in (and add them to) the store's cache by request key.
    Without it no key is computed (stored as ""): hashing a request encodes its images.
    ``deidentify``: as ``pipeline.prepare`` takes it (``pixel_policy`` chooses it per benchmark).
    ``calibration`` applies to the samples of the profile's task (checked before the first
    generation), ``abstain_below`` to every sample. ``treatment`` changes what the model sees
    (sanity and robustness runs); answers are scored against the untouched samples.
    """
    from tqdm import tqdm

    from medlens import pipeline

    done = store.done_ids(run.id)
    position = {s.id: i for i, s in enumerate(samples)}
    by_id = {s.id: s for s in samples}
    todo = [s for s in samples if s.id not in done]
    keyed = store if cache else None
    pending: list[StoredResult] = []
    n_new = n_cached = 0
    recipes: set[str] = set()
    tasks: set[str] = set()

    def stored(
        sample: Sample, answer: Mapping[str, Any], prompt: str, key: str, cached: bool
    ) -> None:
        pending.append(
            StoredResult(
                sample_id=sample.id,
                position=position[sample.id],
                request_key=key,
                sample=sample_to_json(sample),
                prompt=prompt,
                raw=answer.get("raw", ""),
                answer=answer,
                scores=score_answer(protocols, sample, answer),
                timings=answer.get("timings", {}),
                cached=cached,
                error=answer.get("error"),
            )
        )
        bar.update(1)
        if len(pending) >= batch_size:
            flush()

    def flush() -> None:
        store.add_results(run.id, pending)
        pending.clear()

    def on_error(item: Item, exc: Exception) -> None:
        # The sample stays in the denominator as a failure; the class name only, since
        # messages of study readers may quote file names.
        error = f"study could not be loaded ({type(exc).__name__})"
        stored(by_id[item.id], {"raw": "", "parsed": False, "error": error}, "", "", False)

    prepare_options: dict[str, Any] = {"deidentify": deidentify}
    if options is not None:
        prepare_options["options"] = options
    make_item = item_of if treatment is None else treatment.item
    if treatment is not None and treatment.view_transform is not None:
        prepare_options["view_transform"] = treatment.view_transform
    streams: list[tuple[list[Sample], CalibrationProfile | None]] = [(todo, None)]
    if calibration is not None:
        fits = {s.id for s in calibrated_samples(calibration, samples, run.benchmark)}
        streams = [
            ([s for s in todo if s.id in fits], calibration),
            ([s for s in todo if s.id not in fits], None),
        ]
        items = [make_item(s) for s in streams[0][0]]
        check_calibration(calibration, items, backend, **prepare_options)
    started = time.perf_counter()
    status = "failed"
    bar = tqdm(
        total=len(samples),
        initial=len(samples) - len(todo),
        desc=f"{run.benchmark} · {run.label}",
        unit="q",
        file=sys.stderr,
        disable=not progress,
        dynamic_ncols=True,
    )
    try:
        results = itertools.chain.from_iterable(
            pipeline.run(
                (make_item(s) for s in part),
                backend,
                batch_size=batch_size,
                cache=keyed,
                on_error=on_error,
                calibration=profile,
                abstain_threshold=abstain_below,
                **prepare_options,
            )
            for part, profile in streams
            if part
        )
        for result in results:
            answer = answer_record(result)
            recipes.add(result.prepared.recipe)
            tasks.add(result.prepared.task_version)
            n_new += 1
            n_cached += int(result.cached)
            stored(
                by_id[result.request.id], answer, _prompt_text(result), result.key, result.cached
            )
        flush()
        status = "complete" if store.count(run.id) >= len(samples) else "running"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        bar.close()
        if pending:  # an exception or Ctrl-C: keep what finished
            flush()
        elapsed = time.perf_counter() - started
        observed = {
            "recipes": sorted({*run.config.get("recipes", []), *recipes}),
            "task_versions": sorted({*run.config.get("task_versions", []), *tasks}),
        }
        store.update_run(run.id, status=status, add_elapsed_s=elapsed, config=observed)
    return RunOutcome(store.get_run(run.id), len(samples), n_new, n_cached, elapsed)


# --------------------------------------------------------------------------------------------
# A whole evaluation
# --------------------------------------------------------------------------------------------


def prior_training_rows(
    bench: Benchmark, train: Sequence[Sample], test: Sequence[Sample]
) -> list[Sample]:
    """Train samples the ``prior`` baseline may learn from.

    A benchmark file whose train split leaks into test defines
    ``exclude_test_leakage(train, test, mode=...)`` (VQA-RAD); it is applied with
    ``mode="questions"``: the prior never sees an image, so shared images do not leak into
    it, but verbatim and templated copies of test questions would.
    """
    if not train:
        raise ConfigError(
            f"{bench.name} has no train split, so the 'prior' baseline cannot be fitted. "
            "Run with --no-baselines, or evaluate a benchmark with a train split."
        )
    module = sys.modules[type(bench).__module__]
    exclude = getattr(module, "exclude_test_leakage", None)
    return list(exclude(train, test, mode="questions")) if callable(exclude) else list(train)


def fit_prior(train: Sequence[Sample]) -> Any:
    """The prior baseline's table: most frequent answer per (kind, category)."""
    from medlens.backends.baseline import PriorTable

    return PriorTable.fit((s.kind, s.metadata.get(CATEGORY_KEY), s.answer) for s in train)


def _fingerprint(
    spec: EvalSpec,
    bench: Benchmark,
    protocols: Mapping[str, Any],
    pixels: Mapping[str, Any],
    profile: CalibrationProfile | None,
) -> dict[str, Any]:
    import platform

    import medlens

    return {
        "medlens_version": medlens.__version__,
        "python": platform.python_version(),
        "limit": spec.limit,
        "batch_size": spec.batch_size,
        "deidentify": spec.deidentify,
        "pixel_policy": dict(pixels),
        "options": None if spec.options is None else vars(spec.options),
        "benchmark_version": bench.version,
        "benchmark_revision": bench.loaded_revision,
        "benchmark_source": "local" if bench.local_root(spec.data_dir) else "hub",
        "scoring_rule": bench.scoring_rule,
        "protocol_versions": {n: p.version for n, p in protocols.items()},
        "seed": spec.seed,
        "calibration": None if profile is None else profile.name,
        "abstain_below": spec.abstain_below,
    }


def _load_profile(name: str | None) -> CalibrationProfile | None:
    if name is None:
        return None
    from medlens.trust.calibration import CalibrationProfile

    return CalibrationProfile.load(name)


def _resume_group(store: RunStore, spec: EvalSpec, resume: str | bool) -> str | None:
    """The group whose runs this evaluation continues, or None for a fresh evaluation."""
    if resume is False:
        return None
    if isinstance(resume, str):
        run = store.get_run(resume)
        if run.split != spec.split or run.config.get("limit") != spec.limit:
            raise ConfigError(
                f"Run {run.id} was made on split '{run.split}' with --limit "
                f"{run.config.get('limit')}; resume it with the same --split and --limit, "
                "or start a new run without --resume."
            )
        return run.group_id
    for run in store.runs(
        benchmark=spec.benchmarks[0], split=spec.split, model=spec.model, backend=spec.backend_name
    ):
        if run.role == "model" and run.config.get("limit") == spec.limit:
            return run.group_id
    raise ConfigError(
        f"No run of {spec.model} on {spec.benchmarks[0]} ({spec.split}, limit {spec.limit}) "
        f"in {store.path} to resume. Start one without --resume, or name a run: "
        "--resume RUN_ID."
    )


def evaluate(
    spec: EvalSpec,
    store: RunStore,
    *,
    resume: str | bool = False,
    progress: bool = True,
    backend_factory: Callable[[], Backend] | None = None,
) -> list[RunOutcome]:
    """Run ``spec.model`` (and the baselines) on every benchmark; return one outcome per run.

    ``resume``: False starts new runs; a run id continues that run's group; True continues
    the newest group that ran this model on the first benchmark with the same split and limit.
    ``backend_factory`` builds the model's backend (default: ``load_backend(spec.model,
    spec.backend)``); it is called only when a sample needs the model, and closed at the end.
    """
    from medlens.bench.benchmarks import get_benchmark

    protocols = resolve_protocols(spec.protocols)
    benches = [get_benchmark(name) for name in spec.benchmarks]
    profile = _load_profile(spec.calibration)
    group_id = _resume_group(store, spec, resume)
    backends = _Backends(spec, backend_factory)
    outcomes: list[RunOutcome] = []
    try:
        for bench in benches:
            # --limit: the first N in release order (deterministic; part of the run identity).
            split_samples = bench.load(spec.split, spec.data_dir)
            samples = split_samples[: spec.limit] if spec.limit else split_samples
            if not samples:
                raise ConfigError(f"{bench.name} has no samples in split '{spec.split}'.")
            wanted = _planned_runs(spec)
            train = bench.load("train", spec.data_dir) if "train" in bench.splits else []
            quality = bench.quality(samples, train=train if spec.split != "train" else ())
            deidentify, pixels = pixel_policy(spec, bench)
            if profile is not None:
                calibrated_samples(profile, samples, bench.name)
            config = _fingerprint(spec, bench, protocols, pixels, profile)
            for model, backend_name, role, probe in wanted:
                run_config = config
                if probe is not None:
                    run_config = {**config, "treatment": {"role": role, "spec": probe}}
                run = _find_or_create(
                    store,
                    group_id,
                    bench,
                    spec,
                    model,
                    backend_name,
                    role,
                    protocols,
                    run_config,
                    len(samples),
                    quality,
                )
                group_id = run.group_id
                run_protocols = resolve_protocols(run.protocols) if run.protocols else protocols
                if store.count(run.id) >= len(samples):
                    outcomes.append(RunOutcome(run, len(samples), 0, 0, 0.0))
                    continue
                treatment = (
                    None if probe is None else make_treatment(role, probe, samples, spec.seed)
                )
                backend, cache = backends.for_run(bench, backend_name, train, split_samples)
                model_backed = role != "baseline"
                try:
                    outcomes.append(
                        run_samples(
                            store,
                            run,
                            samples,
                            backend,
                            run_protocols,
                            batch_size=spec.batch_size,
                            cache=cache,
                            deidentify=deidentify,
                            options=spec.options,
                            calibration=profile if model_backed else None,
                            abstain_below=spec.abstain_below if model_backed else None,
                            treatment=treatment,
                            progress=progress,
                        )
                    )
                finally:
                    backends.release(backend)
    finally:
        backends.close()
    return outcomes


def _planned_runs(spec: EvalSpec) -> list[tuple[str, str, str, str | None]]:
    """(model column, backend, role, probe spec) of each run of one benchmark: the model,
    the baselines, the sanity checks and the shifts. ``no-image`` is the baseline of that
    name (the model without images), run once whether asked as a baseline or a sanity check;
    the other checks and shifts run the model's backend on changed inputs."""
    from medlens.backends.base import BASELINES

    runs: list[tuple[str, str, str, str | None]] = [(spec.model, spec.backend_name, "model", None)]
    blind = [b for b in BASELINES if spec.baselines or (b == "no-image" and b in spec.sanity)]
    runs += [(b, b, "baseline", None) for b in blind if b != spec.backend_name]
    for role, probes in (("sanity", spec.sanity), ("shift", spec.shifts)):
        runs += [(f"{role}:{p}", spec.backend_name, role, p) for p in probes if p != "no-image"]
    return runs


class _Backends:
    """The backends of one evaluation, built when first needed. The model's backend is
    loaded once and shared by the ``no-image`` baseline (the model with its images removed:
    the ablation that shows how much of its score needs the image); without a model (the
    model under test is itself a baseline) ``no-image`` answers from the train prior."""

    def __init__(self, spec: EvalSpec, factory: Callable[[], Backend] | None) -> None:
        self.spec = spec
        self.factory = factory
        self.model: Backend | None = None

    def model_backend(self) -> Backend:
        from medlens.backends.base import load_backend

        if self.model is None:
            spec = self.spec
            self.model = (
                self.factory()
                if self.factory is not None
                else load_backend(spec.model, backend=spec.backend)
            )
        return self.model

    def for_run(
        self, bench: Benchmark, name: str, train: Sequence[Sample], test: Sequence[Sample]
    ) -> tuple[Backend, bool]:
        """The backend for a run and whether its generations go to the cache: yes when
        they come from the model's weights; baselines are cheaper to recompute than to
        look up, and their answers depend on a fitted table the request key does not see."""
        from medlens.backends.base import BACKENDS, BASELINES

        has_model = self.spec.backend_name not in BASELINES
        if name not in BASELINES:
            return self.model_backend(), True
        factory = BACKENDS.get(name)
        if name == "random":
            return factory(name, seed=self.spec.seed), False
        if name == "no-image" and has_model:
            return factory(name, backend=self.model_backend()), True
        return factory(name, prior=fit_prior(prior_training_rows(bench, train, test))), False

    def release(self, backend: Backend) -> None:
        """Close a baseline's backend; the model's (and no-image's, which wraps it) stay
        open for the next benchmark."""
        model = self.model
        if model is None or (backend is not model and getattr(backend, "inner", None) is not model):
            backend.close()

    def close(self) -> None:
        if self.model is not None:
            self.model.close()


def _find_or_create(
    store: RunStore,
    group_id: str | None,
    bench: Benchmark,
    spec: EvalSpec,
    model: str,
    backend_name: str,
    role: str,
    protocols: Mapping[str, Any],
    config: Mapping[str, Any],
    n_planned: int,
    quality: Sequence[QualityIssue],
) -> RunInfo:
    if group_id is not None:
        found = store.runs(
            group_id=group_id, benchmark=bench.name, model=model, backend=backend_name
        )
        if found:
            return found[0]
    return store.create_run(
        benchmark=bench.name,
        split=spec.split,
        model=model,
        backend=backend_name,
        protocols=list(protocols),
        config=config,
        role=role,
        group_id=group_id,
        n_planned=n_planned,
        quality=quality,
    )


__all__ = [
    "CATEGORY_KEY",
    "SANITY_CHECKS",
    "EvalSpec",
    "RunOutcome",
    "Treatment",
    "answer_record",
    "calibrated_samples",
    "canonical_probes",
    "check_calibration",
    "evaluate",
    "fit_prior",
    "item_of",
    "make_treatment",
    "pixel_policy",
    "rescore",
    "run_samples",
    "score_answer",
    "split_probe_list",
    "swap_images",
    "task_of",
]
