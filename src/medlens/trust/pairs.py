"""Paired evaluation: benchmarks built of image pairs that share a question but not an answer.

MediConfusion (Sepehri et al., ICLR 2025) pairs two images that a vision encoder embeds close
together yet whose answers differ. A model that reads the image gets both right; a model that
answers from the question alone gets at most one. The paper reports *set accuracy* (both of a
pair right) and *confusion* (the same option chosen for both images). Unparseable and abstained
answers are counted per pair, never as a choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from medlens.errors import DataError


@dataclass(frozen=True)
class PairSummary:
    """``pair_accuracy`` and ``confusion`` over complete pairs; ``unanswered_pairs`` have an
    unparseable or abstained side; ``incomplete`` pairs (one side missing) are left out."""

    pairs: int
    pair_accuracy: float
    confusion: float
    unanswered_pairs: int
    incomplete: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def pair_accuracy(
    pair_ids: Sequence[str], outcomes: Sequence[str], chosen: Sequence[str | None]
) -> PairSummary:
    """Score pairs from per-question ``outcomes`` ("correct", "wrong", "unparseable", ...)
    and the option each answer ``chosen`` (None when it chose none)."""
    if not len(pair_ids) == len(outcomes) == len(chosen):
        raise DataError("pair_ids, outcomes and chosen need one entry per question.")
    members: dict[str, list[int]] = {}
    for index, pair in enumerate(pair_ids):
        members.setdefault(str(pair), []).append(index)
    if any(len(ix) > 2 for ix in members.values()):
        raise DataError("A pair id occurs more than twice; pairs have exactly two questions.")
    complete = [ix for ix in members.values() if len(ix) == 2]
    answered = ("correct", "wrong", "partial")
    both = sum(all(outcomes[i] == "correct" for i in ix) for ix in complete)
    same = sum(
        chosen[a] is not None
        and chosen[a] == chosen[b]
        and outcomes[a] in answered
        and outcomes[b] in answered
        for a, b in complete
    )
    unanswered = sum(any(outcomes[i] not in answered for i in ix) for ix in complete)
    n = len(complete)
    return PairSummary(
        pairs=n,
        pair_accuracy=both / n if n else float("nan"),
        confusion=same / n if n else float("nan"),
        unanswered_pairs=unanswered,
        incomplete=len(members) - n,
    )
