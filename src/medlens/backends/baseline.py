"""Weightless baselines that every honest medical VQA evaluation reports beside a model.

VQA sets can often be answered from the question alone (Goyal et al. 2017, "Making the V in
VQA Matter", measured how far language priors go); closed medical questions are about half
"yes", and many open ones repeat a small vocabulary. A model's accuracy only means something
next to what needs no image. So medlens ships three:

- ``prior``: the most frequent training answer for the question's kind (and category); for
  grounding, the median training box of the named label (where the liver usually is);
- ``no-image``: any backend with the images removed (text-only ablation);
- ``random``: uniform over the candidates.

Their generations say what they are (model id ``baseline:prior`` ...), so that no report can
pass a baseline off as a VLM. They are local and give candidate probabilities, so the trust
stage can calibrate and score them like a model.
"""

from __future__ import annotations

import json
import math
import random
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from medlens.backends.base import Backend
from medlens.errors import DataError
from medlens.types import Generation, ImagePart, Message, Request

YES_NO = ("yes", "no")

PRIOR_FORMAT = "medlens-prior"
PRIOR_VERSIONS = (1, 2)
"""1: answer counts; 2: also a median box per grounding label."""
CATEGORY_KEYS = ("question_category", "question_type")
"""Request metadata keys naming the question's category (SLAKE ``content_type``/VQA-RAD
``question_type`` as benchmark loaders pass them)."""


def _key(answer: str) -> str:
    return " ".join(answer.strip().lower().split())


Box = tuple[float, float, float, float]


@dataclass
class PriorTable:
    """Answer frequencies per (kind, category); category ``None`` pools the whole kind. For
    grounding, the median box of each label, as fractions of the image's width and height.

    >>> table = PriorTable.fit([("closed", "size", "yes"), ("closed", "size", "yes"),
    ...                         ("closed", None, "no")])
    >>> table.counts_for("closed", "size").most_common(1)
    [('yes', 2)]
    >>> table.counts_for("closed", "unseen").most_common()  # falls back to the kind
    [('yes', 2), ('no', 1)]
    >>> boxes = PriorTable.fit([], boxes=[("Liver", (50, 100, 150, 200), (256, 256)),
    ...                                   ("liver", (60, 110, 170, 230), (512, 512))])
    >>> boxes.box_for("LIVER", (100, 100))
    (15.6, 30.3, 45.9, 61.5)
    """

    counts: dict[tuple[str, str | None], Counter[str]] = field(default_factory=dict)
    boxes: dict[str, Box] = field(default_factory=dict)
    """Folded label → median (x0, y0, x1, y1) as fractions of the image size."""

    @classmethod
    def fit(
        cls,
        rows: Iterable[tuple[str, str | None, str]],
        boxes: Iterable[tuple[str, Sequence[float], tuple[int, int]]] = (),
    ) -> PriorTable:
        """Count training answers (case and spacing folded); each also counts for its kind.
        ``boxes`` are (label, pixel box, image (width, height)) of the training boxes; each
        label keeps the coordinate-wise median of its boxes."""
        table = cls()
        for kind, category, answer in rows:
            key = _key(answer)
            if not key:
                continue
            table.counts.setdefault((kind, None), Counter())[key] += 1
            if category is not None:
                table.counts.setdefault((kind, str(category)), Counter())[key] += 1
        by_label: defaultdict[str, list[Box]] = defaultdict(list)
        for label, (x0, y0, x1, y1), (width, height) in boxes:
            if width > 0 and height > 0 and _key(label):
                by_label[_key(label)].append((x0 / width, y0 / height, x1 / width, y1 / height))
        for label, found in by_label.items():
            x0, y0, x1, y1 = (statistics.median(b[i] for b in found) for i in range(4))
            table.boxes[label] = (x0, y0, x1, y1)
        return table

    def box_for(self, label: str, size: tuple[int, int]) -> Box | None:
        """The label's median box in the pixels of an image of ``size`` (one decimal)."""
        box = self.boxes.get(_key(label))
        if box is None:
            return None
        width, height = size
        x0, y0, x1, y1 = (round(v * s, 1) for v, s in zip(box, (width, height) * 2, strict=True))
        return (x0, y0, x1, y1)

    @property
    def fitted(self) -> bool:
        return bool(self.counts or self.boxes)

    def counts_for(self, kind: str, category: str | None) -> Counter[str]:
        """The category's counts, or the kind's when the category was not seen."""
        if category is not None and (kind, category) in self.counts:
            return self.counts[(kind, category)]
        return self.counts.get((kind, None), Counter())

    def save(self, path: str | Path) -> None:
        entries = [
            {"kind": kind, "category": category, "answers": dict(counter.most_common())}
            for (kind, category), counter in sorted(
                self.counts.items(), key=lambda item: (item[0][0], item[0][1] or "")
            )
        ]
        data: dict[str, Any] = {"format": PRIOR_FORMAT, "version": 1, "counts": entries}
        if self.boxes:
            data["version"] = 2
            data["boxes"] = {label: list(box) for label, box in sorted(self.boxes.items())}
        Path(path).write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> PriorTable:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(
                f"Cannot read the prior table {path.name}: {exc}. Fit one with "
                "PriorTable.fit(rows).save(path)."
            ) from exc
        if not isinstance(data, dict) or data.get("format") != PRIOR_FORMAT:
            raise DataError(f"{path.name} is not a medlens prior table (format {PRIOR_FORMAT!r}).")
        if data.get("version", 1) not in PRIOR_VERSIONS:
            raise DataError(
                f"{path.name} is a prior table of version {data.get('version')!r}; this medlens "
                f"reads versions {', '.join(map(str, PRIOR_VERSIONS))}. Refit it with this medlens."
            )
        table = cls()
        try:
            for entry in data["counts"]:
                category = entry["category"]
                counter = Counter({str(a): int(n) for a, n in entry["answers"].items()})
                table.counts[(str(entry["kind"]), None if category is None else str(category))] = (
                    counter
                )
            for label, box in data.get("boxes", {}).items():
                x0, y0, x1, y1 = (float(v) for v in box)
                table.boxes[str(label)] = (x0, y0, x1, y1)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"The prior table {path.name} is malformed: {exc!r}.") from exc
        return table


