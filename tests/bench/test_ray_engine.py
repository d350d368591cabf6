"""``medlens eval --engine ray`` on a real local Ray cluster (one per module) with real
replicas (a tiny Qwen2.5-VL in each actor) on VQA-RAD: the rows it stores are those of the
local engine, also when a replica is killed mid-run; a driver killed with SIGKILL resumes
with every sample once; replicas that always fail leave error rows that the report counts."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from medlens.bench.store import RunStore
from medlens.cli.main import main
from medlens.types import Generation, Request

ray = pytest.importorskip("ray", reason="the ray extra is not installed")
torch = pytest.importorskip("torch")

# The failing backend below lives in this file, which Ray workers cannot import.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

LIMIT = 10


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A local Ray cluster of 2 CPUs; its address, for drivers in other processes."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield str(ray.get_runtime_context().gcs_address)
    ray.shutdown()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from medlens.testing.tiny import build_tiny_model

    return build_tiny_model("qwen2_5_vl", tmp_path_factory.mktemp("tiny") / "qwen")


def _args(data: Path, model: Path, store: Path, *extra: str) -> list[str]:
    return [
        "eval",
        "vqa-rad",
        "--model",
        str(model),
        "--limit",
        str(LIMIT),
        "--batch-size",
        "2",
        "--data-dir",
        str(data / "vqa-rad"),
        "--protocol",
        "medlens",
        "--max-new-tokens",
        "6",
        "--device",
        "cpu",
        "--store",
        str(store),
        "--no-progress",
        *extra,
    ]


def _rows(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every stored row of every run, by run model, without what differs between two runs of
    the same spec (timings, creation times)."""
    store = RunStore(db)
    out = {}
    for run in store.runs():
        assert run.status == "complete", run
        out[run.model] = [
            (
                r.sample_id,
                r.position,
                r.request_key,
                r.prompt,
                r.raw,
                {k: v for k, v in r.answer.items() if k != "timings"},
                r.scores,
                r.cached,
                r.error,
            )
            for r in store.results(run.id)
        ]
    store.close()
    return out


def _stored(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return int(con.execute("SELECT COUNT(*) FROM results").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return 0


@pytest.fixture(scope="module")
def local_rows(shared_data: Path, tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The local engine's rows, its model on one thread as each replica's (``num_cpus=1``):
    CPU kernels sum in an order that depends on the thread count."""
    db = tmp_path_factory.mktemp("local") / "local.sqlite"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(_args(shared_data, tiny, db)) == 0
    finally:
        torch.set_num_threads(threads)
    return _rows(db)


def test_engine_flags_are_checked_before_anything_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from medlens.bench.engines import ENGINES as REGISTERED
    from medlens.bench.engines.ray import replica_pool
    from medlens.cli.eval import ENGINES
    from medlens.errors import ConfigError

    assert list(ENGINES) == REGISTERED.names()  # the --help copy of the registry
    assert (
        main(["eval", "vqa-rad", "--model", "prior", "--address", "auto", "--replicas", "2"]) == 2
    )
    assert "--address, --replicas choose the replicas of the ray engine" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="'prior' is a baseline"):
        replica_pool("prior", replicas=2)


def _replicas(state: str = "ALIVE") -> list[dict[str, Any]]:
    """The replica actors of the cluster in ``state``, from its actor table."""
    from ray._private.state import state as cluster_state

    return [
        a
        for a in cluster_state.actor_table(None).values()
        if a["ActorClassName"] == "Replica" and a["State"] == state
    ]


@pytest.mark.slow
@pytest.mark.data
def test_a_ray_run_stores_what_the_local_engine_stores_even_when_a_replica_dies(
    cluster: str, shared_data: Path, tiny: Path, local_rows: Any, tmp_path: Path
) -> None:
    db = tmp_path / "ray.sqlite"
    killed: list[str] = []

    def kill_a_replica() -> None:
        while _stored(db) < 2:
            time.sleep(0.02)
        victim = _replicas()[0]
        os.kill(victim["Pid"], signal.SIGKILL)
        killed.append(victim["ActorID"])

    killer = threading.Thread(target=kill_a_replica, daemon=True)
    killer.start()
    assert main(_args(shared_data, tiny, db, "--engine", "ray", "--replicas", "2")) == 0
    killer.join(timeout=5)
    assert killed, "no replica was killed mid-run"
    restarted = [a for a in _replicas("DEAD") if a["ActorID"] == killed[0]]
    assert restarted and restarted[0]["NumRestarts"] >= 1  # Ray brought it back
    assert _rows(db) == local_rows
    assert set(local_rows) == {str(tiny), "prior", "no-image", "random"}


@pytest.mark.slow
@pytest.mark.data
def test_a_killed_driver_resumes_with_every_sample_once(
    cluster: str, shared_data: Path, tiny: Path, local_rows: Any, tmp_path: Path
) -> None:
    db = tmp_path / "killed.sqlite"
    args = _args(shared_data, tiny, db, "--engine", "ray", "--address", cluster, "--replicas", "2")
    command = [sys.executable, "-m", "medlens.cli.main", *args]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while _stored(db) < 4:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "the driver stored nothing in time"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _stored(db) < len(local_rows) * LIMIT, "the run was not interrupted mid-way"
    done = subprocess.run([*command, "--resume"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert _rows(db) == local_rows  # each sample once, as the local engine stored it


class AlwaysFails:
    """A replica whose device is broken: every batch raises."""

    name: ClassVar[str] = "transformers"
    remote: ClassVar[bool] = False
    allow_identified = False
    supports_scoring: ClassVar[bool] = True
    model_id = "broken-gpu"
    view_size = None

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    def close(self) -> None:
        pass


@pytest.mark.slow
@pytest.mark.data
def test_replicas_that_always_fail_leave_counted_error_rows(
    cluster: str, shared_data: Path, tmp_path: Path
) -> None:
    from medlens.bench.engines.ray import ReplicaPool
    from medlens.bench.report import summarize
    from medlens.bench.runner import EvalSpec, evaluate

    spec = EvalSpec(
        benchmarks=("vqa-rad",),
        model="broken-gpu",
        backend="transformers",
        limit=6,
        batch_size=3,
        data_dir=str(shared_data / "vqa-rad"),
        protocols=("medlens",),
        baselines=False,
        engine="ray",
    )
    store = RunStore(tmp_path / "r.sqlite")
    pools: list[ReplicaPool] = []

    def factory() -> ReplicaPool:
        pools.append(ReplicaPool(AlwaysFails, 2, num_cpus=0.5, max_attempts=2))
        return pools[-1]

    (outcome,) = evaluate(spec, store, progress=False, backend_factory=factory)
    rows = store.results(outcome.run.id)
    assert len(rows) == len({r.sample_id for r in rows}) == 6
    assert all(r.error and "RuntimeError" in r.error for r in rows)
    assert summarize(store, outcome.run, ("medlens",)).n_errors == 6
    assert pools[0].stats.error_generations == 6
    store.close()
