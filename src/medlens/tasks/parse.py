"""Reading free model text as the task expects, without ever raising on what a model wrote.

Every function here is total: any string in, a result or a reason out. The parsers are
deliberately strict: an answer that names two candidates, hedges, or names none is *unparsed*
(kept raw, with the reason), never mapped to an option, because a parser that guesses turns
model failures into chance-level hits (the "answer extraction" pitfall documented by
lmms-eval and by MedEvalKit's MCQ matching).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from medlens.normalize import normalize_answer
from medlens.types import Box

MAX_PARSE_CHARS = 20_000
"""Short-answer parsers look at this many characters of the answer at most; the raw text is
kept whole. Bounds the work on runaway generations."""

_THINK_END = "</think>"
_LABEL = re.compile(
    r"(?im)(?:^|(?<=[.!?;])\s*|(?<=\n))[ \t>#*-]*"
    r"(final answer|answer|rationale|reasoning|reason|explanation)[ \t]*(?:\*\*)?[ \t]*[:\-]"
)
_BECAUSE = re.compile(r"(?i)(?:[,;.]\s*|\s+)because\b\s*")
_ANSWER_PREFIX = re.compile(
    r"(?i)^\s*(?:(?:so|thus|therefore|hence),?\s*)?(?:the\s+)?(?:final\s+|correct\s+)?"
    r"(?:answer|option|choice)\s*(?:is|would be|:)\s*[:\-]?\s*"
)
_CLAUSE_END = re.compile(r"[,;:!?\n]|(?<!\d)\.|\.(?!\d)")
_SENTENCE_END = re.compile(r"(?<!\d)\.(?:\s|$)|\n")
_HEDGES = tuple(
    normalize_answer(phrase)
    for phrase in (
        "not sure",
        "unsure",
        "uncertain",
        "unknown",
        "unclear",
        "cannot be determined",
        "can not be determined",
        "cannot determine",
        "cannot tell",
        "can't determine",
        "cant determine",
        "can't tell",
        "cant tell",
        "don't know",
        "dont know",
        "do not know",
        "not possible to",
        "impossible to",
        "unable to",
        "insufficient",
        "I am sorry",
        "I'm sorry",
        "im sorry",
    )
)
"""Phrases that make an answer a hedge, as models write them (with the apostrophe and
without), compared after normalisation like the answer ("don't" reads "don t")."""


def clean(text: object) -> str:
    """Drop reasoning blocks (``<think>…</think>`` of Qwen3/DeepSeek-R1 style models) and
    Markdown emphasis; an unfinished reasoning block leaves nothing to read."""
    if not isinstance(text, str):
        return ""
    end = text.rfind(_THINK_END)
    if end >= 0:
        text = text[end + len(_THINK_END) :]
    elif text.lstrip().startswith("<think>"):
        return ""
    return text.replace("**", "").replace("__", "").strip()


@dataclass(frozen=True)
class Sections:
    """An answer split into the short answer and whatever explanation came with it."""

    answer: str
    rationale: str | None


def split_answer(text: str) -> Sections:
    """Find the short answer in ``text``.

    ``Answer: X`` (the last one, as chain-of-thought ends with it) wins; text before it and
    a ``Rationale:``/``Explanation:`` section become the rationale. Without a label, the
    answer is everything before a rationale label or a ``because``/``since`` clause.
    """
    text = text[:MAX_PARSE_CHARS]
    labels = list(_LABEL.finditer(text))
    answers = [m for m in labels if m.group(1).lower() in ("answer", "final answer")]
    if answers:
        last = answers[-1]
        following = [m for m in labels if m.start() > last.start()]
        stop = following[0].start() if following else len(text)
        answer = text[last.end() : stop].strip()
        rest = (text[: last.start()] + "\n" + text[stop:]).strip()
        rationale = _strip_label(rest)
        return Sections(answer, rationale or None)
    cut = labels[0] if labels else None
    because = _BECAUSE.search(text)
    if cut is not None and cut.start() > 0:
        return Sections(text[: cut.start()].strip(), text[cut.end() :].strip() or None)
    if because is not None and because.start() > 0:
        return Sections(text[: because.start()].strip(), text[because.start() :].strip(" ,;."))
    return Sections(text.strip(), None)


def _strip_label(text: str) -> str:
    return _LABEL.sub("", text, count=1).strip() if _LABEL.match(text) else text.strip()


def strip_answer_prefix(text: str) -> str:
    """``"The answer is: left lung."`` → ``"left lung."``."""
    return _ANSWER_PREFIX.sub("", text, count=1)


def short_answer(text: str) -> tuple[str, str | None]:
    """The first sentence of ``text`` without answer prefix, quotes and final period, and the
    remaining sentences (returned as extra rationale)."""
    text = strip_answer_prefix(text.strip())
    end = _SENTENCE_END.search(text)
    head, tail = (text[: end.start()], text[end.end() :]) if end else (text, "")
    head = head.strip().strip("\"'`“”‘’").strip().rstrip(".").strip()
    return head, tail.strip() or None


def match_candidates(text: str, candidates: Sequence[str]) -> tuple[int | None, str | None]:
    """Index of the one candidate ``text`` gives, or ``(None, reason)``.

    Matching is on normalised whole words (so "normal" or "nodule" never read as "no"):
    the whole answer or its first clause ("No, there is no …" is "no"), then a hedge
    ("not sure", "unknown") makes it unparsed, then one candidate standing as a clause of
    its own ("Based on the image, yes, …"), then exactly one candidate named anywhere
    (a candidate inside a longer named one, "pneumonia" in "viral pneumonia", does not count
    twice). Two different candidates, or none, is unparsed.
    """
    text = strip_answer_prefix(text[:MAX_PARSE_CHARS])
    norm = normalize_answer(text)
    if not norm:
        return None, "empty answer"
    cands = [normalize_answer(c) for c in candidates]
    first_clause = normalize_answer(_CLAUSE_END.split(text, maxsplit=1)[0])
    for i, cand in enumerate(cands):
        if cand and cand in (norm, first_clause):
            return i, None
    padded = f" {norm} "
    if any(f" {h} " in padded for h in _HEDGES):
        return None, "the answer hedges (not sure / unknown)"
    clauses = {normalize_answer(c) for c in _CLAUSE_END.split(text)}
    alone = {i for i, c in enumerate(cands) if c and c in clauses}
    if len({cands[i] for i in alone}) == 1:
        return min(alone), None
    named = [i for i, c in enumerate(cands) if c and f" {c} " in padded]
    named = [i for i in named if not any(_inside(cands[i], cands[j]) for j in named)]
    distinct = {cands[i] for i in named}
    if len(distinct) == 1:
        return named[0], None
    if not distinct:
        return None, f"none of the candidates ({', '.join(candidates)}) is named"
    return None, f"several candidates are named: {', '.join(sorted(distinct))}"


def _inside(short: str, long: str) -> bool:
    return short != long and f" {short} " in f" {long} "


# ------------------------------------------------------------------------------------------
# Multiple-choice letters
# ------------------------------------------------------------------------------------------

_LETTER_LABELLED = re.compile(
    r"(?i)\b(?:answer|option|choice)(?:\s+(?:is|would be))?\s*[:\-]?\s*\(?([a-z])\b\)?"
)
_LETTER_LEADING = re.compile(r"^\s*[(\[]?([A-Za-z])(?:[)\].:]|\s*$)")
_LETTER_PAREN = re.compile(r"\(([A-Z])\)")


def letter(index: int) -> str:
    return chr(ord("A") + index)


def match_choice(text: str, options: Sequence[str]) -> tuple[int | None, str | None]:
    """Index of the option ``text`` chooses, by letter first ("(B)", "Answer: B", "B.",
    "the answer is c") and then by the option's own text; ``(None, reason)`` otherwise."""
    text = text[:MAX_PARSE_CHARS]
    found: int | None = None
    for m in reversed(list(_LETTER_LABELLED.finditer(text))):
        if _letter_stands_alone(text, m, options):
            found = ord(m.group(1).upper()) - ord("A")
            break
    if found is None:
        # A leading "B." or a lone "(B)" counts only when no other letter is marked: "(A) or
        # (B)" names two options.
        marked = {p.group(1) for p in _LETTER_PAREN.finditer(text)}
        leading = _LETTER_LEADING.match(text)
        if leading is not None:
            marked.add(leading.group(1).upper())
        if len(marked) > 1:
            return None, f"several options are named: {', '.join(sorted(marked))}"
        if marked:
            found = ord(marked.pop()) - ord("A")
    if found is not None:
        if 0 <= found < len(options):
            return found, None
        return None, f"letter {letter(found)} is not an option (A-{letter(len(options) - 1)})"
    return match_candidates(text, options)