def _category(request: Request) -> str | None:
    for key in CATEGORY_KEYS:
        value = request.metadata.get(key)
        if value is not None and str(value).strip():
            return str(value)
    return None


def _grounding_answer(table: PriorTable, request: Request) -> str:
    label = str(request.metadata.get("label", ""))
    images = request.images
    box = table.box_for(label, images[0].size) if label and images else None
    return json.dumps([{"label": label, "box_2d": list(box)}] if box else [])


def _candidates(request: Request) -> tuple[str, ...]:
    return request.candidates or (YES_NO if request.kind == "closed" else ())


class PriorBackend:
    """Answers what the training set answered most often, without looking at anything.

    With candidates, each gets the add-one-smoothed training frequency
    ``(n_c + 1) / (N + K)`` (for multiple choice, answers recorded as the option letter
    count for that option too), and the answer is the most probable one, ties going to the
    first candidate. Without candidates (open questions), the answer is the most frequent
    training answer of the question's category, else of its kind, else empty. A grounding
    question gets the median training box of its label (request metadata ``label``) scaled
    to its image, as the grounding task's JSON, or ``[]`` for a label never seen.

    Without a fitted table (``prior=None``) every count is zero: uniform over the
    candidates, so closed questions get the first candidate, "yes", and open questions an
    empty answer; the model id says ``baseline:prior(unfitted)``. (Measured for reference:
    VQA-RAD's MEVF train split answers 829 closed questions "yes" and 884 "no", SLAKE's
    English train 864 "yes" and 817 "no", so no generic closed prior is much better.)
    """

    name: ClassVar[str] = "prior"
    remote: ClassVar[bool] = False
    allow_identified: bool = False
    supports_scoring: ClassVar[bool] = True
    view_size: int | None = None

    def __init__(self, model: str = "prior", *, prior: str | Path | PriorTable | None = None):
        self.table = prior if isinstance(prior, PriorTable) or prior is None else None
        if isinstance(prior, (str, Path)):
            self.table = PriorTable.load(prior)
        fitted = self.table is not None and self.table.fitted
        self.model_id = "baseline:prior" if fitted else "baseline:prior(unfitted)"

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        return [self.answer(request) for request in requests]

    def answer(self, request: Request) -> Generation:
        table = self.table or PriorTable()
        if request.kind == "grounding":
            return self._generation(request, _grounding_answer(table, request), {})
        counts = table.counts_for(request.kind, _category(request))
        candidates = _candidates(request)
        if not candidates:
            best = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
            return self._generation(request, best[0][0] if best else "", {})
        hits = [counts.get(_key(c), 0) for c in candidates]
        if request.kind == "choice":
            hits = [n + counts.get(chr(ord("a") + i), 0) for i, n in enumerate(hits)]
        total = sum(hits) + len(candidates)
        logprobs = {c: math.log((n + 1) / total) for c, n in zip(candidates, hits)}
        best_index = max(range(len(candidates)), key=lambda i: (hits[i], -i))
        return self._generation(request, candidates[best_index], logprobs)

    def _generation(self, request: Request, text: str, logprobs: Mapping[str, float]) -> Generation:
        return Generation(
            request_id=request.id,
            text=text,
            model=self.model_id,
            backend=self.name,
            candidate_logprobs=dict(logprobs),
        )

    def close(self) -> None:
        """Nothing to release."""


