"""Is the Hugging Face Hub reachable, and is a model name a local path or a Hub id?

huggingface_hub retries an unreachable Hub for minutes (five retries per file, with back-off)
before transformers or datasets give up with a ``ConnectionError``; a user without network
(or with a typo) should learn that in seconds, with what to pass instead. So, before anything
downloads, medlens asks once per process:

- is offline mode on (``HF_HUB_OFFLINE``, ``TRANSFORMERS_OFFLINE``, ``HF_DATASETS_OFFLINE``,
  as huggingface_hub reads them)? Then only the local cache is used, and nothing waits;
- else, does a TCP connection to the Hub endpoint (``HF_ENDPOINT``, or the HTTPS proxy when
  one is set) open within two seconds?

Importing this module does nothing (no network until a function is called).
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from medlens import config
from medlens.errors import BackendError

_OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
_TRUE = {"1", "on", "yes", "true"}
CONNECT_TIMEOUT_S = 2.0


def offline_mode() -> bool:
    """True when the user put huggingface_hub in offline mode (cache only)."""
    return any((config.env(name) or "").lower() in _TRUE for name in _OFFLINE_VARIABLES)


def _endpoint() -> tuple[str, int]:
    """Host and port a Hub request connects to first: the HTTPS proxy if set, else the Hub."""
    url = urlsplit(
        config.env("HTTPS_PROXY") or config.env("HF_ENDPOINT") or "https://huggingface.co"
    )
    default_port = 443 if url.scheme == "https" else 80
    return url.hostname or "huggingface.co", url.port or default_port


@lru_cache(maxsize=1)
def unreachable_reason() -> str | None:
    """Why the Hub cannot be reached from here (``None`` when it can), decided in at most
    ``CONNECT_TIMEOUT_S`` seconds; DNS resolution runs in a thread, since ``getaddrinfo``
    ignores socket timeouts. Cached for the process."""
    if offline_mode():
        return "offline mode is on (HF_HUB_OFFLINE)"
    host, port = _endpoint()
    outcome: list[str | None] = []

    def attempt() -> None:
        try:
            socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
            outcome.append(None)
        except OSError as exc:
            outcome.append(f"cannot connect to {host}:{port}: {exc.strerror or exc}")

    thread = threading.Thread(target=attempt, daemon=True, name="medlens-hub-check")
    thread.start()
    thread.join(CONNECT_TIMEOUT_S + 0.5)
    if not outcome:
        return f"no answer from {host}:{port} within {CONNECT_TIMEOUT_S:.0f} s"
    return outcome[0]


def looks_like_path(name: str) -> bool:
    """A name written as a path (``./x``, ``../x``, ``/x``, ``~/x``, ``a/b/c``, ``x/``), which
    is never a Hub id (``org/name``)."""
    return (
        name.startswith((".", "/", "~", "\\"))
        or name.endswith(("/", "\\"))
        or name.count("/") > 1
        or (len(name) > 1 and name[1] == ":")
    )


def hub_cached(repo_id: str, filename: str = "config.json", revision: str | None = None) -> bool:
    """Whether ``filename`` of the Hub model ``repo_id`` is in the local Hugging Face cache."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    try:
        found = try_to_load_from_cache(repo_id, filename, revision=revision)
    except ValueError:  # HFValidationError: not a valid repository id
        return False
    return isinstance(found, str)


@dataclass(frozen=True)
class ShippedModel:
    """A model whose weights ship inside the medlens package, loaded by name."""

    name: str
    folder: Path
    description: str
    """What it is, shown wherever it answers (a demonstration model is never a clinical one)."""


SHIPPED_MODELS = {
    "medlens-tiny": ShippedModel(
        name="medlens-tiny",
        folder=Path(__file__).resolve().parent / "backends" / "shipped" / "medlens-tiny",
        description=(
            "medlens-tiny — a ~5M-parameter demonstration model trained on SLAKE and VQA-RAD "
            "train splits by `medlens train`; not a clinical model"
        ),
    ),
}
"""Names the model resolver knows besides folders and Hub ids (``--model medlens-tiny``)."""


def shipped_model(name: str) -> ShippedModel | None:
    """The shipped model called ``name`` (case-insensitive), or None."""
    return SHIPPED_MODELS.get(name.strip().lower())


ALTERNATIVES = (
    "pass a local model folder (--model ./path/to/model), the http(s):// URL of an "
    "OpenAI-compatible server, medlens-tiny (the demonstration model shipped with medlens) "
    "or a baseline (--model prior, no-image, random)"
)


def resolve_model(model: str, revision: str | None = None) -> tuple[str, bool]:
    """``(what to load, local_files_only)`` for a transformers model name, or a clear
    ``BackendError`` at once: a path-like name that does not exist, a name that is neither a
    folder nor a valid Hub id, or a Hub id that is not cached while the Hub is unreachable."""
    shipped = shipped_model(model)
    if shipped is not None:
        if not (shipped.folder / "config.json").exists():
            raise BackendError(
                f"{shipped.name}'s weights are missing from this medlens installation "
                f"({shipped.folder}); reinstall medlens, or pass another --model."
            )
        return str(shipped.folder), True
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path), True
    if path.exists():
        raise BackendError(
            f"{model!r} is a file; a transformers model is a folder (config.json, weights, "
            "processor files) or a Hugging Face id like 'org/name'."
        )
    if looks_like_path(model):
        where = "" if str(path.resolve()) == model else f" (looked at {path.resolve()})"
        raise BackendError(
            f"No model folder at {model!r}{where}. Check the path, or {ALTERNATIVES}."
        )
    if not _valid_repo_id(model):
        raise BackendError(
            f"{model!r} is neither a folder here nor a valid Hugging Face id ('org/name': "
            f"letters, digits, '-', '_', '.'); {ALTERNATIVES}."
        )
    cached = hub_cached(model, revision=revision)
    reason = unreachable_reason()
    if reason is None:
        return model, False
    if cached:
        return model, True
    raise BackendError(
        f"{model!r} is not a folder here, the Hugging Face Hub is not reachable ({reason}) and "
        f"the model is not in the local Hugging Face cache. Check the name, or {ALTERNATIVES}."
    )


def _valid_repo_id(name: str) -> bool:
    parts = name.split("/")
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
    return (
        1 <= len(parts) <= 2
        and all(part and set(part) <= allowed for part in parts)
        and not any(part.startswith(("-", ".")) or ".." in part for part in parts)
        and len(name) <= 96
    )
