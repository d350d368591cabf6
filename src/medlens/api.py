"""The public API, small enough for a README; one string swaps a model (as torchxrayvision's
``xrv.models.get_model("densenet121-res224-all")`` does):

>>> import medlens
>>> study = medlens.load_study("chest.dcm")  # doctest: +SKIP
>>> clean = medlens.deidentify(study)  # doctest: +SKIP
>>> result = medlens.ask(study, "Is there a pleural effusion?", model="google/medgemma-4b-it")
... # doctest: +SKIP
>>> result.answer.text, result.answer.confidence  # doctest: +SKIP
>>> medlens.evaluate("vqa-rad,slake", model="http://gpu:8000/v1")  # doctest: +SKIP

``ask`` de-identifies the study first unless told ``deidentify=False``; ``evaluate`` runs the
model beside the prior / no-image / random baselines into the run store, as ``medlens eval``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medlens.backends.base import Backend
    from medlens.bench.execute import RunOutcome
    from medlens.bench.store import RunStore
    from medlens.pipeline import Result
    from medlens.types import Study

_loaded: dict[str, Backend] = {}
"""The backend of the last model string ``ask`` was given, kept for the next question."""
_lock = threading.Lock()


def _backend_for(model: str) -> Backend:
    """The loaded backend of ``model``; asking with another model closes the previous one."""
    from medlens.backends.base import load_backend

    with _lock:
        if model not in _loaded:
            for previous in _loaded.values():
                previous.close()
            _loaded.clear()
            _loaded[model] = load_backend(model)
        return _loaded[model]


def ask(
    study: Study
    | str
    | os.PathLike[str]
    | bytes
    | Sequence[Study | str | os.PathLike[str] | bytes],
    question: str,
    *,
    model: str | Backend,
    **options: Any,
) -> Result:
    """Answer ``question`` about ``study`` (a ``Study``, a path or bytes; several for a
    multi-image question) with ``model``: a Hugging Face id or local path, an ``http(s)://``
    URL of an OpenAI-compatible server, a baseline (``prior``, ``no-image``, ``random``) or a
    ``Backend``. ``options`` go to ``medlens.pipeline.ask`` (``kind``, ``candidates``,
    ``calibration``, ``deidentify``, ``options`` ...)."""
    from medlens import pipeline

    backend = _backend_for(model) if isinstance(model, str) else model
    return pipeline.ask(study, question, backend=backend, **options)


def evaluate(
    benchmarks: str | Sequence[str],
    *,
    model: str,
    store: RunStore | str | Path | None = None,
    resume: str | bool = False,
    progress: bool = False,
    **spec: Any,
) -> list[RunOutcome]:
    """Score ``model`` on ``benchmarks`` (names, or one comma-separated string) beside the
    baselines, into ``store`` (default ``$MEDLENS_HOME/runs.sqlite``); ``spec`` holds the other
    fields of ``medlens.bench.spec.EvalSpec`` (``limit``, ``protocols``, ``sanity`` ...)."""
    from medlens.bench.runner import EvalSpec
    from medlens.bench.runner import evaluate as run_evaluation
    from medlens.bench.store import RunStore

    names = benchmarks.split(",") if isinstance(benchmarks, str) else benchmarks
    eval_spec = EvalSpec(tuple(n.strip() for n in names if n.strip()), model, **spec)
    if isinstance(store, RunStore):
        return run_evaluation(eval_spec, store, resume=resume, progress=progress)
    opened = RunStore(store)
    try:
        return run_evaluation(eval_spec, opened, resume=resume, progress=progress)
    finally:
        opened.close()
