"""The only module that wires the stages together (DESIGN.md, "Data flow").

``ask()`` answers one question about one study; ``run()`` streams many items through a backend
in batches, with an optional generation cache (the bench run store provides one). Both go
through the same two halves:

- ``prepare``: load → de-identify (default; off only with ``deidentify=False``) → recipe
  views → task request;
- ``finish``: parse → confidence → calibration → abstention.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from medlens.errors import ConfigError, PrivacyError
from medlens.types import (
    Answer,
    AnswerKind,
    AuditRecord,
    Generation,
    GenerationOptions,
    ImagePart,
    Request,
    Study,
    TextPart,
    View,
)

if TYPE_CHECKING:
    from medlens.backends.base import Backend
    from medlens.privacy import DeidPolicy
    from medlens.trust.calibration import CalibrationProfile


ViewTransform = Callable[[View], View]
SCORED_KINDS = ("closed", "choice")
"""Answer kinds with a fixed set of candidates, which a backend can score instead of
generating (Kadavath et al. 2022: the candidates' normalised likelihoods are the confidence)."""


@dataclass(frozen=True, eq=False)
class Prepared:
    """A question about a (de-identified) study, turned into a backend request."""

    request: Request
    views: tuple[View, ...]
    studies: tuple[Study, ...]
    recipe: str
    task_version: str


@dataclass(frozen=True, eq=False)
class Result:
    """Everything ``ask``/``run`` produce for one question."""

    prepared: Prepared
    generation: Generation
    answer: Answer
    cached: bool = False
    key: str = ""
    """The request's cache key (``request_key``) when the run used a cache."""

    @property
    def request(self) -> Request:
        return self.prepared.request

    @property
    def audit(self) -> tuple[AuditRecord, ...]:
        return tuple(record for study in self.prepared.studies for record in study.audit)

    @property
    def model_label(self) -> str:
        """Who answered: "baseline", "demonstration model" or "user model"."""
        from medlens.backends.base import model_label

        return model_label(self.generation.model, self.generation.backend)

    @property
    def model_note(self) -> str:
        """What a shipped demonstration model is, in one sentence ("" for other models)."""
        from medlens.backends.base import model_note

        return model_note(self.generation.model)

    def to_json(self) -> dict[str, Any]:
        """A machine-readable record (no pixels, no PHI: studies are summarised)."""
        answer = self.answer
        confidence = answer.confidence
        return {
            "request_id": self.request.id,
            "question": self.request.question,
            "kind": answer.kind,
            "answer": answer.text if not answer.abstained else "abstain",
            "abstained": answer.abstained,
            "abstain_reason": answer.abstain_reason,
            "parsed": answer.parsed,
            "parse_error": answer.parse_error,
            "choice": answer.choice,
            "rationale": answer.rationale,
            "sections": dict(answer.sections),
            "boxes": [vars(b) | {} for b in answer.boxes],
            "confidence": None
            if confidence is None
            else {
                "value": confidence.value,
                "method": confidence.method,
                "calibrated": confidence.calibrated,
                "profile": confidence.profile,
                "candidates": dict(confidence.candidate_probs),
            },
            "raw": answer.raw,
            "model": self.generation.model,
            "model_label": self.model_label,
            "model_note": self.model_note,
            "backend": self.generation.backend,
            "finish_reason": self.generation.finish_reason,
            "error": self.generation.error,
            "timings": vars(self.generation.timings),
            "recipe": self.prepared.recipe,
            "task_version": self.prepared.task_version,
            "views": [v.label for v in self.prepared.views],
            "studies": [s.summary() for s in self.prepared.studies],
            "deidentification": [{"action": r.action, **dict(r.details)} for r in self.audit],
            "cached": self.cached,
        }


def _load(source: Study | str | os.PathLike[str] | bytes) -> Study:
    if isinstance(source, Study):
        return source
    from medlens.study import load_study

    return load_study(source)


def protect(study: Study, deidentify: bool | DeidPolicy = True) -> Study:
    """De-identify ``study`` unless the caller turned it off explicitly (``False``)."""
    if deidentify is False or study.deidentified:
        return study
    from medlens.privacy import DeidPolicy
    from medlens.privacy import deidentify as run_deid

    policy = deidentify if isinstance(deidentify, DeidPolicy) else None
    return run_deid(study, policy=policy)


def prepare(
    sources: Study
    | str
    | os.PathLike[str]
    | bytes
    | Sequence[Study | str | os.PathLike[str] | bytes],
    question: str,
    *,
    kind: AnswerKind | None = None,
    candidates: Sequence[str] = (),
    recipe: str | None = None,
    deidentify: bool | DeidPolicy = True,
    options: GenerationOptions | None = None,
    request_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    view_transform: ViewTransform | None = None,
    system_prompt: str | None = None,
    model: str | None = None,
    prompt: str | None = None,
    candidate_scoring: bool = False,
    view_size: int | None = None,
) -> Prepared:
    """Turn studies and a question into a backend ``Request``.

    ``sources`` is one study (or path/bytes) or several (multi-image questions); a study with a
    ``prior`` contributes its prior's views as the comparison images. ``view_transform``
    alters each view before the request is built (sanity and robustness probes). ``model``
    picks the recipe the model declares (``medlens.study.MODEL_RECIPES``) when ``recipe`` is
    not given. ``prompt`` names the prompt preset (``medlens.tasks.presets``: medlens,
    lmms-eval, medevalkit, llava-med, medgemma) that lays the request out.
    ``candidate_scoring`` answers closed and multiple-choice questions by scoring each
    candidate's likelihood (``options.score_candidates``), which gives them a confidence.
    ``view_size`` (the backend's) caps the recipe's ``max_size`` for grounding questions: a
    view no larger than the model takes is the frame the template states and the model
    answers in. Other questions keep the recipe's views, which the model's processor
    resizes as upstream harnesses let it.
    """
    from medlens.study.recipes import default_recipe_for, get_recipe
    from medlens.tasks import get_task, guess_kind

    items: list[Study | str | os.PathLike[str] | bytes] = (
        list(sources) if isinstance(sources, (list, tuple)) else [sources]  # type: ignore[list-item]
    )
    studies = tuple(protect(_load(s), deidentify) for s in items)
    if not studies:
        raise ConfigError("A question needs at least one study or image.")
    task = get_task(kind or guess_kind(question, candidates))
    chosen = get_recipe(recipe or default_recipe_for(studies[0], model))
    overrides: dict[str, Any] = {}
    if (
        task.kind == "grounding"
        and view_size
        and view_size < chosen.defaults.get("max_size", view_size)
    ):
        overrides["max_size"] = view_size
    views: list[View] = []
    prior_views: list[View] = []
    for study in studies:
        views.extend(chosen(study, **overrides))
        if study.prior is not None:
            prior_views.extend(chosen(study.prior, **overrides))
    if view_transform is not None:
        views = [view_transform(v) for v in views]
        prior_views = [view_transform(v) for v in prior_views]
    request = task.build(
        views,
        question,
        request_id=request_id or uuid.uuid4().hex[:12],
        options=options,
        candidates=candidates,
        prior_views=prior_views,
        system_prompt=system_prompt,
        metadata=dict(metadata or {}),
        deidentified=all(s.deidentified for s in studies),
        prompt=prompt,
    )
    if candidate_scoring and request.kind in SCORED_KINDS and not request.options.score_candidates:
        request = replace(request, options=replace(request.options, score_candidates=True))
    if deidentify is not False:
        from medlens.privacy import scrub_text

        request = _scrub_request_text(request, scrub_text)
    used_recipe = views[0].recipe if views else chosen.id
    return Prepared(request, tuple(views), studies, used_recipe, task.prompt_id_for(prompt))


def _scrub_request_text(request: Request, scrub: Callable[[str], Any]) -> Request:
    """Free-text PHI in the question (a name, a date) must not reach the model either."""
    messages = tuple(
        replace(
            m,
            content=tuple(
                TextPart(scrub(p.text).text) if isinstance(p, TextPart) else p for p in m.content
            ),
        )
        for m in request.messages
    )
    return replace(request, messages=messages, question=scrub(request.question).text)


def finish(
    prepared: Prepared,
    generation: Generation,
    *,
    calibration: CalibrationProfile | None = None,
    confidence_method: str = "auto",
    abstain_threshold: float | None = None,
) -> Answer:
    """Parse a generation and attach confidence (calibrated when a profile is given) and an
    abstention decision (below ``abstain_threshold``, or the profile's own threshold)."""
    from medlens.tasks import get_task

    request = prepared.request
    answer = get_task(request.kind).parse(generation, request)
    if generation.finish_reason == "error":
        return answer
    from medlens.trust.abstain import abstention_reason
    from medlens.trust.confidence import estimate_confidence

    confidence = estimate_confidence(answer, generation, request, method=confidence_method)
    threshold = abstain_threshold
    if calibration is not None:
        calibration.check(fingerprint_of(prepared, generation))
        threshold = threshold if threshold is not None else calibration.threshold
        if confidence is not None:
            confidence = calibration.apply(confidence)
    reason = abstention_reason(answer, confidence, threshold)
    return replace(
        answer, confidence=confidence, abstained=reason is not None, abstain_reason=reason
    )


def fingerprint_of(prepared: Prepared, generation: Generation | str) -> Any:
    """What a calibration profile must have been fitted under to apply here: the model that
    answered (``generation``, or the model id that is about to answer), the task version,
    the recipe and the decoding options."""
    from medlens.trust.calibration import Fingerprint

    return Fingerprint.of(
        model=generation if isinstance(generation, str) else generation.model,
        task=prepared.task_version,
        recipe=prepared.recipe,
        options=prepared.request.options,
    )


def check_calibration(profile: CalibrationProfile, prepared: Prepared, backend: Backend) -> None:
    """Raise ``CalibrationError`` unless ``profile`` was fitted under the setup ``prepared``
    is about to run with, before the model answers: a wrong profile fails before any
    generation (``ask`` and ``run`` call this on their first prepared item)."""
    profile.check(fingerprint_of(prepared, backend.model_id))


def check_privacy(backend: Backend, requests: Sequence[Request]) -> None:
    """Remote backends never receive a request that was not de-identified."""
    if not backend.remote or backend.allow_identified:
        return
    bad = [r.id for r in requests if not r.deidentified]
    if bad:
        raise PrivacyError(
            f"{len(bad)} request(s) were not de-identified and the backend "
            f"'{backend.name}' sends data off this machine. De-identify the studies "
            "(the default) or, if you are allowed to, turn it off explicitly (--no-deid)."
        )


def ask(
    study: Study
    | str
    | os.PathLike[str]
    | bytes
    | Sequence[Study | str | os.PathLike[str] | bytes],
    question: str,
    *,
    backend: Backend,
    calibration: CalibrationProfile | None = None,
    confidence_method: str = "auto",
    abstain_threshold: float | None = None,
    candidate_scoring: bool = True,
    **prepare_options: Any,
) -> Result:
    """Answer one question about one study (or several images) with ``backend``.

    Closed and multiple-choice questions score their candidates when the backend can
    (``candidate_scoring``, the default), so that the answer comes with a confidence;
    ``candidate_scoring=False`` generates text for them instead (``--generate``)."""
    prepare_options.setdefault("model", backend.model_id)
    prepare_options.setdefault("view_size", backend.view_size)
    prepare_options["candidate_scoring"] = candidate_scoring and backend.supports_scoring
    prepared = prepare(study, question, **prepare_options)
    check_privacy(backend, [prepared.request])
    if calibration is not None:
        check_calibration(calibration, prepared, backend)
    (generation,) = backend.generate([prepared.request])
    answer = finish(
        prepared,
        generation,
        calibration=calibration,
        confidence_method=confidence_method,
        abstain_threshold=abstain_threshold,
    )
    return Result(prepared, generation, answer)


# --------------------------------------------------------------------------------------------
# Batched runs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One question of a batched run: its image sources, question and task facts."""

    id: str
    sources: tuple[Study | str | bytes, ...]
    question: str
    kind: AnswerKind | None = None
    candidates: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)


