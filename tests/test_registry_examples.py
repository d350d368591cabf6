"""Every plug-in's docstring example runs, and names the plug-in (as Hugging Face ``evaluate``
runs each metric's examples): the documentation of a registry entry cannot drift from what the
entry does. The examples live in the docstring of the plug-in's module or class."""

from __future__ import annotations

import doctest
import sys
from collections.abc import Callable
from typing import Any

import pytest

from medlens.registry import Registry


def _protocols() -> Registry[Any]:
    from medlens.bench.protocols import PROTOCOLS

    return PROTOCOLS


REGISTRIES: dict[str, Callable[[], Registry[Any]]] = {"protocols": _protocols}
"""Registries whose every entry must carry an example."""

ENTRIES = [(kind, name) for kind, registry in REGISTRIES.items() for name in registry().names()]


def _examples(entry: Any) -> list[doctest.DocTest]:
    """Doctests of the entry's class and of the module that defines it."""
    cls = entry if isinstance(entry, type) else type(entry)
    finder = doctest.DocTestFinder(recurse=False)
    module = sys.modules[cls.__module__]
    found = finder.find(module, module.__name__) + finder.find(cls, cls.__qualname__)
    return [t for t in found if t.examples]


@pytest.mark.parametrize(("kind", "name"), ENTRIES, ids=[f"{k}:{n}" for k, n in ENTRIES])
def test_every_plugin_example_runs(kind: str, name: str) -> None:
    tests = _examples(REGISTRIES[kind]().get(name))
    mentions = [t for t in tests if any(f'"{name}"' in e.source for e in t.examples)]
    assert mentions, f"{kind} '{name}' has no docstring example that names it"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in tests:
        runner.run(test, out=lambda text: print(text, end=""))
    assert runner.summarize(verbose=False).failed == 0


def test_the_registry_list_is_not_empty() -> None:
    assert len(ENTRIES) >= 7  # the shipped protocols at least
