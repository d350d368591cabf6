"""The runner on real VQA-RAD and SLAKE rows: baselines beside the model, the cache,
re-scoring, batch-size invariance (scripted and tiny real-architecture models), errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from medlens.backends.scripted import ScriptedBackend
from medlens.bench.benchmarks import get_benchmark
from medlens.bench.plan import prior_training_rows
from medlens.bench.protocols import get_protocol
from medlens.bench.quality import image_key, question_key
from medlens.bench.runner import EvalSpec, evaluate
from medlens.bench.scoring import rescore_run
from medlens.bench.store import RunStore, sample_from_json
from medlens.errors import ConfigError, UnknownNameError
from medlens.normalize import normalize_answer
from medlens.types import Request

LIMIT = 12


def _yes_or_chest(request: Request) -> str:
    return "Yes." if request.kind == "closed" else "chest"


def _scripted(log: list[ScriptedBackend]) -> Callable[[], ScriptedBackend]:
    def make() -> ScriptedBackend:
        backend = ScriptedBackend("scripted-vlm", answers=_yes_or_chest)
        log.append(backend)
        return backend

    return make


def _answers(store: RunStore, run_id: str) -> list[tuple[Any, ...]]:
    """What must not depend on batching: ids, order, prompt, raw, parsed answer, scores."""
    return [
        (r.sample_id, r.position, r.prompt, r.raw, r.answer["text"], r.answer["parsed"], r.scores)
        for r in store.results(run_id)
    ]


@pytest.mark.data
def test_vqa_rad_model_and_baselines_end_to_end(shared_data: Path, tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    made: list[ScriptedBackend] = []
    spec = EvalSpec(
        ("vqa-rad",),
        model="scripted-vlm",
        backend="scripted",
        limit=LIMIT,
        data_dir=str(shared_data / "vqa-rad"),
        protocols=("medlens", "llava-med"),
    )
    outcomes = evaluate(spec, store, progress=False, backend_factory=_scripted(made))

    assert [(o.run.model, o.run.role) for o in outcomes] == [
        ("scripted-vlm", "model"),
        ("prior", "baseline"),
        ("no-image", "baseline"),
        ("random", "baseline"),
    ]
    assert len({o.run.group_id for o in outcomes}) == 1
    assert all(o.run.status == "complete" and o.n_new == LIMIT for o in outcomes)
    assert len(made) == 1  # one model load, shared with the no-image baseline

    samples = get_benchmark("vqa-rad").load("test", shared_data / "vqa-rad")[:LIMIT]
    model = store.results(outcomes[0].run.id)
    assert [r.sample_id for r in model] == [s.id for s in samples]
    # The closed accuracy under medlens rules is the share of closed references that are "yes".
    closed = [s for s in samples if s.kind == "closed"]
    expected = sum(normalize_answer(s.answer) == "yes" for s in closed) / len(closed)
    got = [r.scores["medlens"]["score"] for r in model if r.sample["kind"] == "closed"]
    assert sum(got) / len(got) == pytest.approx(expected)
    assert all(s.question in r.prompt and "[user]" in r.prompt for s, r in zip(samples, model))
    assert all(r.request_key and not r.cached for r in model)

    # no-image asked the same model the same questions without images.
    requests = made[0].requests
    with_images = [r for r in requests if r.images]
    blind = [r for r in requests if not r.images]
    assert len(with_images) == len(blind) == LIMIT
    assert [r.question for r in blind] == [r.question for r in with_images]
    no_image = store.results(outcomes[2].run.id)
    assert {r.request_key for r in no_image}.isdisjoint({r.request_key for r in model})

    # The fingerprint of the run.
    config = outcomes[0].run.config
    assert config["limit"] == LIMIT and config["benchmark_source"] == "local"
    assert config["task_versions"] and config["recipes"]
    assert set(config["protocol_versions"]) == {"medlens", "llava-med"}
    assert {q["kind"] for q in outcomes[0].run.quality} >= {"image-leakage"}
    store.close()


@pytest.mark.data
def test_prior_is_fitted_on_train_without_leaked_questions(shared_data: Path) -> None:
    bench = get_benchmark("vqa-rad")
    test = bench.load("test", shared_data / "vqa-rad")
    train = bench.load("train", shared_data / "vqa-rad")
    clean = prior_training_rows(bench, train, test)
    leaked = {(image_key(s), question_key(s.question)) for s in test}
    assert 0 < len(clean) < len(train)
    assert not any((image_key(t), question_key(t.question)) in leaked for t in clean)
    slake = get_benchmark("slake")  # no leakage helper: the whole train split
    slake_train = slake.load("train", shared_data / "slake")
    assert prior_training_rows(slake, slake_train, []) == slake_train


@pytest.mark.data
def test_slake_prior_answers_the_most_frequent_train_answer(
    shared_data: Path, tmp_path: Path
) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    spec = EvalSpec(
        ("slake",),
        model="prior",
        limit=LIMIT,
        data_dir=str(shared_data / "slake"),
        protocols=("medlens",),
        baselines=False,
    )
    (outcome,) = evaluate(spec, store, progress=False)
    assert outcome.run.backend == "prior" and outcome.run.role == "model"
    train = get_benchmark("slake").load("train", shared_data / "slake")
    for row in store.results(outcome.run.id):
        sample = sample_from_json(row.sample)
        if sample.kind != "open":
            continue
        pool = [
            " ".join(t.answer.lower().split())
            for t in train
            if t.kind == "open"
            and t.metadata.get("question_type") == sample.metadata["question_type"]
        ]
        top = max(pool.count(a) for a in pool)
        assert pool.count(row.raw) == top  # one of the most frequent answers of its category
    store.close()


@pytest.mark.data
def test_identical_requests_are_served_from_the_cache(shared_data: Path, tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    spec = EvalSpec(
        ("vqa-rad",),
        model="scripted-vlm",
        backend="scripted",
        limit=8,
        data_dir=str(shared_data / "vqa-rad"),
        protocols=("medlens",),
        baselines=False,
    )
    made: list[ScriptedBackend] = []
    (first,) = evaluate(spec, store, progress=False, backend_factory=_scripted(made))
    (second,) = evaluate(spec, store, progress=False, backend_factory=_scripted(made))
    assert first.run.id != second.run.id
    assert first.n_cached == 0 and second.n_cached == 8
    assert len(made[0].requests) == 8 and made[1].requests == []
    assert _answers(store, first.run.id) == _answers(store, second.run.id)
    assert all(r.cached for r in store.results(second.run.id))
    store.close()


@pytest.mark.data
def test_rescore_adds_a_protocol_from_stored_generations(shared_data: Path, tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    spec = EvalSpec(
        ("vqa-rad",),
        model="scripted-vlm",
        backend="scripted",
        limit=12,
        data_dir=str(shared_data / "vqa-rad"),
        protocols=("medlens",),
        baselines=False,
    )
    (outcome,) = evaluate(spec, store, progress=False, backend_factory=_scripted([]))
    run = rescore_run(store, outcome.run.id, ["lmms-eval"])
    assert run.protocols == ("medlens", "lmms-eval")
    assert set(run.config["protocol_versions"]) == {"medlens", "lmms-eval"}
    lmms = get_protocol("lmms-eval")
    for row in store.results(run.id):
        direct = lmms.score(sample_from_json(row.sample), row.raw, parsed=row.answer["text"])
        assert row.scores["lmms-eval"]["score"] == direct.score
        assert row.scores["lmms-eval"]["outcome"] == direct.outcome
    store.close()


@pytest.mark.data
@pytest.mark.parametrize("benchmark", ["vqa-rad", "slake"])
def test_same_results_whatever_the_batch_size(
    shared_data: Path, tmp_path: Path, benchmark: str
) -> None:
    results = []
    for batch_size in (1, 7):
        store = RunStore(tmp_path / f"runs-{batch_size}.sqlite")
        spec = EvalSpec(
            (benchmark,),
            model="scripted-vlm",
            backend="scripted",
            limit=LIMIT,
            batch_size=batch_size,
            data_dir=str(shared_data / benchmark),
        )
        outcomes = evaluate(spec, store, progress=False, backend_factory=_scripted([]))
        results.append([_answers(store, o.run.id) for o in outcomes])
        store.close()
    assert results[0] == results[1]
    assert len(results[0]) == 4 and all(len(r) == LIMIT for r in results[0])


@pytest.mark.slow
@pytest.mark.data
def test_tiny_model_same_results_whatever_the_batch_size(shared_data: Path, tmp_path: Path) -> None:
    from medlens.testing.tiny import build_tiny_model

    model = build_tiny_model("qwen2_5_vl", tmp_path / "tiny-qwen")
    results = []
    for batch_size in (1, 7):
        store = RunStore(tmp_path / f"runs-{batch_size}.sqlite")
        spec = EvalSpec(
            ("vqa-rad",),
            model=str(model),
            backend="transformers",
            limit=10,
            batch_size=batch_size,
            data_dir=str(shared_data / "vqa-rad"),
            protocols=("medlens",),
            baselines=False,
        )
        (outcome,) = evaluate(spec, store, progress=False)
        assert outcome.n_new == 10 and outcome.run.config["recipes"]
        results.append(_answers(store, outcome.run.id))
        store.close()
    assert results[0] == results[1]
    assert any(row[3] for row in results[0])  # the tiny model did write something


def test_wrong_names_and_flags_fail_clearly(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    with pytest.raises(UnknownNameError, match="Did you mean 'vqa-rad'"):
        evaluate(EvalSpec(("vqa-rd",), model="prior"), store, progress=False)
    with pytest.raises(UnknownNameError, match="scoring protocol"):
        evaluate(EvalSpec(("vqa-rad",), model="prior", protocols=("nope",)), store)
    with pytest.raises(ConfigError, match="batch-size"):
        EvalSpec(("vqa-rad",), model="prior", batch_size=0)
    with pytest.raises(ConfigError, match="at least one benchmark"):
        EvalSpec((), model="prior")
    with pytest.raises(ConfigError, match="to resume"):
        evaluate(EvalSpec(("vqa-rad",), model="prior"), store, resume=True, progress=False)
    store.close()