class NoImageBackend:
    """Another backend asked the same questions with every image removed.

    The gap between a model and its no-image self is the part of its accuracy that needs
    the image. Without an inner backend it answers as ``PriorBackend(prior=prior)``. The
    wrapped backend still applies its own rules (a remote one still refuses requests that
    were not de-identified).
    """

    name: ClassVar[str] = "no-image"
    remote: ClassVar[bool] = False
    allow_identified: bool = False
    supports_scoring: ClassVar[bool] = True
    view_size: int | None = None

    def __init__(
        self,
        model: str = "no-image",
        *,
        backend: Backend | None = None,
        prior: str | Path | PriorTable | None = None,
    ) -> None:
        self.inner: Backend = backend if backend is not None else PriorBackend(prior=prior)
        self.model_id = f"baseline:no-image({self.inner.model_id})"

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        blind = [strip_images(r) for r in requests]
        return [
            replace(g, model=f"baseline:no-image({g.model})", backend=self.name)
            for g in self.inner.generate(blind)
        ]

    def close(self) -> None:
        self.inner.close()


def strip_images(request: Request) -> Request:
    """The same request without its image parts (text, candidates and options kept)."""
    messages = tuple(
        Message(m.role, tuple(p for p in m.content if not isinstance(p, ImagePart)))
        for m in request.messages
    )
    return replace(request, messages=messages)


class RandomBackend:
    """Uniform over the candidates (closed: yes/no; choice: the options), with the pick
    fixed by ``seed`` and the request id so that reruns and resumed runs agree.

    Open and report questions get an empty answer (there is no vocabulary to draw from; it
    parses as unanswered, the honest chance level of free text). Grounding gets one box
    drawn uniformly inside the image, as JSON, the chance level of box overlap.
    """

    name: ClassVar[str] = "random"
    remote: ClassVar[bool] = False
    allow_identified: bool = False
    supports_scoring: ClassVar[bool] = True
    view_size: int | None = None

    def __init__(self, model: str = "random", *, seed: int = 0) -> None:
        self.seed = seed
        self.model_id = f"baseline:random(seed={seed})"

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        return [self.answer(request) for request in requests]

    def answer(self, request: Request) -> Generation:
        rng = random.Random(f"{self.seed}:{request.id}")
        candidates = _candidates(request)
        logprobs: dict[str, float] = {}
        if candidates:
            text = rng.choice(candidates)
            logprobs = {c: -math.log(len(candidates)) for c in candidates}
        elif request.kind == "grounding" and request.images:
            text = json.dumps([{"label": "random", "box_2d": _random_box(rng, request)}])
        else:
            text = ""
        return Generation(
            request_id=request.id,
            text=text,
            model=self.model_id,
            backend=self.name,
            candidate_logprobs=logprobs,
        )

    def close(self) -> None:
        """Nothing to release."""


def _random_box(rng: random.Random, request: Request) -> list[int]:
    size: Any = request.metadata.get("image_size") or request.images[-1].size
    width, height = int(size[0]), int(size[1])
    x0, x1 = sorted(rng.randint(0, width) for _ in range(2))
    y0, y1 = sorted(rng.randint(0, height) for _ in range(2))
    return [x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)]
