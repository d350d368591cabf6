"""Model backends: one protocol (``Backend.generate(requests) -> generations``), a registry
keyed by short name, and ``load_backend`` that picks one from a model id or path."""

from medlens.backends.base import BACKENDS, Backend, load_backend

__all__ = ["BACKENDS", "Backend", "load_backend"]
