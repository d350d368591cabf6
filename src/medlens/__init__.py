"""medlens: put any vision-language model in front of real medical studies, safely, and
measure it as the literature does.

The public API (``medlens.api``) is four functions: ``load_study``, ``deidentify``,
``ask(study, question, model="...")`` and ``evaluate(benchmarks, model="...")``. Importing
medlens does nothing heavy: they, and torch, transformers and pydicom behind them, load only
when first used.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "ask": "medlens.api",
    "deidentify": "medlens.privacy",
    "evaluate": "medlens.api",
    "load_study": "medlens.study",
}
__all__ = ["ask", "deidentify", "evaluate", "load_study"]


def __getattr__(name: str) -> Any:
    """The public functions, imported on first use (PEP 562)."""
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'medlens' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
