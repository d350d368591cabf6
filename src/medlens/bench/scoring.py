"""Scoring stored answers: protocols by name, one answer under each, and re-scoring a stored
run without a model. The runner, the report and the CLI all score through here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from medlens.bench.protocols import PROTOCOLS, ScoringProtocol, get_protocol
from medlens.bench.samples import Sample
from medlens.bench.store import (
    RunInfo,
    RunStore,
    StoredAnswer,
    answer_from_json,
    sample_from_json,
    score_to_json,
)

PRIMARY_PROTOCOL = "medlens"
"""Listed first when every protocol is scored, so tables and charts lead with the strict rules."""


def resolve_protocols(names: Sequence[str] = ()) -> dict[str, ScoringProtocol]:
    """Protocol objects by name; when ``names`` is empty, every registered protocol that can
    score on its own (``medlens`` first; not those that need an LLM judge)."""
    everything = sorted(
        (n for n in PROTOCOLS.names() if not getattr(PROTOCOLS.get(n), "needs_judge", False)),
        key=lambda n: (n != PRIMARY_PROTOCOL, n),
    )
    return {name: get_protocol(name) for name in (names or everything)}


def score_answer(
    protocols: Mapping[str, ScoringProtocol], sample: Sample, answer: StoredAnswer
) -> dict[str, dict[str, Any]]:
    """Score one stored answer under each protocol, as the store keeps scores."""
    return {name: score_to_json(p.score_answer(sample, answer)) for name, p in protocols.items()}


def rescore_run(store: RunStore, run_id: str, protocols: Sequence[str]) -> RunInfo:
    """Score a stored run's generations under ``protocols`` without running a model."""
    resolved = resolve_protocols(protocols)
    run = store.get_run(run_id)
    stored = store.results(run.id)
    for name, protocol in resolved.items():
        scores = {
            r.sample_id: score_to_json(
                protocol.score_answer(sample_from_json(r.sample), answer_from_json(r.answer))
            )
            for r in stored
        }
        store.set_scores(run.id, name, scores)
    versions = {**run.config.get("protocol_versions", {})}
    versions.update({n: p.version for n, p in resolved.items()})
    merged = list(dict.fromkeys([*run.protocols, *resolved]))
    store.update_run(run.id, protocols=merged, config={"protocol_versions": versions})
    return store.get_run(run.id)
