"""Executing one planned run: samples → ``pipeline.run`` → scores → the run store, batch by
batch.

The driver (this module) owns the plan, the store writer, de-identification (in
``pipeline.prepare``) and scoring; an *engine* (``medlens.bench.engines``) only turns
prepared requests into generations, so a cluster run and a laptop run store identical results.

- **Resumable.** Results are committed one batch at a time; a run continues with the sample ids
  it does not hold yet, so a run killed at any point (``kill -9``) finishes without losing or
  duplicating a sample.
- **Batch-size invariant.** Nothing here depends on how samples fall into batches: the same
  samples in the same order get the same request ids, keys and scores.
- **Calibrated confidence.** With a calibration profile, the answers to the questions of the
  profile's task are stored with calibrated confidence and abstain below its threshold (or
  ``abstain_below``); ``pipeline.run`` checks the profile before the model answers any.
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from medlens.bench.plan import calibrated_samples
from medlens.bench.samples import Sample
from medlens.bench.scoring import sample_as_asked, score_answer
from medlens.bench.store import (
    RunInfo,
    RunStore,
    StoredAnswer,
    StoredResult,
    Thumbnail,
    answer_to_json,
    sample_to_json,
)
from medlens.bench.treatments import Treatment, item_of
from medlens.types import GenerationOptions, TextPart

if TYPE_CHECKING:
    from medlens.backends.base import Backend
    from medlens.bench.protocols import ScoringProtocol
    from medlens.pipeline import Engine, Item, Result
    from medlens.privacy import DeidPolicy
    from medlens.trust.calibration import CalibrationProfile


@dataclass(frozen=True)
class RunOutcome:
    """What one (benchmark, model) run did in this session."""

    run: RunInfo
    n_total: int
    n_new: int
    n_cached: int
    elapsed_s: float


class BatchWriter:
    """Scores each answer of a run and commits them to the store ``batch_size`` at a time, so
    that a run killed at any point keeps every finished batch; counts what it wrote.

    ``keep_views``: store a thumbnail of each image the model received (the de-identified,
    treated request images); off when de-identification is off, so that a store and the
    reports made from it never hold identified pixels."""

    def __init__(
        self,
        store: RunStore,
        run: RunInfo,
        samples: Sequence[Sample],
        protocols: Mapping[str, ScoringProtocol],
        batch_size: int,
        on_write: Callable[[], object] = lambda: None,
        *,
        keep_views: bool = True,
    ) -> None:
        self.store = store
        self.keep_views = keep_views
        self.run = run
        self.protocols = protocols
        self.batch_size = batch_size
        self.on_write = on_write
        self.position = {s.id: i for i, s in enumerate(samples)}
        self.by_id = {s.id: s for s in samples}
        self.pending: list[StoredResult] = []
        self.n_new = 0
        self.n_cached = 0
        self.recipes: set[str] = set()
        self.tasks: set[str] = set()

    def add_result(self, result: Result) -> None:
        """A model answer: scored against the sample as asked (its gold boxes in the view's
        frame; nothing else changes) and queued."""
        self.recipes.add(result.prepared.recipe)
        self.tasks.add(result.prepared.task_version)
        self.n_new += 1
        self.n_cached += int(result.cached)
        self._add(
            sample_as_asked(self.by_id[result.request.id], result.prepared),
            StoredAnswer.of(result),
            _prompt_text(result),
            result.key,
            result.cached,
            _thumbnails(result) if self.keep_views else (),
        )

    def add_failure(self, item: Item, exc: Exception) -> None:
        """A study that could not be loaded: the sample stays in the denominator as a
        failure. The class name only, since messages of study readers may quote file names."""
        error = f"study could not be loaded ({type(exc).__name__})"
        self._add(self.by_id[item.id], StoredAnswer.failure(error), "", "", False)

    def _add(
        self,
        sample: Sample,
        answer: StoredAnswer,
        prompt: str,
        key: str,
        cached: bool,
        thumbnails: tuple[Thumbnail, ...] = (),
    ) -> None:
        self.pending.append(
            StoredResult(
                sample_id=sample.id,
                position=self.position[sample.id],
                request_key=key,
                sample=sample_to_json(sample),
                prompt=prompt,
                raw=answer.raw,
                answer=answer_to_json(answer),
                scores=score_answer(self.protocols, sample, answer),
                timings=answer.timings,
                cached=cached,
                error=answer.error,
                thumbnails=thumbnails,
            )
        )
        self.on_write()
        if len(self.pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        """Commit what is queued (one transaction)."""
        if self.pending:
            self.store.add_results(self.run.id, self.pending)
            self.pending.clear()

    def write_all(self, results: Iterable[Result], n_samples: int) -> float:
        """Store every result as it comes, then the run's status, the time this took and the
        recipes and tasks used. On an error or Ctrl-C what finished stays (status "failed" or
        "interrupted": ``--resume`` continues it). Returns the seconds spent."""
        started = time.perf_counter()
        status = "failed"
        try:
            for result in results:
                self.add_result(result)
            self.flush()
            status = "complete" if self.store.count(self.run.id) >= n_samples else "running"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            self.flush()  # an exception or Ctrl-C: keep what finished
            elapsed = time.perf_counter() - started
            self.store.update_run(
                self.run.id, status=status, add_elapsed_s=elapsed, config=self.observed()
            )
        return elapsed

    def observed(self) -> dict[str, list[str]]:
        """The recipes and task versions the run has used so far, for its config."""
        return {
            "recipes": sorted({*self.run.config.get("recipes", []), *self.recipes}),
            "task_versions": sorted({*self.run.config.get("task_versions", []), *self.tasks}),
        }


def _thumbnails(result: Result) -> tuple[Thumbnail, ...]:
    """The images of the request the backend received, small, labelled by their views; none
    for the no-image baseline, which removes them before its model answers."""
    if result.generation.backend == "no-image":
        return ()
    labels = [v.label for v in result.prepared.views]
    return tuple(
        Thumbnail.of(image, labels[i] if i < len(labels) else f"image {i + 1}")
        for i, image in enumerate(result.request.images)
    )


def _prompt_text(result: Result) -> str:
    """The messages as stored: each turn's role, then its parts in order, images as
    ``<image>`` (never pixels), so that a stored prompt shows the layout the model saw."""
    return "\n\n".join(
        f"[{m.role}] "
        + "\n".join(p.text if isinstance(p, TextPart) else "<image>" for p in m.content)
        for m in result.request.messages
    )


def run_samples(
    store: RunStore,
    run: RunInfo,
    samples: Sequence[Sample],
    backend: Backend,
    protocols: Mapping[str, ScoringProtocol],
    *,
    batch_size: int = 8,
    cache: bool = True,
    deidentify: bool | DeidPolicy = True,
    options: GenerationOptions | None = None,
    calibration: CalibrationProfile | None = None,
    abstain_below: float | None = None,
    treatment: Treatment | None = None,
    engine: Engine | None = None,
    progress: bool = True,
    prompt: str | None = None,
) -> RunOutcome:
    """Run the samples ``run`` does not hold yet and store each batch as it completes.

    ``cache``: look generations up in (and add them to) the store's cache by request key.
    Without it no key is computed (stored as ""): hashing a request encodes its images.
    ``deidentify``: as ``pipeline.prepare`` takes it (``spec.pixel_policy`` chooses it per
    benchmark). ``calibration`` applies to the samples of the profile's task (checked before
    the first generation), ``abstain_below`` to every sample. ``treatment`` changes what the
    model sees (sanity and robustness runs); answers are scored against the untouched samples.
    ``engine``: where generation runs (``pipeline.InProcess`` when None). ``prompt``: the
    prompt preset (``medlens.tasks.presets``) the requests are laid out by.
    """
    from medlens import pipeline

    done = store.done_ids(run.id)
    todo = [s for s in samples if s.id not in done]
    bar = _progress_bar(run, len(samples), len(samples) - len(todo), enabled=progress)
    writer = BatchWriter(
        store,
        run,
        samples,
        protocols,
        batch_size,
        on_write=bar.update,
        keep_views=deidentify is not False,
    )
    make_item = item_of if treatment is None else treatment.item
    run_options: dict[str, Any] = {
        "batch_size": batch_size,
        "cache": store if cache else None,
        "on_error": writer.add_failure,
        "abstain_threshold": abstain_below,
        "engine": engine,
        **_prepare_options(deidentify, options, prompt, treatment),
    }
    results = itertools.chain.from_iterable(
        pipeline.run((make_item(s) for s in part), backend, calibration=profile, **run_options)
        for part, profile in _calibration_streams(todo, samples, run.benchmark, calibration, prompt)
        if part
    )
    with bar:
        elapsed = writer.write_all(results, len(samples))
    return RunOutcome(store.get_run(run.id), len(samples), writer.n_new, writer.n_cached, elapsed)


def _calibration_streams(
    todo: Sequence[Sample],
    samples: Sequence[Sample],
    benchmark: str,
    calibration: CalibrationProfile | None,
    prompt: str | None,
) -> list[tuple[list[Sample], CalibrationProfile | None]]:
    """``todo`` as (samples, profile) streams for ``pipeline.run``: with a profile, the
    questions it applies to first, so that its fingerprint is checked before the model answers
    any, then the others without it."""
    if calibration is None:
        return [(list(todo), None)]
    fits = {s.id for s in calibrated_samples(calibration, samples, benchmark, prompt)}
    return [
        ([s for s in todo if s.id in fits], calibration),
        ([s for s in todo if s.id not in fits], None),
    ]


def _prepare_options(
    deidentify: bool | DeidPolicy,
    options: GenerationOptions | None,
    prompt: str | None,
    treatment: Treatment | None,
) -> dict[str, Any]:
    """What ``pipeline.prepare`` gets beside each item: the de-identification policy, and the
    generation options, prompt preset and view transform where the run sets them (the
    pipeline's defaults otherwise)."""
    chosen: dict[str, Any] = {"deidentify": deidentify}
    if prompt is not None:
        chosen["prompt"] = prompt
    if options is not None:
        chosen["options"] = options
    if treatment is not None and treatment.view_transform is not None:
        chosen["view_transform"] = treatment.view_transform
    return chosen


def _progress_bar(run: RunInfo, total: int, done: int, *, enabled: bool) -> Any:
    """A tqdm bar on stderr that starts at the answers the run already holds."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=done,
        desc=f"{run.benchmark} · {run.label}",
        unit="q",
        file=sys.stderr,
        disable=not enabled,
        dynamic_ncols=True,
    )
