"""One generic registry, one instance per extension point.

Entries are filled by a decorator or by a lazy ``"module:attr"`` target, so that registering
a backend does not import torch. Unknown names get a "did you mean ... available: ..." error,
as MONAI's ``look_up_option`` does.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

from medlens.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name → object table for one kind of plug-in (backends, readers, benchmarks, ...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T | str] = {}

    def register(self, name: str, target: T | str | None = None) -> Callable[[T], T]:
        """Register ``target`` under ``name``; without a target, act as a decorator.

        A string target ``"package.module:attr"`` is imported on first ``get``.
        """
        key = name.lower()

        def add(obj: T | str) -> T:
            existing = self._entries.get(key)
            if existing is not None and existing is not obj and not isinstance(existing, str):
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._entries[key] = obj
            return obj  # type: ignore[return-value]

        if target is not None:
            add(target)
            return lambda obj: obj
        return add

    def register_files(self, package: str, targets: Mapping[str, str]) -> None:
        """Register one plug-in file per name: ``{"vqa-rad": "vqa_rad:VQARad"}`` under
        ``package`` is the lazy target ``"package.vqa_rad:VQARad"``: the one place an extension
        point lists its files. Names registered already (a user's own plug-in) are kept;
        listing names imports none of the files."""
        for name, target in targets.items():
            if name not in self:
                self.register(name, f"{package}.{target}")

    def get(self, name: str) -> T:
        key = name.lower()
        if key not in self._entries:
            raise UnknownNameError(self._unknown_message(name))
        entry = self._entries[key]
        if isinstance(entry, str):
            module_name, _, attr = entry.partition(":")
            module = importlib.import_module(module_name)
            # Importing the module usually runs the decorator, which replaces the string.
            resolved = self._entries[key]
            if isinstance(resolved, str):
                resolved = getattr(module, attr)
                self._entries[key] = resolved
            entry = resolved
        return entry

    def _unknown_message(self, name: str) -> str:
        names = self.names()
        close = difflib.get_close_matches(name.lower(), names, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        return f"Unknown {self.kind} '{name}'.{hint} Available: {', '.join(names) or 'none'}."

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