class GenerationCache(Protocol):
    """Where ``run`` looks up and stores generations by request key (the bench run store)."""

    def get(self, key: str) -> Generation | None: ...

    def put(self, key: str, generation: Generation) -> None: ...


def request_key(request: Request, backend: Backend) -> str:
    """A content hash of what the model sees and how it decodes: identical requests hit the
    cache whatever their ids. Images are hashed by pixels, so no file name is involved."""
    digest = hashlib.sha256()
    digest.update(f"{backend.name}\0{backend.model_id}\0{request.kind}\0".encode())
    digest.update(json.dumps(vars(request.options), sort_keys=True, default=str).encode())
    digest.update(json.dumps(list(request.candidates)).encode())
    for message in request.messages:
        digest.update(message.role.encode())
        for part in message.content:
            if isinstance(part, ImagePart):
                image = part.image
                digest.update(f"{image.mode}{image.size}".encode())
                digest.update(hashlib.sha256(image.tobytes()).digest())
            else:
                digest.update(part.text.encode())
    return digest.hexdigest()


class Engine(Protocol):
    """Where generation runs: it turns batches of prepared requests into generations, one list
    per batch, in batch order. Everything else (preparation and de-identification, the cache,
    parsing, calibration) stays with the caller, so every engine gives the same results.
    ``InProcess`` is the default; ``medlens.bench.engines`` holds the others."""

    def generate(
        self, backend: Backend, batches: Iterable[Sequence[Request]]
    ) -> Iterator[Sequence[Generation]]: ...


