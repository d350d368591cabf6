"""GRPO rewards that are the evaluator's own rules.

A reward is a pure function of the completions and the dataset columns TRL passes along
(``answers``, ``kind``, ``candidates``, ``boxes``, ``image_size``), returning one float per
completion or ``None`` where it does not apply (TRL's ``GRPOTrainer`` then leaves that reward
out of the sum for that completion). No model is needed to test one.

- ``accuracy[:protocol=NAME]``: 1 when the answer is correct under scoring protocol NAME
  (default ``medlens``), read exactly as ``medlens eval`` reads it: the task's parser
  (``medlens.tasks``), then ``protocol.score`` (open answers get the protocol's per-question
  score, token F1 for ``medlens``), so that training and evaluation agree on "correct".
- ``format:preset=med-r1``: 1 for ``<think>…</think><answer>…</answer>`` and nothing else
  (Med-R1, Lai et al. 2025, arXiv 2503.13939: format + accuracy rewards); ``med-r1-nothink``:
  ``<answer>…</answer>`` only (its no-thinking variant).
- ``iou``: IoU of the first predicted box with the best gold box (grounding rows only).

>>> reward = make_reward("accuracy")
>>> reward([[{"role": "assistant", "content": "Yes"}]], answers=[["yes"]], kind=["closed"],
...        candidates=[["yes", "no"]])
[1.0]
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from medlens.errors import ConfigError, UnknownNameError

Reward = Callable[..., list[float | None]]

FORMAT_PRESETS: Mapping[str, re.Pattern[str]] = {
    "med-r1": re.compile(r"^\s*<think>.*?</think>\s*<answer>.*?</answer>\s*$", re.DOTALL),
    "med-r1-nothink": re.compile(r"^\s*<answer>(?:(?!<think>).)*?</answer>\s*$", re.DOTALL),
}


def completion_text(completion: Any) -> str:
    """A TRL completion (plain text, or a conversational list of messages) as text."""
    if isinstance(completion, str):
        return completion
    parts: list[str] = []
    for message in completion:
        content = message.get("content", "")
        if isinstance(content, str):
            parts.append(content)
        else:
            parts.extend(str(p.get("text") or "") for p in content if p.get("type") == "text")
    return "".join(parts)


def _column(kwargs: Mapping[str, Any], name: str, n: int) -> list[Any]:
    values = kwargs.get(name)
    return list(values) if values is not None else [None] * n


def accuracy_reward(protocol: str = "medlens") -> Reward:
    """Correctness under ``protocol`` (see the module docstring)."""
    from medlens.bench.protocols import get_protocol

    chosen = get_protocol(protocol)

    def accuracy(completions: Sequence[Any], **columns: Any) -> list[float | None]:
        n = len(completions)
        answers = _column(columns, "answers", n)
        kinds = _column(columns, "kind", n)
        candidates = _column(columns, "candidates", n)
        boxes = _column(columns, "boxes", n)
        sizes = _column(columns, "image_size", n)
        out: list[float | None] = []
        for i, completion in enumerate(completions):
            if not answers[i] or kinds[i] is None:
                out.append(None)
                continue
            sample, parsed = _read(
                completion_text(completion), kinds[i], answers[i], candidates[i], boxes[i], sizes[i]
            )
            score = chosen.score(
                sample,
                completion_text(completion),
                parsed=parsed.text,
                parsed_ok=parsed.parsed,
            )
            out.append(float(score.score))
        return out

    accuracy.__name__ = f"accuracy_{protocol}"
    return accuracy


def _read(
    text: str,
    kind: str,
    answers: Sequence[str],
    candidates: Sequence[str] | None,
    boxes: Sequence[Sequence[float]] | None,
    image_size: Sequence[int] | None,
) -> tuple[Any, Any]:
    """The sample a protocol scores and the task parser's reading of ``text``."""
    from medlens.bench.samples import Sample
    from medlens.tasks import get_task
    from medlens.types import Generation, Request

    sample = Sample(
        id="reward",
        benchmark="train",
        split="train",
        question="",
        answers=tuple(answers),
        kind=kind,  # type: ignore[arg-type]
        images=(),
        candidates=tuple(candidates or ()) if kind == "choice" else (),
        metadata={"boxes": [{"label": "", "box": list(b)} for b in boxes or ()]},
    )
    metadata = {"image_size": tuple(image_size)} if image_size else {}
    request = Request(
        id="reward",
        messages=(),
        kind=kind,  # type: ignore[arg-type]
        question="",
        candidates=tuple(candidates or ()),
        metadata=metadata,
    )
    parsed = get_task(kind).parse(Generation("reward", text, "train", "train"), request)
    return sample, parsed


def format_reward(preset: str = "med-r1") -> Reward:
    """1 when the completion has exactly the preset's layout, else 0."""
    if preset not in FORMAT_PRESETS:
        raise UnknownNameError(
            f"unknown format preset {preset!r}; available: {', '.join(FORMAT_PRESETS)}"
        )
    pattern = FORMAT_PRESETS[preset]

    def layout(completions: Sequence[Any], **columns: Any) -> list[float | None]:
        return [float(bool(pattern.match(completion_text(c)))) for c in completions]

    layout.__name__ = f"format_{preset.replace('-', '_')}"
    return layout


def iou_reward() -> Reward:
    """IoU of the first predicted box with the best gold box; None off grounding rows, 0
    for an answer without a box."""
    from medlens.bench.metrics.grounding import parse_boxes
    from medlens.types import box_iou as iou

    def box_iou(completions: Sequence[Any], **columns: Any) -> list[float | None]:
        n = len(completions)
        kinds = _column(columns, "kind", n)
        boxes = _column(columns, "boxes", n)
        out: list[float | None] = []
        for completion, kind, gold in zip(completions, kinds, boxes):
            if kind != "grounding" or not gold:
                out.append(None)
                continue
            predicted = parse_boxes(completion_text(completion))
            if not predicted:
                out.append(0.0)
                continue
            out.append(max(iou(predicted[0], (b[0], b[1], b[2], b[3])) for b in gold))
        return out

    box_iou.__name__ = "iou"
    return box_iou


_FACTORIES: Mapping[str, Callable[..., Reward]] = {
    "accuracy": accuracy_reward,
    "format": format_reward,
    "iou": iou_reward,
}
REWARD_NAMES = tuple(_FACTORIES)


def make_reward(spec: str) -> Reward:
    """``"accuracy:protocol=lmms-eval"``, ``"format:preset=med-r1-nothink"``, ``"iou"``."""
    import difflib

    name, _, params_text = spec.partition(":")
    name = name.strip()
    if name not in _FACTORIES:
        close = difflib.get_close_matches(name, REWARD_NAMES, n=2, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownNameError(
            f"Unknown reward '{name}'.{hint} Available: {', '.join(REWARD_NAMES)} "
            "(e.g. accuracy:protocol=medlens, format:preset=med-r1, iou)."
        )
    params: dict[str, str] = {}
    for piece in filter(None, (p.strip() for p in params_text.split(","))):
        key, sep, value = piece.partition("=")
        if not sep:
            raise ConfigError(f"reward '{spec}': parameter '{piece}' must be key=value")
        params[key.strip()] = value.strip()
    try:
        return _FACTORIES[name](**params)
    except TypeError as exc:
        raise ConfigError(f"reward '{spec}': {exc}") from exc


def make_rewards(specs: Sequence[str]) -> list[Reward]:
    if not specs:
        raise ConfigError("GRPO needs at least one reward, e.g. --reward accuracy,iou.")
    return [make_reward(s) for s in specs]
