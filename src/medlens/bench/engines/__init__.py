"""Evaluation engines: where generation runs (DESIGN.md: "only where generation runs differs").

An engine implements ``medlens.pipeline.Engine``: it turns batches of prepared, de-identified
requests into generations, one list per batch, in batch order. The driver
(``medlens.bench.execute``) keeps the plan, the cache, the store writer and scoring, so a
cluster run and a laptop run store identical results. ``local`` (the default) generates in
this process; ``ray`` on model replicas of a Ray cluster (``medlens.bench.engines.ray``).
Engines register here by name, lazily, so naming them imports nothing.
"""

from __future__ import annotations

from medlens.pipeline import Engine
from medlens.registry import Registry

ENGINES: Registry[type[Engine]] = Registry("evaluation engine")
ENGINES.register("local", "medlens.pipeline:InProcess")
ENGINES.register("ray", "medlens.bench.engines.ray:RayEngine")


def get_engine(name: str) -> Engine:
    """A new engine of the kind registered as ``name`` ("did you mean ..." when unknown)."""
    return ENGINES.get(name)()


__all__ = ["ENGINES", "Engine", "get_engine"]
