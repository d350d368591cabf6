"""``medlens eval`` on a trained folder, with the results recorded in its training card.

The card then says what the final checkpoint scores, beside the baselines and sanity runs
that the same evaluation ran (``bench.runner.evaluate``): the figures travel with the weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medlens.train.card import add_evaluation


def evaluate_folder(
    folder: str | Path,
    benchmarks: Sequence[str],
    *,
    data_dir: str | None = None,
    limit: int | None = None,
    sanity: Sequence[str] = (),
    calibration: str | None = None,
    store_path: str | Path | None = None,
    name: str = "final",
    progress: bool = True,
    batch_size: int = 16,
    baselines: bool = True,
    model: str | None = None,
) -> dict[str, Any]:
    """Evaluate ``folder`` (test splits, ``medlens`` protocol, baselines and ``sanity``
    checks beside it) and record ``{benchmark: {run label: headline}}`` in its card.
    ``model`` is the name it is evaluated under (default: the folder), e.g. ``medlens-tiny``
    for the shipped copy, so that the card's figures are the ones ``medlens eval`` prints."""
    from medlens.bench.report import summarize
    from medlens.bench.runner import evaluate
    from medlens.bench.spec import EvalSpec
    from medlens.bench.store import RunStore

    folder = Path(folder)
    spec = EvalSpec(
        benchmarks=tuple(benchmarks),
        model=model or str(folder),
        limit=limit,
        batch_size=batch_size,
        data_dir=data_dir,
        protocols=("medlens",),
        sanity=tuple(sanity),
        calibration=calibration,
        baselines=baselines,
    )
    store = RunStore(store_path or folder / "eval.sqlite")
    try:
        outcomes = evaluate(spec, store, progress=progress)
        results: dict[str, Any] = {}
        for outcome in outcomes:
            run = outcome.run
            summary = summarize(store, run, ["medlens"])
            label = run.label if run.role in ("model", "baseline") else run.model
            label = "model" if run.role == "model" else label
            results.setdefault(run.benchmark, {})[label] = {
                "run_id": run.id,
                "n": summary.n_results,
                "headline": summary.summaries["medlens"].to_dict()["headline"],
            }
    finally:
        store.close()
    record = {
        "model": spec.model,
        "limit": limit,
        "split": "test",
        "protocol": "medlens",
        "runs": results,
    }
    if calibration:
        record["calibration"] = calibration
    add_evaluation(folder, name, record)
    return record
