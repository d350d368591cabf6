"""Small helpers shared by the benchmark files (Hub rows, snapshots, safe pickles)."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medlens.config import home_dir
from medlens.errors import DataError, require

YES_NO = frozenset({"yes", "no"})


def closed_by_answer(answer: str) -> bool:
    """The yes/no rule of datasets without an answer type (PathVQA, the VQA-RAD Hub copy)."""
    return answer.strip().lower() in YES_NO


def image_value(value: Any) -> str | bytes:
    """A Hub ``Image`` feature as bytes (decoded PIL images are re-encoded as PNG) or a path."""
    if isinstance(value, (bytes, str)):
        return value
    if isinstance(value, Mapping):
        if value.get("bytes"):
            return bytes(value["bytes"])
        if value.get("path"):
            return str(value["path"])
    if hasattr(value, "save"):
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        return buffer.getvalue()
    raise DataError(f"unsupported image value of type {type(value).__name__} in a Hub row")


def read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError as exc:
        raise DataError(f"{path} is missing; is this the original release layout?") from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); re-download the release") from exc


class _PlainUnpickler(pickle.Unpickler):
    """Loads only builtin containers and scalars: a QA pickle cannot run code."""

    def find_class(self, module: str, name: str) -> Any:
        raise DataError(
            f"refusing to unpickle {module}.{name}: QA files hold only lists, dicts and strings"
        )


def read_plain_pickle(path: Path) -> Any:
    """A pickle of plain lists/dicts/strings (PathVQA's ``*_qa.pkl``), without code execution."""
    try:
        with open(path, "rb") as handle:
            return _PlainUnpickler(handle).load()
    except FileNotFoundError as exc:
        raise DataError(f"{path} is missing; is this the original release layout?") from exc


def hub_snapshot(hf_id: str, revision: str | None, archives: tuple[str, ...] = ()) -> Path:
    """Download a dataset repository at ``revision`` and unpack its image archives once,
    beside it, under ``$MEDLENS_HOME/datasets``; returns that folder."""
    hub = require("huggingface_hub", "bench", f"Downloading {hf_id}")
    source = Path(hub.snapshot_download(hf_id, repo_type="dataset", revision=revision))
    target = home_dir() / "datasets" / hf_id.replace("/", "--") / (revision or source.name)
    for archive in archives:
        done = target / f".{archive}.done"
        if not done.exists():
            target.mkdir(parents=True, exist_ok=True)
            with zipfile.ZipFile(source / archive) as handle:
                handle.extractall(target)
            done.touch()
    for item in source.iterdir():
        link = target / item.name
        if not item.name.endswith(".zip") and not link.exists():
            target.mkdir(parents=True, exist_ok=True)
            link.symlink_to(item.resolve(), target_is_directory=item.is_dir())
    return target