def _letter_stands_alone(text: str, m: re.Match[str], options: Sequence[str]) -> bool:
    """``"answer is a mass"`` names no letter; ``"answer: B cardiomegaly"`` names B."""
    after = text[m.end() :]
    if not after.strip() or after[:1] in ").,;:!\n" or m.group(0).endswith(")"):
        return True
    index = ord(m.group(1).upper()) - ord("A")
    if not 0 <= index < len(options):
        return False
    following = normalize_answer(after[:200])
    option = normalize_answer(options[index])
    return bool(option) and f"{following} ".startswith(f"{option} ")


# ------------------------------------------------------------------------------------------
# Report sections
# ------------------------------------------------------------------------------------------

_SECTION = re.compile(
    r"(?im)(?:^|(?<=[.!?])[ \t]+)[ \t>#*-]*(findings|impression|conclusion)s?[ \t]*(?::|$)"
)


def report_sections(text: str) -> dict[str, str]:
    """``Findings:`` and ``Impression:`` (or ``Conclusion:``) sections, headings in any case,
    with a colon or alone on their line (Markdown ``## Findings``); "findings suggest" is
    prose, not a heading. A section that appears twice keeps its first text."""
    marks = list(_SECTION.finditer(text))
    sections: dict[str, str] = {}
    for i, m in enumerate(marks):
        stop = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        name = "impression" if m.group(1).lower() == "conclusion" else m.group(1).lower()
        body = text[m.end() : stop].strip()
        if body and name not in sections:
            sections[name] = body
    return sections


