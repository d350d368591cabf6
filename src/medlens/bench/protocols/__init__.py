"""Scoring protocols: named, versioned rule sets that turn a raw model answer into a score.

The same generations score differently under different harnesses, and papers rarely say
which one they used. A protocol makes the rule explicit: how the answer is extracted from the
raw text, how it is normalised, which questions count as closed or open and how each is
scored, and what "overall" means. A run records the protocol name and version; a report
prints them; stored generations can be re-scored under another protocol without a model run.

One file per protocol (``PROTOCOLS``, listed below and imported when first asked for):

- ``medlens``: strict. Closed answers are read by normalised exact match with yes/no as whole
  words; open answers get token F1 (headline) and recall; "unparseable" is its own outcome.
- ``medevalkit`` / ``medevalkit-fixed``: MedEvalKit's rule path (metrics under the names it
  prints, crashes counted), and the same rules with their bugs fixed; ``medevalkit-judge``:
  its LLM judge on open questions, as Lingshu's published figures were made.
- ``llava-med`` / ``llava-med-ad758b6`` / ``llava-med-fixed``: LLaVA-Med's substring rule
  for closed questions and token recall for open ones, as upstream has it since PR #35, as
  first released (wrong closed answers containing yes/no left out), and a fixed variant.
- ``lmms-eval``: the lmms-eval SLAKE rule (normalisation and exact match), labelled so
  wherever it is applied to another benchmark.
- ``medgemma-card``: closed accuracy and token F1, the figures Google's MedGemma card prints.

Each protocol normalises on its own, on purpose: that is what makes them differ. Question
kinds a source harness does not define (multiple choice for LLaVA-Med, reports, boxes) are
scored with medlens's rules, and the protocol's description says so. Each file's docstring
holds a runnable example (raw answer → outcome), run by the registry-wide doctest test. To add
a protocol: one file with its ``ScoringProtocol`` subclass, and one line in ``_FILES``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from medlens.bench.protocols.base import (
    OUTCOMES,
    PROTOCOLS,
    Outcome,
    ProtocolSummary,
    SampleScore,
    ScoringProtocol,
)
from medlens.bench.samples import Sample

_FILES = {
    "medlens": "medlens:MedlensProtocol",
    "medevalkit": "medevalkit:MedEvalKitProtocol",
    "medevalkit-fixed": "medevalkit:MedEvalKitFixedProtocol",
    "llava-med": "llava_med:LlavaMedProtocol",
    "llava-med-fixed": "llava_med:LlavaMedFixedProtocol",
    "llava-med-ad758b6": "llava_med:LlavaMedFirstReleaseProtocol",
    "medevalkit-judge": "medevalkit_judge:MedEvalKitJudgeProtocol",
    "lmms-eval": "lmms_eval:LmmsEvalProtocol",
    "medgemma-card": "medgemma_card:MedGemmaCardProtocol",
}
PROTOCOLS.register_files(__name__, _FILES)


def get_protocol(name: str) -> ScoringProtocol:
    """The protocol registered as ``name`` ("did you mean ..." for unknown names)."""
    return PROTOCOLS.get(name)()


def rescore(
    protocol: str | ScoringProtocol,
    samples: Sequence[Sample],
    predictions: Sequence[str],
    **aggregate_options: Any,
) -> tuple[list[SampleScore], ProtocolSummary]:
    """Score stored raw generations under ``protocol`` (no model run) and aggregate them."""
    chosen = get_protocol(protocol) if isinstance(protocol, str) else protocol
    scores = [chosen.score(s, p) for s, p in zip(samples, predictions, strict=True)]
    return scores, chosen.aggregate(samples, scores, **aggregate_options)


__all__ = [
    "OUTCOMES",
    "PROTOCOLS",
    "Outcome",
    "ProtocolSummary",
    "SampleScore",
    "ScoringProtocol",
    "get_protocol",
    "rescore",
]
