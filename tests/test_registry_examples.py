"""Every plug-in's docstring example runs, and names the plug-in (as Hugging Face ``evaluate``
runs each metric's examples): the documentation of a registry entry cannot drift from what the
entry does. The examples live in the docstring of the plug-in's module, class or factory."""

from __future__ import annotations

import doctest
import importlib
import inspect
import sys
from typing import Any

import pytest

from medlens.registry import Registry

REGISTRIES = {
    "protocols": "medlens.bench.protocols:PROTOCOLS",
    "benchmarks": "medlens.bench.benchmarks:BENCHMARKS",
    "recipes": "medlens.study.recipes:RECIPES",
    "probes": "medlens.trust.probes:PROBES",
    "question-shifts": "medlens.trust.probes:QUESTION_SHIFTS",
    "calibrators": "medlens.trust.calibration:CALIBRATORS",
}
"""Registries whose every entry must carry an example (``module:attribute``)."""


def registry(kind: str) -> Registry[Any]:
    module, _, attribute = REGISTRIES[kind].partition(":")
    found: Registry[Any] = getattr(importlib.import_module(module), attribute)
    return found


ENTRIES = [(kind, name) for kind in REGISTRIES for name in registry(kind).names()]


def _examples(entry: Any) -> list[doctest.DocTest]:
    """Doctests of the entry (a class or a factory function; for an instance such as a
    recipe, its class) and of the module that defines it."""
    owner = entry if isinstance(entry, type) or inspect.isfunction(entry) else type(entry)
    finder = doctest.DocTestFinder(recurse=False)
    module = sys.modules[owner.__module__]
    found = finder.find(module, module.__name__) + finder.find(owner, owner.__qualname__)
    return [t for t in found if t.examples]


@pytest.mark.parametrize(("kind", "name"), ENTRIES, ids=[f"{k}:{n}" for k, n in ENTRIES])
def test_every_plugin_example_runs(kind: str, name: str) -> None:
    tests = _examples(registry(kind).get(name))
    named = (f'"{name}"', f'"{name}:')  # the bare name, or a spec with parameters
    mentions = [t for t in tests if any(n in e.source for e in t.examples for n in named)]
    assert mentions, f"{kind} '{name}' has no docstring example that names it"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in tests:
        runner.run(test, out=lambda text: print(text, end=""))
    assert runner.summarize(verbose=False).failed == 0


def test_the_registry_list_is_not_empty() -> None:
    assert len(ENTRIES) >= 7  # the shipped protocols at least
    shipped = {kind: len(registry(kind).names()) for kind in REGISTRIES}
    assert all(shipped.values()), shipped  # every registry has its plug-ins in the list
