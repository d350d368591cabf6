"""Earlier versions of the protocols, so that a stored run reports the rule that scored it.

A run records the version of every protocol it was scored with (``protocol_versions`` in its
config), and its stored scores are that version's. When a protocol's rule changes (a new
upstream pin, a bug now reproduced), the scores already stored stay what they were: a report
must name the version that made them, never silently the current one. A run scored under
``llava-med`` at version ``ad758b6`` holds LLaVA-Med's first-release rule, now the protocol
``llava-med-ad758b6``; ``llava-med`` today is the rule after PR #35. Reports show such scores
under the key ``llava-med@ad758b6``; the current version keeps the plain name.

Each entry says which current protocol has the same rule (``now``), or what differed when
none has. To change a protocol's rule: bump its ``version`` and add its old version here.
"""

from __future__ import annotations

from dataclasses import dataclass

from medlens.bench.protocols.base import PROTOCOLS, ScoringProtocol


@dataclass(frozen=True)
class EarlierVersion:
    """A version of a protocol that runs may have been scored with, and what it was."""

    protocol: str
    version: str
    now: str | None
    """The current protocol whose rule this one was (None: no current protocol has it)."""
    description: str


EARLIER: dict[tuple[str, str], EarlierVersion] = {
    (e.protocol, e.version): e
    for e in (
        EarlierVersion(
            "llava-med",
            "ad758b6",
            "llava-med-ad758b6",
            "LLaVA-Med run_eval.py evaluate as first released (microsoft/LLaVA-Med@ad758b6): "
            "a wrong closed answer containing 'yes' or 'no' is left out of the denominator. "
            "llava-med meant this rule until it was pinned to PR #35 (b9a98a7); the rule is "
            "now the protocol llava-med-ad758b6.",
        ),
        EarlierVersion(
            "llava-med-fixed",
            "ad758b6-fixed.1",
            "llava-med-fixed",
            "LLaVA-Med's rules with the closed-question bugs fixed, as llava-med-fixed is "
            "today (every closed question counted either way); only the upstream pin moved "
            "from ad758b6 to b9a98a7.",
        ),
        EarlierVersion(
            "medlens",
            "1",
            None,
            "medlens's strict rules as medlens@2 for closed, open, multiple-choice and report "
            "questions; a grounding answer was scored on the task parser's text (the label) "
            "instead of the boxes of the raw answer, so every grounding answer was "
            "'unparseable' and the hit rate 0 (fixed in medlens@2).",
        ),
        EarlierVersion(
            "lmms-eval",
            "65ef07d",
            "lmms-eval",
            "lmms-eval's SLAKE rule read at EvolvingLMMs-Lab/lmms-eval@65ef07d; the SLAKE task "
            "is unchanged at the current pin 0a75d6b, so the scores are those of lmms-eval today.",
        ),
        EarlierVersion(
            "medevalkit",
            "016723d",
            None,
            "MedEvalKit's rule path as read at the fork chenz53/MedEvalKit@016723d: as "
            "medevalkit (9b12e3b) for closed questions and the open exact-match headline, but "
            "open F1/precision/recall under their right names (not the swapped names MedEvalKit "
            "prints) and an answer without words 'unparseable' (scored 0) with no note that "
            "the source would have crashed.",
        ),
        EarlierVersion(
            "medevalkit-fixed",
            "016723d-fixed.1",
            "medevalkit-fixed",
            "MedEvalKit with its bugs fixed, as medevalkit-fixed is today; only the upstream "
            "pin moved from the fork chenz53/MedEvalKit@016723d to alibaba-damo-academy@9b12e3b.",
        ),
    )
}


def split_key(key: str) -> tuple[str, str | None]:
    """``"llava-med@ad758b6"`` → ``("llava-med", "ad758b6")``; a plain name has no version."""
    name, _, version = key.partition("@")
    return name, version or None


def scored_key(name: str, version: str | None) -> str:
    """The key a protocol's stored scores are reported under: its plain name when they are of
    its current version (or say no version), ``name@version`` when of an earlier one."""
    if version is None or name not in PROTOCOLS or version == PROTOCOLS.get(name).version:
        return name
    return f"{name}@{version}"


def as_scored(key: str) -> ScoringProtocol:
    """The protocol that aggregates scores reported under ``key`` (its headline names and
    notes): the current protocol with that earlier version's rule where there is one, else the
    protocol of that name."""
    name, version = split_key(key)
    earlier = EARLIER.get((name, version)) if version else None
    return PROTOCOLS.get(earlier.now if earlier and earlier.now else name)()


def describe(key: str) -> tuple[str, str]:
    """(version, description) of the rule behind scores reported under ``key``."""
    name, version = split_key(key)
    current = PROTOCOLS.get(name)
    if version is None or version == current.version:
        return str(current.version), str(current.description)
    earlier = EARLIER.get((name, version))
    if earlier is None:
        return version, (
            f"an earlier version of {name} than the current {current.version}, of which "
            f"medlens keeps no description; re-score with --protocol {name} for the current rule"
        )
    return version, earlier.description
