"""Scale-out of the ray engine: items/s for 1, 2 and 4 replicas, and the driver's peak memory
as the benchmark grows.

The workload goes through the whole ``medlens eval`` path (plan, loading, de-identification
of headers and question text, recipe views, the SQLite store, scoring) on a synthetic
benchmark written here: ``--items`` distinct 128×128 grey studies with a closed question each.

- **Throughput**: the tiny Qwen2.5-VL (``medlens.testing.tiny``, the real architecture with
  random weights) in every replica, greedy, ``--max-new-tokens`` tokens, on a local Ray
  cluster of ``--cpus`` CPUs: one CPU per replica while they last, then ``cpus / N`` (Ray
  gives a replica one intra-op thread either way; a small model on a loaded machine runs far
  slower on two threads than on one, as OpenMP threads wait for each other). The local
  engine on one thread is printed beside it. Scaling efficiency is items/s at N over N ×
  items/s at 1. On a 2-core machine the CPU caps it: the replicas, the driver and Ray share
  the cores.
- **Driver memory**: a driver process per size (``--memory-items``, default 1,000 and 5,000)
  runs the same path with 2 replicas of a scripted backend (no model: the driver's own work
  is what is measured); its peak RSS must stay flat as items grow, since the engine draws
  prepared batches only as replicas free (``replicas × 2`` in flight).

Load on the machine (1-minute load average) is printed with every figure: on a shared
machine it says how far the numbers can be trusted.

    python benchmarks/scale_out.py                        # 1, 2, 4 replicas; 1k and 5k items
    python benchmarks/scale_out.py --items 48 --replicas 1,2 --memory-items 200
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

NAME = "synthetic-scale"
MARKER = "questions.json"


def write_benchmark(root: Path, items: int) -> Path:
    """``items`` distinct grey PNG studies and one closed question about each."""
    from PIL import Image

    folder = root / f"{NAME}-{items}"
    if (folder / MARKER).exists():
        return folder
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(items):
        pixels = (rng.random((128, 128)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / "images" / f"{i:05d}.png")
        rows.append({"id": f"s{i:05d}", "image": f"images/{i:05d}.png", "answer": "yes"})
    (folder / MARKER).write_text(json.dumps(rows))
    return folder


def register() -> None:
    """The synthetic benchmark, registered for this process (the driver loads it)."""
    from medlens.bench.benchmark import BENCHMARKS, Benchmark
    from medlens.bench.samples import Sample

    class SyntheticScale(Benchmark):
        name = NAME
        local_marker = MARKER
        local_dirname = NAME
        deidentified_release = True  # generated noise: nothing for OCR to find
        scoring_rule = "exact match of yes/no"

        def load_local(self, root: Path, split: str) -> list[Sample]:
            rows = json.loads((root / MARKER).read_text())
            return [
                Sample(
                    id=r["id"],
                    benchmark=NAME,
                    split=split,
                    question="Is there an abnormality in this image?",
                    answers=(r["answer"],),
                    kind="closed",
                    images=(str(root / r["image"]),),
                    candidates=("yes", "no"),
                )
                for r in rows
            ]

    if NAME not in BENCHMARKS:
        BENCHMARKS.register(NAME, SyntheticScale)


def scripted_answer(request: Any) -> str:
    return "yes"


def evaluate(
    data: Path, store_path: Path, factory: Any, *, engine: str, batch_size: int, tokens: int
) -> Any:
    """One ``medlens eval`` of the synthetic benchmark at ``data`` (baselines off)."""
    from medlens.bench.runner import EvalSpec, evaluate
    from medlens.bench.store import RunStore
    from medlens.types import GenerationOptions

    spec = EvalSpec(
        benchmarks=(NAME,),
        model="model",
        backend="transformers",
        batch_size=batch_size,
        data_dir=str(data),
        protocols=("medlens",),
        baselines=False,
        options=GenerationOptions(max_new_tokens=tokens),
        engine=engine,
    )
    store = RunStore(store_path)
    try:
        (outcome,) = evaluate(spec, store, progress=False, backend_factory=factory)
        return outcome
    finally:
        store.close()


def tiny_pool(model: Path, replicas: int, cpus: float) -> Any:
    """``replicas`` copies of the tiny model on the cluster, ``cpus`` CPUs each."""
    import functools

    from medlens.backends.base import load_backend
    from medlens.bench.engines.ray import ReplicaPool

    factory = functools.partial(load_backend, str(model), backend="transformers", device="cpu")
    return ReplicaPool(factory, replicas, num_cpus=cpus)


def throughput(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    import functools

    import ray
    import torch

    from medlens.backends.base import load_backend
    from medlens.testing.tiny import build_tiny_model

    model = build_tiny_model("qwen2_5_vl", work / "tiny-qwen")
    data = write_benchmark(work, args.items)
    run = functools.partial(evaluate, batch_size=args.batch_size, tokens=args.max_new_tokens)
    torch.set_num_threads(1)  # as each replica: one intra-op thread (see the module docstring)
    local = functools.partial(load_backend, str(model), backend="transformers", device="cpu")
    # Once on a few items first: imports and first calls are not what is measured.
    run(write_benchmark(work, 8), work / "warm-up.sqlite", local, engine="local")
    load = os.getloadavg()[0]
    outcome = run(data, work / "local.sqlite", local, engine="local")
    rows = [_row("local", 1, 1.0, outcome, load, 0.0)]
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    try:
        for n in args.replicas:
            started = time.perf_counter()
            cpus = min(1.0, args.cpus / n)
            pool = functools.partial(tiny_pool, model, n, cpus)
            load = os.getloadavg()[0]
            outcome = run(data, work / f"ray-{n}.sqlite", pool, engine="ray")
            startup = time.perf_counter() - started - outcome.elapsed_s
            rows.append(_row("ray", n, cpus, outcome, load, startup))
    finally:
        ray.shutdown()
    base = next((r for r in rows if r["engine"] == "ray" and r["replicas"] == 1), None)
    for row in rows:
        if base is not None and row["engine"] == "ray":
            scaled = row["replicas"] * base["items_per_s"]
            row["efficiency"] = round(row["items_per_s"] / scaled, 3)
    return rows


def _row(
    engine: str, replicas: int, cpus: float, outcome: Any, load: float, startup: float
) -> dict[str, Any]:
    return {
        "engine": engine,
        "replicas": replicas,
        "cpus_per_replica": round(cpus, 2),
        "items": outcome.n_new,
        "seconds": round(outcome.elapsed_s, 2),
        "items_per_s": round(outcome.n_new / outcome.elapsed_s, 2),
        "replica_startup_s": round(startup, 1),
        "load_avg_1m": round(load, 2),
    }


def driver_memory(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """One driver process for ``--driver-items`` items; prints its peak RSS."""
    import functools

    from medlens.backends.base import load_backend
    from medlens.bench.engines.ray import ReplicaPool

    data = write_benchmark(work, args.driver_items)
    factory = functools.partial(
        load_backend, "scripted", backend="scripted", answers=scripted_answer
    )
    outcome = evaluate(
        data,
        work / f"memory-{args.driver_items}.sqlite",
        lambda: ReplicaPool(factory, 2, num_cpus=0.5),
        engine="ray",
        batch_size=args.batch_size,
        tokens=args.max_new_tokens,
    )
    return {
        "items": outcome.n_new,
        "seconds": round(outcome.elapsed_s, 1),
        "items_per_s": round(outcome.n_new / outcome.elapsed_s, 1),
        "driver_peak_rss_mib": round(peak_rss_kib() / 1024, 1),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def peak_rss_kib() -> int:
    """This process's peak resident memory: ``VmHWM`` on Linux (``ru_maxrss`` would carry
    the peak of the parent that started it across ``exec``), else ``ru_maxrss``."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=240, help="throughput benchmark size")
    parser.add_argument("--replicas", default="1,2,4", help="replica counts to measure")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--memory-items", default="1000,5000", help="driver memory sizes")
    parser.add_argument("--workdir", help="where the synthetic studies go (default: a temp dir)")
    parser.add_argument("--driver-items", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.replicas = [int(n) for n in args.replicas.split(",") if n]
    register()
    with tempfile.TemporaryDirectory(prefix="medlens-scale-") as temp:
        work = Path(args.workdir or temp)
        if args.driver_items:
            print(json.dumps(driver_memory(args, work)))
            return 0
        figures: dict[str, Any] = {"cpu_count": os.cpu_count()}
        figures["throughput"] = throughput(args, work)
        figures["driver_memory"] = []
        for items in (int(n) for n in args.memory_items.split(",") if n):
            command = [sys.executable, __file__, "--driver-items", str(items)]
            command += ["--workdir", str(work), "--batch-size", str(args.batch_size)]
            out = subprocess.run(command, capture_output=True, text=True, check=True)
            figures["driver_memory"].append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
