"""Evaluation runs: plan → execute → record, for every benchmark of an ``EvalSpec``.

The rooms of an evaluation, each one module: ``spec`` (what was asked, pixel policy),
``treatments`` (sanity and shift runs), ``plan`` (the runs of each benchmark, resume, baseline
backends), ``execute`` (one run through the pipeline, committed batch by batch),
``scoring`` (protocols and re-scoring). This module only strings them together.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from medlens.bench.engines import get_engine
from medlens.bench.execute import RunOutcome, run_samples
from medlens.bench.plan import Backends, load_profile, plan_benchmark, resume_group
from medlens.bench.protocols import ScoringProtocol
from medlens.bench.scoring import (
    needs_judge,
    protocols_to_extend,
    rescore_run,
    resolve_protocols,
)
from medlens.bench.spec import EvalSpec
from medlens.bench.store import RunStore
from medlens.errors import ConfigError

if TYPE_CHECKING:
    from medlens.backends.base import Backend

JUDGED_BY_DEFAULT = "medevalkit-judge"
"""The protocol ``--judge`` adds when no judged protocol is named."""


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
    Protocols that grade with an LLM judge (``spec.judge``) score each run once its answers
    are in, and the run records the judge.
    """
    from medlens.bench.benchmarks import get_benchmark
    from medlens.bench.benchmarks.studies import StudyList

    protocols, judged = split_judged(spec)
    benches = (
        [StudyList(spec.studies)]
        if spec.studies is not None
        else [get_benchmark(name) for name in spec.benchmarks]
    )
    profile = load_profile(spec.calibration)
    group_id = resume_group(store, spec, resume)
    engine = get_engine(spec.engine)
    backends = Backends(spec, backend_factory)
    outcomes: list[RunOutcome] = []
    try:
        for bench in benches:
            plan = plan_benchmark(spec, bench, protocols, profile)
            scorable = bench.scorable(plan.samples)
            scored = protocols if scorable else {}
            judged_here = judged if scorable else []
            for planned in plan.runs:
                run = plan.open_run(store, group_id, spec, planned, scored)
                group_id = run.group_id
                run_protocols = protocols_to_extend(run) if run.protocols else scored
                if store.count(run.id) >= len(plan.samples):
                    outcome = RunOutcome(run, len(plan.samples), 0, 0, 0.0)
                    outcomes.append(judge_outcome(store, outcome, judged_here, backends))
                    continue
                treatment = planned.treatment(plan.samples, spec.seed)
                backend, cache = backends.for_run(plan, planned.backend)
                try:
                    outcome = run_samples(
                        store,
                        run,
                        plan.samples,
                        backend,
                        run_protocols,
                        batch_size=spec.batch_size,
                        cache=cache,
                        deidentify=plan.deidentify,
                        options=spec.options,
                        calibration=profile if planned.model_backed else None,
                        abstain_below=spec.abstain_below if planned.model_backed else None,
                        treatment=treatment,
                        engine=engine,
                        progress=progress,
                        prompt=spec.prompt,
                    )
                finally:
                    backends.release(backend)
                outcomes.append(judge_outcome(store, outcome, judged_here, backends))
    finally:
        backends.close()
    return outcomes


def split_judged(spec: EvalSpec) -> tuple[dict[str, ScoringProtocol], list[str]]:
    """The protocols scored batch by batch, and those graded by ``spec.judge`` once a run's
    answers are in. A judge given without a judged protocol named adds ``medevalkit-judge``;
    a judged protocol without a judge fails here, before any model loads."""
    resolved = resolve_protocols(spec.protocols)
    judged = [name for name, p in resolved.items() if needs_judge(p)]
    if spec.judge is not None and not judged:
        judged = [JUDGED_BY_DEFAULT]
    if judged and spec.judge is None:
        raise ConfigError(
            f"{', '.join(judged)} grades open answers with an LLM judge: pass --judge "
            "URL_OR_ID (an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1, or a "
            "model id), or choose other protocols."
        )
    return {n: p for n, p in resolved.items() if n not in judged}, judged


def judge_outcome(
    store: RunStore, outcome: RunOutcome, judged: list[str], backends: Backends
) -> RunOutcome:
    """``outcome`` after its run is scored under the ``judged`` protocols (verdicts cached in
    the store, so a resumed or repeated run asks the judge only about new answers)."""
    if not judged:
        return outcome
    run = rescore_run(store, outcome.run.id, judged, judge=backends.judge_backend())
    return dataclasses.replace(outcome, run=run)


__all__ = ["EvalSpec", "RunOutcome", "evaluate"]
