"""The SQLite run store: runs, atomic result batches, the generation cache, durability."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from medlens.bench.benchmark import QualityIssue, Sample
from medlens.bench.store import (
    RunInfo,
    RunStore,
    StoredResult,
    default_store_path,
    generation_from_json,
    generation_to_json,
    sample_from_json,
    sample_to_json,
)
from medlens.errors import DataError, UnknownNameError
from medlens.types import Generation, Timings, TokenLogprob


def _result(sample_id: str, position: int, raw: str = "yes") -> StoredResult:
    sample = Sample(
        id=sample_id,
        benchmark="toy",
        split="test",
        question="Is there a fracture?",
        answers=("yes",),
        kind="closed",
        images=("/nowhere/img.png",),
        metadata={"question_type": "ABN"},
    )
    return StoredResult(
        sample_id=sample_id,
        position=position,
        request_key=f"key-{sample_id}",
        sample=sample_to_json(sample),
        prompt="[user] Is there a fracture?",
        raw=raw,
        answer={"raw": raw, "text": raw, "parsed": True},
        scores={"medlens": {"outcome": "correct", "score": 1.0, "metrics": {}, "extracted": raw}},
        timings={"total_s": 0.5},
        cached=False,
    )


def _run(store: RunStore, **overrides: object) -> RunInfo:
    fields = {
        "benchmark": "toy",
        "split": "test",
        "model": "m",
        "backend": "scripted",
        "protocols": ["medlens"],
        "config": {"limit": None},
    }
    fields.update(overrides)
    return store.create_run(**fields)  # type: ignore[arg-type]


def test_default_path_follows_medlens_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDLENS_HOME", str(tmp_path / "home"))
    assert default_store_path() == tmp_path / "home" / "runs.sqlite"
    store = RunStore()
    assert Path(store.path).exists()
    store.close()


def test_runs_are_created_found_by_prefix_and_grouped(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    issue = QualityIssue("duplicate-question", 2, "twice", ("a", "b"))
    model = _run(store, n_planned=3, quality=[issue])
    base = _run(store, model="prior", backend="prior", role="baseline", group_id=model.group_id)
    other = _run(store, benchmark="other")

    assert model.group_id == model.id and base.group_id == model.id
    assert other.group_id == other.id
    assert store.get_run(model.id[:6]).id == model.id
    assert model.quality == (
        {"kind": "duplicate-question", "count": 2, "detail": "twice", "examples": ["a", "b"]},
    )
    assert [r.id for r in store.group(base.id)] == [model.id, base.id]
    assert {r.id for r in store.runs(benchmark="toy")} == {model.id, base.id}
    assert store.runs(model="prior")[0].label == "prior (baseline)"

    store.update_run(model.id, status="complete", add_elapsed_s=1.5, config={"recipes": ["x"]})
    store.update_run(model.id, add_elapsed_s=2.0)
    again = store.get_run(model.id)
    assert again.status == "complete"
    assert again.elapsed_s == pytest.approx(3.5)
    assert again.config == {"limit": None, "recipes": ["x"]}

    with pytest.raises(UnknownNameError, match="Recent runs"):
        store.get_run("zzzz")
    store.close()


def test_ambiguous_prefix_is_an_error(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    runs = [_run(store) for _ in range(40)]
    firsts = [r.id[0] for r in runs]
    shared = max(set(firsts), key=firsts.count)
    with pytest.raises(UnknownNameError, match="matches several runs"):
        store.get_run(shared)
    store.close()


def test_results_round_trip_in_order(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    run = _run(store)
    store.add_results(run.id, [_result("b", 1, "no"), _result("a", 0)])
    store.add_results(run.id, [_result("c", 2)])
    rows = store.results(run.id)
    assert [r.sample_id for r in rows] == ["a", "b", "c"]
    assert rows[1].raw == "no" and rows[1].answer["text"] == "no"
    assert rows[0].scores["medlens"]["outcome"] == "correct"
    assert rows[0].timings == {"total_s": 0.5}
    assert store.done_ids(run.id) == {"a", "b", "c"}
    assert store.count(run.id) == 3
    restored = sample_from_json(rows[0].sample)
    assert restored.metadata["question_type"] == "ABN" and restored.images == ()
    assert "/nowhere" not in str(rows[0].sample)  # image paths are not kept
    store.close()


def test_a_duplicate_sample_rolls_back_the_whole_batch(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    run = _run(store)
    store.add_results(run.id, [_result("a", 0)])
    with pytest.raises(DataError, match="already holds"):
        store.add_results(run.id, [_result("b", 1), _result("a", 0)])
    assert store.done_ids(run.id) == {"a"}
    # The same sample id in another run is fine.
    other = _run(store)
    store.add_results(other.id, [_result("a", 0)])
    assert store.count(other.id) == 1
    store.close()


def test_set_scores_adds_a_protocol_without_touching_others(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    run = _run(store)
    store.add_results(run.id, [_result("a", 0), _result("b", 1)])
    new = {"outcome": "wrong", "score": 0.0, "metrics": {}, "extracted": None}
    store.set_scores(run.id, "llava-med", {"a": new, "b": new})
    rows = store.results(run.id)
    assert set(rows[0].scores) == {"medlens", "llava-med"}
    assert rows[1].scores["llava-med"]["outcome"] == "wrong"
    assert rows[1].scores["medlens"]["outcome"] == "correct"
    store.close()


def test_generation_cache_round_trip_is_lossless(tmp_path: Path) -> None:
    generation = Generation(
        request_id="r1",
        text="yes",
        model="tiny",
        backend="transformers",
        tokens=(TokenLogprob("yes", -0.1, (("yes", -0.1), ("no", -2.4))),),
        candidate_logprobs={"yes": -0.1, "no": -2.4},
        samples=("yes", "no"),
        finish_reason="stop",
        timings=Timings(prefill_s=0.25, decode_s=0.5, total_s=0.75),
    )
    assert generation_from_json(generation_to_json(generation)) == generation
    path = tmp_path / "runs.sqlite"
    store = RunStore(path)
    assert store.get("k") is None
    store.put("k", generation)
    store.close()
    reopened = RunStore(path)  # committed: visible from a new connection
    assert reopened.get("k") == generation
    reopened.close()


def test_store_is_wal_and_rejects_foreign_files(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    RunStore(path).close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    with pytest.raises(DataError, match="schema version 99"):
        RunStore(path)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(DataError, match="cannot be opened"):
        RunStore(junk)


_WRITER = textwrap.dedent(
    """
    import sys
    from medlens.bench.store import RunStore, StoredResult
    store = RunStore(sys.argv[1])
    run = store.create_run(benchmark="toy", split="test", model="m", backend="b",
                           protocols=[], config={})
    print(run.id, flush=True)
    i = 0
    while True:
        batch = [StoredResult(f"s{i + j:06d}", i + j, "k", {}, "", "x" * 2000, {}, {}, {}, False)
                 for j in range(5)]
        store.add_results(run.id, batch)
        i += 5
        print(i, flush=True)
    """
)


def test_kill_9_keeps_every_committed_batch_whole(tmp_path: Path) -> None:
    """A writer killed with SIGKILL mid-stream leaves whole batches only, all it reported."""
    path = tmp_path / "runs.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    reported = 0
    deadline = time.monotonic() + 60
    while reported < 200 and time.monotonic() < deadline:
        reported = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = RunStore(path)
    count = store.count(run_id)
    assert count >= reported > 0
    assert count % 5 == 0  # batches are atomic
    assert store.done_ids(run_id) == {f"s{i:06d}" for i in range(count)}
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store.close()