# ------------------------------------------------------------------------------------------
# Grounding boxes
# ------------------------------------------------------------------------------------------

_FENCE = re.compile(r"```(?:json)?\s*\n?(.*?)```", re.DOTALL | re.IGNORECASE)
_COORD_KEYS = ("box_2d", "bbox_2d", "bbox", "box")
_LABEL_KEYS = ("label", "name", "finding", "category")
_QWEN_BOX = re.compile(
    r"(?:<\|object_ref_start\|>(.*?)<\|object_ref_end\|>\s*)?<\|box_start\|>\s*"
    r"\(\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*\)\s*,\s*\(\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*\)\s*"
    r"<\|box_end\|>"
)
_QWEN_GRID = 1000.0
"""Qwen-VL and Qwen2-VL write boxes as <|box_start|>(x0,y0),(x1,y1)<|box_end|> on a 0-1000
grid of the image (Qwen2-VL report, Wang et al. 2024, section 2.2)."""
_PALIGEMMA_BOX = re.compile(r"<loc(\d{4})><loc(\d{4})><loc(\d{4})><loc(\d{4})>\s*([^<;\n]*)")
_PALIGEMMA_GRID = 1024.0
"""PaliGemma writes ymin, xmin, ymax, xmax as four <locNNNN> tokens on a 1024 grid
(PaliGemma report, Beyer et al. 2024, section 3.2)."""


@dataclass(frozen=True)
class BoxResult:
    boxes: tuple[Box, ...]
    error: str | None


