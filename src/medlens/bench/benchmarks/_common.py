"""Small helpers shared by the benchmark files (Hub rows, snapshots, safe pickles)."""

from __future__ import annotations

import io
import json
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medlens.config import home_dir
from medlens.errors import DataError, require
from medlens.normalize import normalize_answer

YES_NO = frozenset({"yes", "no"})


def closed_by_answer(answer: str) -> bool:
    """The yes/no rule of datasets without an answer type (PathVQA, the VQA-RAD Hub copy)."""
    return answer.strip().lower() in YES_NO


_OR = re.compile(r"\s+(?:or|vs\.?|versus)\s+", re.IGNORECASE)
_ARTICLES = frozenset({"a", "an", "the"})


def question_options(question: str) -> tuple[str, ...]:
    """The options a closed question lists, read from the question alone (never from its
    answer): "Which organ is abnormal, heart or lung?" → heart, lung; "Which is the biggest
    in this image,lung,liver or heart?" → lung, liver, heart; "Is this a T1 weighted or T2
    weighted MRI image?" → T1 weighted, T2 weighted (parallel options end in the same word).
    ``()`` when the question lists none."""
    text = question.strip().rstrip("?").strip()
    splits = list(_OR.finditer(text))
    if not splits:
        return ()
    head, tail = text[: splits[-1].start()], text[splits[-1].end() :]
    tail_words = tail.split()
    while tail_words and tail_words[0].lower() in _ARTICLES:
        tail_words.pop(0)
    if "," in head:
        stem, *listed = [p.strip() for p in head.split(",")]
        listed = [p for p in listed if p]
        if head.rstrip().endswith(",") and listed:  # "on the left, right, or both sides"
            listed.insert(0, " ".join(stem.split()[-len(listed[0].split()) :]))
        options = [*listed, " ".join(tail_words)]
    else:
        head_words = head.split()
        if not head_words or not tail_words:
            return ()
        width = next(
            (
                k
                for k in (2, 3)
                if k <= len(tail_words)
                and normalize_answer(tail_words[k - 1]) == normalize_answer(head_words[-1])
            ),
            1,
        )
        options = [" ".join(head_words[-width:]), " ".join(tail_words[:width])]
    options = [_without_article(o) for o in options]
    keys = [normalize_answer(o) for o in options]
    return tuple(options) if all(keys) and len(set(keys)) == len(keys) else ()


def _without_article(option: str) -> str:
    first, _, rest = option.partition(" ")
    return rest if rest and first.lower() in _ARTICLES else option


def closed_candidates(
    question: str, answer: str, kind: str = "closed"
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(candidates, accepted answers)`` of a question of ``kind``: an open question has no
    candidates and its answer as given. A yes/no question has no
    candidates (the closed task asks yes or no). Any other closed question ("Which organ is
    abnormal, heart or lung?" → "Heart") is asked with the options it lists, when its answer
    names exactly one of them; that option is also accepted as the answer ("T2" names "T2
    weighted", "Left kidney" names "left"). Without such options: no candidates."""
    if kind != "closed" or closed_by_answer(answer):
        return (), (answer,)
    options = question_options(question)
    gold = normalize_answer(answer)
    words = set(gold.split())
    keys = [(option, normalize_answer(option)) for option in options]
    exact = [o for o, key in keys if key == gold]
    held = [o for o, key in keys if set(key.split()) <= words]  # "Left kidney" holds "left"
    inside = [o for o, key in keys if words <= set(key.split())]  # "T2" is in "T2 weighted"
    named = exact or held or inside
    if len(named) != 1:
        return (), (answer,)
    alias = named[0]
    return options, (answer,) if normalize_answer(alias) == gold else (answer, alias)


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
