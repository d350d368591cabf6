"""Scoring stored answers: protocols by name, one answer under each, and re-scoring a stored
run without a model. The runner, the report and the CLI all score through here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from medlens.bench.protocols import PROTOCOLS, ScoringProtocol, get_protocol
from medlens.bench.protocols.versions import as_scored, scored_key, split_key
from medlens.bench.samples import Sample
from medlens.bench.store import (
    RunInfo,
    RunStore,
    StoredAnswer,
    answer_from_json,
    sample_from_json,
    score_to_json,
)

if TYPE_CHECKING:
    from medlens.backends.base import Backend
    from medlens.pipeline import Prepared

PRIMARY_PROTOCOL = "medlens"
"""Listed first when every protocol is scored, so tables and charts lead with the strict rules."""


def resolve_protocols(names: Sequence[str] = ()) -> dict[str, ScoringProtocol]:
    """Protocol objects by name; when ``names`` is empty, every registered protocol that can
    score on its own (``medlens`` first; not those that need an LLM judge)."""
    everything = sorted(
        (n for n in PROTOCOLS.names() if not needs_judge(get_protocol(n))),
        key=lambda n: (n != PRIMARY_PROTOCOL, n),
    )
    return {name: get_protocol(name) for name in (names or everything)}


def needs_judge(protocol: ScoringProtocol) -> bool:
    """Whether ``protocol`` grades answers with an LLM judge (``medevalkit-judge``): it is
    scored over a whole run once the answers are in (``rescore_run``), not batch by batch."""
    return bool(getattr(protocol, "needs_judge", False))


def protocols_to_extend(run: RunInfo) -> dict[str, ScoringProtocol]:
    """The protocols new answers of a resumed ``run`` are scored with batch by batch: those
    it was scored with, without the judged ones. A run holding scores of an earlier version of
    a protocol is not extended: its new answers would be scored under another rule."""
    from medlens.errors import ConfigError

    frozen = [n for n in run.protocols if "@" in n or outdated(run, n)]
    if frozen:
        versions = run.config.get("protocol_versions", {})
        named = ", ".join(f"{n.partition('@')[0]} {versions.get(n, '?')}" for n in frozen)
        raise ConfigError(
            f"Run {run.id} holds scores of earlier protocol versions ({named}): resuming it "
            "would score its new answers under other rules than its stored ones. Start a new "
            f"run (without --resume); 'medlens report {run.id}' still reports it under the "
            "versions that scored it."
        )
    return {n: p for n, p in resolve_protocols(run.protocols).items() if not needs_judge(p)}


def score_answer(
    protocols: Mapping[str, ScoringProtocol], sample: Sample, answer: StoredAnswer
) -> dict[str, dict[str, Any]]:
    """Score one stored answer under each protocol, as the store keeps scores."""
    return {name: score_to_json(p.score_answer(sample, answer)) for name, p in protocols.items()}


def sample_as_asked(sample: Sample, prepared: Prepared) -> Sample:
    """``sample`` with its gold boxes in pixels of the view the model was shown. The
    grounding template states that view's size and the model answers in it, while a recipe
    may have resized the image (``max_size``, the backend's ``view_size``); the stored sample
    is the one scored, so re-scoring a run compares in the same frame."""
    boxes = sample.metadata.get("boxes")
    if sample.kind != "grounding" or not boxes or not prepared.views:
        return sample
    from medlens.study.views import box_to_view

    view = prepared.views[0]
    moved = [{**b, "box": [round(v, 2) for v in box_to_view(view, b["box"])]} for b in boxes]
    if all(m["box"] == [float(v) for v in b["box"]] for m, b in zip(moved, boxes)):
        return sample
    return replace(sample, metadata={**sample.metadata, "boxes": moved})


def outdated(run: RunInfo, name: str) -> bool:
    """Whether ``run`` holds scores of ``name`` made under an earlier version of its rule."""
    version = run.config.get("protocol_versions", {}).get(name)
    return (
        "@" not in name
        and name in run.protocols
        and version not in (None, get_protocol(name).version)
    )


def report_key(run: RunInfo, name: str) -> str:
    """The key a report shows ``run``'s scores stored as ``name`` under: ``name`` when they
    are of the protocol's current version, ``name@version`` when of an earlier one."""
    if "@" in name:
        return name
    return scored_key(name, run.config.get("protocol_versions", {}).get(name))


def stored_as(run: RunInfo, key: str) -> str | None:
    """The name under which ``run`` stores the scores a report shows under ``key`` (``name``
    for its current version, ``name@version`` for an earlier one), or None if it has none."""
    name, version = split_key(key)
    recorded = run.config.get("protocol_versions", {})
    if key in run.protocols and (version is not None or not outdated(run, key)):
        return key
    if version is not None and name in run.protocols and recorded.get(name) == version:
        return name
    return None


def rescore_run(
    store: RunStore, run_id: str, protocols: Sequence[str], *, judge: Backend | None = None
) -> RunInfo:
    """Score a stored run's generations under ``protocols`` without running a model. Scores
    of an earlier version of one of them are kept under ``name@version`` (see
    ``protocols.versions``), never overwritten unnamed. A protocol that needs an LLM judge
    gets its verdicts from ``judge`` (cached in the store), and the run records the judge."""
    from medlens.bench.protocols.medevalkit_judge import (
        MedEvalKitJudgeProtocol,
        judge_record,
        judge_verdicts,
    )
    from medlens.errors import ConfigError

    resolved = resolve_protocols(protocols)
    run = store.get_run(run_id)
    stored = store.results(run.id)
    samples = [sample_from_json(r.sample) for r in stored]
    answers = [answer_from_json(r.answer) for r in stored]
    versions = {**run.config.get("protocol_versions", {})}
    names = list(run.protocols)
    observed: dict[str, Any] = {}
    for name, protocol in resolved.items():
        if isinstance(protocol, MedEvalKitJudgeProtocol):
            if judge is None:
                raise ConfigError(
                    f"{name} grades open answers with an LLM judge: pass --judge URL_OR_ID "
                    "(an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1, or a model id)"
                )
            raws = [a.raw for a in answers]
            protocol = judge_verdicts(protocol, samples, raws, judge, cache=store)
            observed["judge"] = judge_record(judge)
        if outdated(run, name):
            kept = scored_key(name, versions[name])
            store.set_scores(run.id, kept, {r.sample_id: r.scores[name] for r in stored})
            versions[kept] = versions[name]
            names.append(kept)
        scores = {
            r.sample_id: score_to_json(protocol.score_answer(sample, answer))
            for r, sample, answer in zip(stored, samples, answers, strict=True)
        }
        store.set_scores(run.id, name, scores)
        versions[name] = protocol.version
    merged = list(dict.fromkeys([*names, *resolved]))
    config = {"protocol_versions": versions, **observed}
    store.update_run(run.id, protocols=merged, config=config)
    return store.get_run(run.id)


def run_prompt(run: RunInfo) -> dict[str, str]:
    """The prompt preset that produced a run's generations: as its config records it, or, for
    a run made before presets were recorded, read from its template versions (``closed@1``:
    medlens@1). ``label`` is ``preset@version``."""
    from medlens.tasks.presets import describe_preset

    recorded = run.config.get("prompt")
    if recorded:
        preset, version = str(recorded["preset"]), str(recorded["version"])
        source = str(recorded.get("source", ""))
    else:
        templates = run.config.get("task_versions") or []
        numbers = {t.rpartition("@")[2] for t in templates if "/" not in t}
        preset, version = "medlens", numbers.pop() if len(numbers) == 1 else "unknown"
        source = "medlens (src/medlens/tasks/prompts/*.txt), not recorded by the run"
    return {
        "preset": preset,
        "version": version,
        "label": f"{preset}@{version}",
        "source": source,
        "description": describe_preset(preset, version),
    }


def prompt_notes(run: RunInfo, protocols: Sequence[str]) -> list[str]:
    """One line when ``run``'s generations came from a prompt preset other than the harness
    prompt of some of ``protocols``: their scores are those rules on another harness's
    prompts, not that harness reproduced end to end. Baselines use no prompt: no line."""
    if run.role == "baseline":
        return []
    prompt = run_prompt(run)
    keys = [report_key(run, p) for p in protocols]
    others = [key for key in keys if as_scored(key).harness_prompt != prompt["preset"]]
    if not others:
        return []
    note = (
        f"{run.id}: generations from prompt preset {prompt['label']}; scores under "
        f"{', '.join(others)} apply their harness's rules to these prompts, not that harness "
        "end to end (medlens eval --harness NAME sends its prompts too)"
    )
    return [note]
