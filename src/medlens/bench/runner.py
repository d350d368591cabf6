"""Evaluation runs: plan → execute → record, for every benchmark of an ``EvalSpec``.

The rooms of an evaluation, each one module: ``spec`` (what was asked, pixel policy),
``treatments`` (sanity and shift runs), ``plan`` (the runs of each benchmark, resume, baseline
backends), ``execute`` (one run through the pipeline, committed batch by batch),
``scoring`` (protocols and re-scoring). This module only strings them together.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from medlens.bench.engines import get_engine
from medlens.bench.execute import RunOutcome, run_samples
from medlens.bench.plan import Backends, load_profile, plan_benchmark, resume_group
from medlens.bench.scoring import resolve_protocols
from medlens.bench.spec import EvalSpec
from medlens.bench.store import RunStore

if TYPE_CHECKING:
    from medlens.backends.base import Backend


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
    from medlens.bench.benchmarks.studies import StudyList

    protocols = resolve_protocols(spec.protocols)
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
            scored = protocols if bench.scorable(plan.samples) else {}
            for planned in plan.runs:
                run = plan.open_run(store, group_id, spec, planned, scored)
                group_id = run.group_id
                run_protocols = resolve_protocols(run.protocols) if run.protocols else scored
                if store.count(run.id) >= len(plan.samples):
                    outcomes.append(RunOutcome(run, len(plan.samples), 0, 0, 0.0))
                    continue
                treatment = planned.treatment(plan.samples, spec.seed)
                backend, cache = backends.for_run(plan, planned.backend)
                try:
                    outcomes.append(
                        run_samples(
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
                    )
                finally:
                    backends.release(backend)
    finally:
        backends.close()
    return outcomes


__all__ = ["EvalSpec", "RunOutcome", "evaluate"]