class InProcess:
    """The default engine: each batch goes to ``backend.generate`` in this process, one after
    the other (the next batch is prepared only when the previous one has been consumed)."""

    name = "local"

    def generate(
        self, backend: Backend, batches: Iterable[Sequence[Request]]
    ) -> Iterator[Sequence[Generation]]:
        for batch in batches:
            yield backend.generate(list(batch)) if batch else []


def run(
    items: Iterable[Item],
    backend: Backend,
    *,
    batch_size: int = 8,
    cache: GenerationCache | None = None,
    calibration: CalibrationProfile | None = None,
    confidence_method: str = "auto",
    abstain_threshold: float | None = None,
    on_error: Callable[[Item, Exception], None] | None = None,
    engine: Engine | None = None,
    **prepare_options: Any,
) -> Iterator[Result]:
    """Stream ``items`` through ``backend`` in batches, yielding results as batches complete.

    An item whose study cannot be loaded is reported to ``on_error`` (and skipped) instead of
    stopping the run; without ``on_error`` the error propagates. A ``calibration`` profile is
    checked on the first prepared item, before any generation. ``engine`` chooses where the
    requests the cache does not hold are generated (default: ``InProcess``).
    ``candidate_scoring=True`` (a ``prepare`` option) scores closed/choice candidates as
    ``ask`` does, where the backend can; benchmarks generate by default, as their published
    protocols do.
    """
    prepare_options.setdefault("model", backend.model_id)
    prepare_options.setdefault("view_size", backend.view_size)
    if prepare_options.get("candidate_scoring"):
        prepare_options["candidate_scoring"] = backend.supports_scoring
    waiting: deque[tuple[list[Prepared], list[str], list[Generation | None]]] = deque()

    def requests() -> Iterator[list[Request]]:
        first = True
        for batch in _prepared_batches(items, batch_size, on_error, prepare_options):
            if first and calibration is not None:
                check_calibration(calibration, batch[0], backend)
            first = False
            keys = [request_key(p.request, backend) if cache is not None else "" for p in batch]
            cached = [cache.get(k) if cache is not None else None for k in keys]
            todo = [p.request for p, c in zip(batch, cached) if c is None]
            check_privacy(backend, todo)
            waiting.append((batch, keys, cached))
            yield todo

    for generations in (engine or InProcess()).generate(backend, requests()):
        batch, keys, cached = waiting.popleft()
        fresh = iter(generations)
        for prepared, key, hit in zip(batch, keys, cached):
            generation = hit if hit is not None else next(fresh)
            if hit is not None:
                generation = replace(generation, request_id=prepared.request.id)
            elif cache is not None and generation.finish_reason != "error":
                cache.put(key, generation)
            answer = finish(
                prepared,
                generation,
                calibration=calibration,
                confidence_method=confidence_method,
                abstain_threshold=abstain_threshold,
            )
            yield Result(prepared, generation, answer, cached=hit is not None, key=key)


def _prepared_batches(
    items: Iterable[Item],
    batch_size: int,
    on_error: Callable[[Item, Exception], None] | None,
    prepare_options: Mapping[str, Any],
) -> Iterator[list[Prepared]]:
    """``items`` prepared, ``batch_size`` at a time; a study that fails to load goes to
    ``on_error`` (or propagates without one). A PACS that cannot serve any study now
    propagates: recorded as each study's failure, it would fail every study of the run."""
    from medlens.errors import PacsUnavailableError, StudyError

    batch: list[Prepared] = []
    for item in items:
        try:
            prepared = prepare(
                item.sources,
                item.question,
                kind=item.kind,
                candidates=item.candidates,
                request_id=item.id,
                metadata=item.metadata,
                **prepare_options,
            )
        except StudyError as exc:
            if on_error is None or isinstance(exc, PacsUnavailableError):
                raise
            on_error(item, exc)
            continue
        batch.append(prepared)
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