def parse_boxes(text: str, size: tuple[int, int] | None, view_index: int = 0) -> BoxResult:
    """Boxes from JSON ``[{"label":…, "box_2d":[x0,y0,x1,y1]}]`` in pixels (also fenced
    ```` ```json ````, ``bbox_2d`` as Qwen2.5-VL writes it, or ``{"boxes": […]}``), from Qwen
    box tokens, or from PaliGemma ``<loc>`` tokens; clipped to ``size`` (width, height).
    Boxes with no area left after clipping are dropped."""
    raw: list[tuple[str, float, float, float, float]] | None = None
    error = None
    if "<|box_start|>" in text:
        raw = _qwen_boxes(text, size)
    elif "<loc" in text:
        raw = _paligemma_boxes(text, size)
    if raw is None:
        raw, error = _json_boxes(text)
    if raw is None:
        return BoxResult((), error)
    boxes = [b for b in (_clip(item, size, view_index) for item in raw) if b is not None]
    if raw and not boxes:
        return BoxResult((), "no box lies inside the image")
    return BoxResult(tuple(boxes), None)


def _json_boxes(text: str) -> tuple[list[tuple[str, float, float, float, float]] | None, str]:
    fenced = _FENCE.search(text)
    body = fenced.group(1) if fenced else text
    starts = [i for i in (body.find("["), body.find("{")) if i >= 0]
    if not starts:
        return None, "no JSON boxes in the answer"
    try:
        data, _ = json.JSONDecoder().raw_decode(body[min(starts) :])
    except json.JSONDecodeError as exc:
        return None, f"malformed JSON ({exc.msg} at character {exc.pos})"
    except RecursionError:
        return None, "malformed JSON (nested too deeply)"
    if isinstance(data, dict):
        data = data.get("boxes", [data])
    if not isinstance(data, list):
        return None, "the JSON is not a list of boxes"
    out = []
    for item in data:
        parsed = _json_box(item)
        if parsed is not None:
            out.append(parsed)
    if data and not out:
        return None, "no item of the JSON list is a box [x0, y0, x1, y1]"
    return out, ""


def _json_box(item: object) -> tuple[str, float, float, float, float] | None:
    if not isinstance(item, dict):
        return None
    coords = next((item[k] for k in _COORD_KEYS if k in item), None)
    if not isinstance(coords, list) or len(coords) != 4:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in coords):
        return None
    values = [float(v) for v in coords]
    if not all(math.isfinite(v) for v in values):
        return None
    label = next((item[k] for k in _LABEL_KEYS if isinstance(item.get(k), str)), "")
    return (str(label), values[0], values[1], values[2], values[3])


def _qwen_boxes(
    text: str, size: tuple[int, int] | None
) -> list[tuple[str, float, float, float, float]] | None:
    w, h = size if size else (_QWEN_GRID, _QWEN_GRID)
    out = []
    for m in _QWEN_BOX.finditer(text):
        try:
            x0, y0, x1, y1 = (float(g) for g in m.group(2, 3, 4, 5))
        except ValueError:
            continue
        sx, sy = w / _QWEN_GRID, h / _QWEN_GRID
        out.append(((m.group(1) or "").strip(), x0 * sx, y0 * sy, x1 * sx, y1 * sy))
    return out or None


def _paligemma_boxes(
    text: str, size: tuple[int, int] | None
) -> list[tuple[str, float, float, float, float]] | None:
    w, h = size if size else (_PALIGEMMA_GRID, _PALIGEMMA_GRID)
    out = []
    for m in _PALIGEMMA_BOX.finditer(text):
        y0, x0, y1, x1 = (int(g) / _PALIGEMMA_GRID for g in m.group(1, 2, 3, 4))
        out.append((m.group(5).strip(), x0 * w, y0 * h, x1 * w, y1 * h))
    return out or None


def _clip(
    item: tuple[str, float, float, float, float], size: tuple[int, int] | None, view_index: int
) -> Box | None:
    label, x0, y0, x1, y1 = item
    x0, x1 = min(x0, x1), max(x0, x1)
    y0, y1 = min(y0, y1), max(y0, y1)
    if size is not None:
        w, h = size
        x0, x1 = min(max(x0, 0.0), w), min(max(x1, 0.0), w)
        y0, y1 = min(max(y0, 0.0), h), min(max(y1, 0.0), h)
    if x1 <= x0 or y1 <= y0:
        return None
    return Box(x0, y0, x1, y1, label=label, view_index=view_index)
