"""Sanity and robustness treatments: how a sibling run changes what the model sees.

``sanity`` re-runs the model with the image blanked, replaced by noise or by another sample's
image, or removed (``no-image``): the accuracy it keeps is what it gets without looking
(Agrawal et al. 2018). ``shifts`` re-run it under controlled corruptions (Hendrycks &
Dietterich, ICLR 2019) and question rewrites (``medlens.trust.probes``). A treatment is an
item transform, as a MONAI ``Compose`` step is: it is applied to the pipeline item of each
sample, and the answers are scored against the untouched sample.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from medlens.bench.samples import Sample
from medlens.errors import ConfigError
from medlens.registry import Registry
from medlens.types import View

if TYPE_CHECKING:
    from medlens.pipeline import Item

Role = Literal["sanity", "shift"]

SANITY_CHECKS = ("blank", "noise-image", "swap", "no-image")
"""What ``--sanity`` runs when given no names: the image replaced by one grey level, by
noise, by another sample's image, and removed."""


def item_of(sample: Sample) -> Item:
    """The pipeline item for a sample, untreated: its images, question, kind, options and
    category."""
    from medlens.pipeline import Item

    metadata = {k: v for k, v in sample.metadata.items() if k != "boxes"}
    metadata.setdefault("benchmark", sample.benchmark)
    return Item(
        id=sample.id,
        sources=tuple(sample.images),
        question=sample.question,
        kind=sample.kind,
        candidates=tuple(sample.candidates),
        metadata=metadata,
    )


def split_probe_list(text: str) -> tuple[str, ...]:
    """``"blur:radius=2,typos:rate=0.1,seed=1,paraphrase"`` → one spec per probe: a piece
    with ``=`` and no ``:`` is one more parameter of the probe before it."""
    specs: list[str] = []
    for piece in filter(None, (p.strip() for p in text.split(","))):
        if specs and "=" in piece and ":" not in piece:
            specs[-1] += f",{piece}"
        else:
            specs.append(piece)
    return tuple(specs)


@cache
def _parameters(role: Role) -> Registry[frozenset[str]]:
    """The treatments ``role`` allows, each with the parameters it accepts, in one generic
    ``Registry`` (unknown names get its "did you mean ... available: ..." message)."""
    from medlens.trust.probes import PROBES, QUESTION_SHIFTS, SANITY_PROBES

    allowed: Registry[frozenset[str]] = Registry(f"--{role}")
    if role == "sanity":
        names = list(SANITY_CHECKS)
    else:
        names = [n for n in PROBES.names() if n not in SANITY_PROBES] + QUESTION_SHIFTS.names()
    for name in names:
        if name == "no-image":
            accepted: frozenset[str] = frozenset()
        else:
            factory = (QUESTION_SHIFTS if name in QUESTION_SHIFTS else PROBES).get(name)
            accepted = frozenset(inspect.signature(factory).parameters) - {"pool"}
        allowed.register(name, accepted)
    return allowed


def canonical_probes(specs: Sequence[str], role: Role) -> tuple[str, ...]:
    """Checked specs in canonical form (``probes.probe_name``), each once: ``role`` "sanity"
    takes ``SANITY_CHECKS``, "shift" the corruptions and question shifts of
    ``medlens.trust.probes``. Unknown names and parameters fail here, before any run."""
    if not specs:
        return ()
    from medlens.trust.probes import parse_probe, probe_name

    out: list[str] = []
    for text in specs:
        name, params = parse_probe(text)
        accepted = _parameters(role).get(name)
        unknown = sorted(set(params) - accepted)
        if unknown:
            takes = ", ".join(sorted(accepted)) or "no parameters"
            raise ConfigError(
                f"--{role} '{text}': '{name}' takes {takes}, not {', '.join(unknown)}."
            )
        out.append(probe_name(name, params))
    return tuple(dict.fromkeys(out))


@dataclass(frozen=True)
class Treatment:
    """How a sibling run changes the model's input: a view transform (sanity images and
    corruptions), a question shift, or other images per sample (``swap``)."""

    role: Role
    spec: str
    view_transform: Callable[[View], View] | None = None
    question_shift: Callable[[str], str] | None = None
    images: Mapping[str, tuple[str | bytes, ...]] = field(default_factory=dict)
    """Sample id → the images shown instead of its own."""

    def item(self, sample: Sample) -> Item:
        item = item_of(sample)
        question = self.question_shift(item.question) if self.question_shift else item.question
        return replace(item, question=question, sources=self.images.get(sample.id, item.sources))


def make_treatment(role: Role, spec: str, samples: Sequence[Sample], seed: int = 0) -> Treatment:
    """The treatment a canonical spec names. ``swap`` replaces each sample's image sources by
    another sample's (``swap_images``) rather than using the view-level ``probes.swap``, which
    picks from a pool by pixel hash: a view does not say which sample it belongs to, so only
    the sources can guarantee that a question never sees its own image; the other image then
    goes through the same loader, de-identification and recipe as it would in its own row."""
    from medlens.trust.probes import (
        QUESTION_SHIFTS,
        make_probe,
        make_question_shift,
        parse_probe,
    )

    name, params = parse_probe(spec)
    if name == "swap":
        return Treatment(role, spec, images=swap_images(samples, int(params.get("seed", seed))))
    if name in QUESTION_SHIFTS:
        return Treatment(role, spec, question_shift=make_question_shift(spec))
    return Treatment(role, spec, view_transform=make_probe(spec))


def _image_key(source: str | bytes) -> str:
    """Content hash of an image source (file bytes), so copies of one image share a key."""
    if isinstance(source, bytes):
        data = source
    else:
        try:
            data = Path(source).read_bytes()
        except OSError:  # unreadable: the pipeline reports it per sample; key by name
            data = source.encode()
    return hashlib.sha256(data).hexdigest()


def swap_images(samples: Sequence[Sample], seed: int = 0) -> dict[str, tuple[str | bytes, ...]]:
    """Per sample, another sample's images: a seeded derangement of the distinct images (by
    content) of ``samples``, so no question is shown its own image, even when several
    questions share one (VQA-RAD asks about 2 questions per image)."""
    import numpy as np

    keys: dict[str | bytes, str] = {}
    first: dict[str, str | bytes] = {}
    for sample in samples:
        for source in sample.images:
            if source not in keys:
                keys[source] = _image_key(source)
                first.setdefault(keys[source], source)
    distinct = list(first)
    if len(distinct) < 2:
        raise ConfigError(
            "The 'swap' sanity check shows each question another sample's image, and these "
            f"{len(samples)} samples hold {len(distinct)} distinct image(s); raise --limit."
        )
    order = [distinct[i] for i in np.random.default_rng(seed).permutation(len(distinct))]
    # One cycle through a shuffled order: every image maps to another one.
    target = {key: order[(i + 1) % len(order)] for i, key in enumerate(order)}
    return {s.id: tuple(first[target[keys[src]]] for src in s.images) for s in samples}
