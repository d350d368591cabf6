"""Benchmark train splits (or the user's own rows file) → TRL rows, through the same
pipeline as ``medlens eval``.

A model is trained on exactly what it is later evaluated on: each training ``Sample`` goes
through ``medlens.pipeline.prepare`` (study loading, the benchmark's de-identification policy
from ``bench.spec.pixel_policy``, the recipe the model declares, the task's prompt template
and version), and its ``Request`` messages become a TRL conversational row: ``prompt`` (the
user turn with ``{"type": "image"}`` placeholders), ``completion`` (the gold answer written
the way the task's parser reads it) and ``images`` (the views, RGB, as the transformers backend
hands them to the processor). TRL ≥ 1.16 takes such rows natively for vision-language models
(``DataCollatorForVisionLanguageModeling``).

Leakage: a benchmark file that defines ``exclude_test_leakage(train, test, mode=...)``
(VQA-RAD) is applied with ``mode="questions"`` (no verbatim or templated rewrite of a test
question on the same image, as the literature trains) or, with ``exclude_test_images``,
``mode="images"`` (no train row on a test image, so the test figure is image-disjoint). Other
benchmarks drop verbatim (image, question) copies of test rows. What was dropped is recorded
in ``TrainData.excluded`` and goes into the training card.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medlens.errors import ConfigError, DataError, StudyError
from medlens.normalize import normalize_answer

if TYPE_CHECKING:
    from PIL import Image

    from medlens.bench.benchmark import Benchmark
    from medlens.bench.samples import Sample
    from medlens.pipeline import Prepared
    from medlens.train.augment import Augmenter

TRAINABLE_KINDS = ("closed", "open", "grounding", "choice")
"""Answer kinds whose gold answer is one short target text (reports are trained as their
reference text too, but medlens-tiny does not use them)."""


@dataclass(frozen=True)
class SourceRecord:
    """What one benchmark contributed: for the training card."""

    benchmark: str
    split: str
    revision: str | None
    source: str
    """"local" (a release folder), "hub", or "file" (a rows file; ``revision`` its digest)."""
    rows: int
    excluded: Mapping[str, int]
    """Reason → rows dropped ("test-leakage:questions", "test-images", "unloadable", ...)."""
    pixels: Mapping[str, Any] = field(default_factory=dict)
    """The de-identification record, as eval stores it (``pixel_policy``)."""
    repeat: int = 1
    """Times each row is shown per epoch (``--repeat``); ``rows`` counts each once."""
    balanced: int = 0
    """Extra copies of closed rows shown per epoch by ``--balance-closed`` (``balance_closed``)."""


@dataclass
class TrainData:
    """Rows ready for a TRL trainer, plus the record of how they were made."""

    rows: list[dict[str, Any]]
    sources: list[SourceRecord]
    recipes: list[str]
    task_versions: list[str]
    view_size: int | None = None
    """The longest side the views were rendered at (None: the recipes' own sizes)."""

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        # TRL's collators write into the example dicts: give each call its own copy.
        row = self.rows[index]
        return {**row, "prompt": [dict(m) for m in row["prompt"]], "images": list(row["images"])}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (self[i] for i in range(len(self)))

    def texts(self) -> Iterator[str]:
        """Every prompt and answer text (a fresh model's tokenizer is trained on them)."""
        for row in self.rows:
            for message in [*row["prompt"], *row.get("completion", ())]:
                for part in message["content"]:
                    if part.get("type") == "text":
                        yield str(part["text"])

    def dataset(self, columns: Sequence[str] = (), augment: Augmenter | None = None) -> Any:
        """A ``datasets.Dataset`` of the rows (what TRL's trainers take). Images stay shared
        Python objects, attached on access by a transform, instead of being re-encoded into
        Arrow once per question; ``augment`` redraws each on every access (the geometry of a
        row with boxes is kept). ``columns`` keeps only those (besides ``images``)."""
        import datasets

        pool: list[Image.Image] = []
        index: dict[int, int] = {}
        plain = []
        for row in self.rows:
            ids = [index.setdefault(id(im), len(index)) for im in row["images"]]
            pool.extend(im for im in row["images"] if index[id(im)] >= len(pool))
            record = {k: v for k, v in row.items() if k != "images"}
            if columns:
                record = {k: v for k, v in record.items() if k in columns}
            geometric = not row.get("boxes")
            plain.append(
                {**record, "image_ids": ids, "geometric": geometric, "length": _length(row)}
            )

        def attach(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
            if "image_ids" in batch:
                geometric = batch.pop("geometric")
                batch["images"] = [
                    [_drawn(pool[i], augment, moves) for i in ids]
                    for ids, moves in zip(batch.pop("image_ids"), geometric, strict=True)
                ]
            return batch

        return datasets.Dataset.from_list(plain).with_transform(attach)

    def card(self) -> dict[str, Any]:
        return {
            "rows": len(self.rows),
            "sources": [vars(s) | {"excluded": dict(s.excluded)} for s in self.sources],
            "recipes": self.recipes,
            "task_versions": self.task_versions,
            "view_size": self.view_size,
        }


def _drawn(image: Image.Image, augment: Augmenter | None, geometric: bool) -> Image.Image:
    return image if augment is None else augment(image, geometric=geometric)


def _length(row: Mapping[str, Any]) -> int:
    """A rough size of a row (characters of text, 100 per image) for length-grouped batches,
    which waste less compute on padding."""
    chars = sum(
        len(str(part.get("text") or "")) + (100 if part.get("type") == "image" else 0)
        for key in ("prompt", "completion", "chosen", "rejected")
        for message in row.get(key) or ()
        for part in message["content"]
    )
    return int(chars)


def target_text(sample: Sample, prepared: Prepared) -> str:
    """The gold answer as the task's parser reads it back: closed answers as the candidate
    an accepted answer names (``yes``/``no`` in lower case, "T2 weighted" for "T2"), boxes
    as the grounding template's JSON in pixels of the view the model is shown, anything else
    as the reference text."""
    answer = sample.answer.strip()
    if sample.kind == "closed":
        accepted = {normalize_answer(a) for a in sample.answers}
        for candidate in prepared.request.candidates:
            if normalize_answer(candidate) in accepted:
                return candidate
        return answer
    if sample.kind == "grounding":
        return json.dumps(
            [
                {"label": box["label"], "box_2d": _view_box(box["box"], prepared)}
                for box in sample.metadata.get("boxes", [])
            ]
        )
    return answer


def _view_box(box: Sequence[float], prepared: Prepared) -> list[int]:
    """A box in pixels of the original image → whole pixels of the first view (the recipe
    may have resized it); the grounding template states the view's size to the model."""
    from medlens.study.views import box_to_view

    return [round(v) for v in box_to_view(prepared.views[0], box)]


def exclude_leakage(
    bench: Benchmark, train: Sequence[Sample], test: Sequence[Sample], *, test_images: bool
) -> tuple[list[Sample], dict[str, int]]:
    """``train`` without what leaks ``test``, and the count dropped per reason."""
    from medlens.bench.quality import image_key, question_key

    module = sys.modules[type(bench).__module__]
    exclude = getattr(module, "exclude_test_leakage", None)
    excluded: dict[str, int] = {}
    kept = list(train)
    if callable(exclude):
        kept = list(exclude(kept, test, mode="questions"))
        excluded["test-leakage:questions"] = len(train) - len(kept)
        if test_images:
            before = len(kept)
            kept = list(exclude(kept, test, mode="images"))
            excluded["test-images"] = before - len(kept)
        return kept, excluded
    seen = {(image_key(s), question_key(s.question)) for s in test}
    kept = [t for t in kept if (image_key(t), question_key(t.question)) not in seen]
    excluded["test-leakage:verbatim"] = len(train) - len(kept)
    if test_images:
        images = {image_key(s) for s in test}
        before = len(kept)
        kept = [t for t in kept if image_key(t) not in images]
        excluded["test-images"] = before - len(kept)
    return kept, excluded


@dataclass(frozen=True)
class DataSpec:
    """Which rows to train on and how they are prepared (``medlens train --data``)."""

    benchmarks: tuple[str, ...]
    repeat: Mapping[str, int] = field(default_factory=dict)
    """Benchmark → times its rows are shown per epoch (a mixing weight; default once)."""
    split: str = "train"
    data_dir: str | None = None
    exclude_test_images: bool = False
    """Drop train rows on test images (VQA-RAD shares all 203 test images with train)."""
    deidentify: bool = True
    deid_ocr: str | None = None
    model: str | None = None
    """The model id recipes are chosen for (``study.MODEL_RECIPES``), as eval passes it."""
    view_size: int | None = None
    """The longest view side (``models.view_size_for``), as the backend caps it at eval."""
    limit: int | None = None
    """First N rows per benchmark (smoke runs and tests)."""
    kinds: tuple[str, ...] = TRAINABLE_KINDS
    balance_closed: bool = False
    """Show every answer of a repeated closed question equally often (``balance_closed``)."""


def build_train_data(spec: DataSpec, *, progress: bool = False) -> TrainData:
    """Load, exclude, prepare and convert every ``--data`` source into rows: a benchmark's
    ``spec.split``, or a rows file of the user's own questions (``read_rows_file``)."""
    if not spec.benchmarks:
        raise ConfigError("Name at least one benchmark to train on, e.g. --data slake.")
    rows: list[dict[str, Any]] = []
    sources: list[SourceRecord] = []
    recipes: set[str] = set()
    tasks: set[str] = set()
    images: dict[str, Image.Image] = {}
    for name in spec.benchmarks:
        bench: Benchmark | None
        excluded: dict[str, int]
        revision: str | None
        if is_rows_file(name):
            samples, excluded = read_rows_file(name), {}
            bench, split, revision, origin = None, "rows", _file_digest(name), "file"
        else:
            bench, samples, excluded, revision, origin = _benchmark_samples(name, spec)
            split = spec.split
        samples = [s for s in samples if s.kind in spec.kinds]
        if spec.limit:
            samples = samples[: spec.limit]
        deidentify, pixels = _policy(bench, spec)
        made, failed, used = prepare_rows(
            samples,
            deidentify=deidentify,
            model=spec.model,
            view_size=spec.view_size,
            images=images,
            progress=progress,
        )
        if failed:
            excluded["unloadable"] = failed
        if not made:
            raise DataError(
                f"{name} split '{split}' gave no training rows "
                f"({len(samples)} samples after exclusions {excluded or 'none'}; kinds "
                f"{', '.join(spec.kinds)}). Check --data-dir and the split name."
            )
        extra = balance_closed(made) if spec.balance_closed else []
        repeat = spec.repeat.get(name, 1)
        rows.extend((made + extra) * repeat)
        recipes.update(used[0])
        tasks.update(used[1])
        sources.append(
            SourceRecord(
                benchmark=name,
                split=split,
                revision=revision,
                source=origin,
                rows=len(made),
                excluded=excluded,
                pixels=pixels,
                repeat=repeat,
                balanced=len(extra),
            )
        )
    return TrainData(rows, sources, sorted(recipes), sorted(tasks), spec.view_size)


BALANCE_MAX_COPIES = 4
"""A row is shown at most this many times per epoch by ``balance_closed`` (an answer seen
once in 60 is not memorised 60 times over)."""


def balance_closed(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Extra copies of closed rows such that, within each question text asked of several
    images, every gold answer is shown about as often as the commonest one (each row at most
    ``BALANCE_MAX_COPIES`` times). SLAKE asks "Does the picture contain liver?" of 129 train
    images, 90 of them "yes": a model can score 70 % on it from the words alone, and a small
    one trained on the release as is learns exactly that (the shipped medlens-tiny answers
    SLAKE yes/no questions 69 % right with the image and 70 % without it). With the
    answers balanced, the words alone score 50 % and only the image tells them apart, as in
    VQA v2's complementary pairs (Goyal et al. 2017). Questions asked with one answer only
    are left as they are. It suits a model that can already see organs (a pretrained vision
    tower): medlens-tiny's recipe from scratch, 2 epochs, scored 52.4 % on SLAKE validation
    closed with it and 61.6 % without (the prior was lost before presence was learnt from the
    pixels), so medlens-tiny is trained without it."""
    from medlens.bench.quality import question_key

    groups: dict[str, dict[str, list[Mapping[str, Any]]]] = {}
    for row in rows:
        if row.get("kind") == "closed" and row.get("answers"):
            by_answer = groups.setdefault(question_key(str(row["question"])), {})
            by_answer.setdefault(question_key(str(row["answers"][0])), []).append(row)
    extra: list[dict[str, Any]] = []
    for by_answer in groups.values():
        if len(by_answer) < 2:
            continue
        most = max(len(same) for same in by_answer.values())
        for same in by_answer.values():
            wanted = min(most - len(same), (BALANCE_MAX_COPIES - 1) * len(same))
            extra.extend(dict(same[i % len(same)]) for i in range(wanted))
    return extra


def _benchmark_samples(
    name: str, spec: DataSpec
) -> tuple[Benchmark, list[Sample], dict[str, int], str | None, str]:
    """A benchmark's ``spec.split`` without what leaks its test split: (benchmark, samples,
    rows excluded per reason, revision, "local" or "hub")."""
    from medlens.bench.benchmarks import get_benchmark

    bench = get_benchmark(name)
    if spec.split not in bench.splits:
        raise ConfigError(
            f"{name} has no split '{spec.split}' to train on; it has {', '.join(bench.splits)}."
        )
    loaded = bench.load(spec.split, spec.data_dir)
    samples = [s for s in loaded if s.kind in spec.kinds]  # leakage counts trainable rows
    excluded: dict[str, int] = {}
    if bench.default_split != spec.split and bench.default_split in bench.splits:
        test = bench.load(bench.default_split, spec.data_dir)
        samples, excluded = exclude_leakage(
            bench, samples, test, test_images=spec.exclude_test_images
        )
    return bench, samples, excluded, loaded.revision, loaded.source


ROWS_FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv")
GOLD_COLUMNS = ("answer", "answers", "gold", "label", "target")


def is_rows_file(name: str) -> bool:
    """A ``--data`` entry naming a file of the user's own rows rather than a benchmark."""
    return Path(name).suffix.lower() in ROWS_FILE_SUFFIXES


def read_rows_file(path: str) -> list[Sample]:
    """The user's own training questions, one per row of a JSONL / JSON-list / CSV / TSV
    file laid out as ``medlens score`` reads (question id, question text and image columns
    under the same spellings), with the gold answer in ``answer`` (or ``answers``, ``gold``,
    ``label``, ``target``). Images are DICOM, NIfTI or image files, relative to the rows
    file's folder; several are separated by ``|``. Optional: ``kind`` (closed, open, choice,
    grounding; guessed from the question otherwise), ``candidates`` (a list or ``|``-joined)
    and, for grounding, ``boxes`` (``[{"label": ..., "box": [x0, y0, x1, y1]}]`` in pixels).
    The images are studies like any other: de-identified as ``--no-deid`` says."""
    from medlens.bench.benchmarks._common import closed_candidates
    from medlens.bench.metrics.predictions import read_rows
    from medlens.bench.samples import Sample
    from medlens.tasks import guess_kind

    folder = Path(path).parent
    rows = read_rows(path)
    present = {key for row in rows for key in row}
    gold = next((c for c in GOLD_COLUMNS if c in present), None)
    image = next((c for c in ("image", "images", "image_path", "image_name") if c in present), None)
    if gold is None or image is None or "question" not in present:
        raise DataError(
            f"{path}: a training rows file needs 'question', 'image' and 'answer' columns; it "
            f"has {', '.join(sorted(present)) or 'none'}."
        )
    samples = []
    for number, row in enumerate(rows, start=1):
        question, answers = str(row.get("question") or ""), _listed(row.get(gold))
        files = tuple(str(folder / f) for f in _listed(row.get(image)))
        if not question or not answers or not files:
            raise DataError(f"{path} row {number}: question, image and answer must be filled.")
        given = tuple(_listed(row.get("candidates")))
        kind = row.get("kind") or (
            "closed" if answers[0].strip().lower() in ("yes", "no") else guess_kind(question, given)
        )
        if kind not in TRAINABLE_KINDS:
            raise DataError(
                f"{path} row {number}: kind {kind!r}; use one of {', '.join(TRAINABLE_KINDS)}."
            )
        candidates = given or closed_candidates(question, answers[0], kind)[0]
        boxes = row.get("boxes") or []
        if kind == "grounding" and not boxes:
            raise DataError(f"{path} row {number}: a grounding row needs its gold 'boxes'.")
        samples.append(
            Sample(
                id=str(row.get("id") or row.get("question_id") or number),
                benchmark=Path(path).name,
                split="rows",
                question=question,
                answers=answers,
                kind=kind,
                images=files,
                candidates=candidates,
                metadata={"boxes": boxes} if boxes else {},
            )
        )
    return samples


def _listed(value: Any) -> tuple[str, ...]:
    """A list column, or a ``|``-joined string, as a tuple of non-empty strings."""
    if value is None or value == "":
        return ()
    items = value if isinstance(value, (list, tuple)) else str(value).split("|")
    return tuple(str(v).strip() for v in items if str(v).strip())


def _file_digest(path: str) -> str:
    """The rows file's revision in the card: its SHA-256, so a card says which version of
    the user's file trained the model without copying any row into it."""
    return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()


def from_samples(samples: Sequence[Sample], **options: Any) -> TrainData:
    """Rows of samples that come from no registered benchmark (tests, a user's own data),
    prepared as ``prepare_rows`` does (``deidentify``, ``model``)."""
    rows, _failed, (recipes, tasks) = prepare_rows(samples, **options)
    if not rows:
        raise DataError(f"none of the {len(samples)} samples gave a training row")
    return TrainData(rows, [], sorted(recipes), sorted(tasks), options.get("view_size"))


def _policy(bench: Benchmark | None, spec: DataSpec) -> tuple[Any, dict[str, Any]]:
    """The de-identification eval would apply to ``bench`` (None: the user's own files)."""
    from medlens.bench.spec import EvalSpec, pixel_policy

    eval_spec = EvalSpec(
        benchmarks=(bench.name if bench is not None else "rows",),
        model=spec.model or "training",
        deidentify=spec.deidentify,
        deid_ocr=spec.deid_ocr,
    )
    return pixel_policy(eval_spec, bench)


def prepare_rows(
    samples: Sequence[Sample],
    *,
    deidentify: Any = True,
    model: str | None = None,
    view_size: int | None = None,
    images: dict[str, Image.Image] | None = None,
    progress: bool = False,
) -> tuple[list[dict[str, Any]], int, tuple[set[str], set[str]]]:
    """Rows of ``samples`` (and how many failed to load, and the recipes and task versions
    used). Studies are loaded and de-identified once per image source, and identical views
    share one image object (SLAKE asks ~10 questions per image)."""
    from tqdm import tqdm

    from medlens import pipeline
    from medlens.bench.treatments import item_of

    images = {} if images is None else images
    name = samples[0].benchmark if samples else "samples"
    studies: dict[Any, Any] = {}
    rows: list[dict[str, Any]] = []
    failed = 0
    recipes: set[str] = set()
    tasks: set[str] = set()
    for sample in tqdm(samples, desc=f"preparing {name}", disable=not progress):
        item = item_of(sample)
        try:
            sources = tuple(_study(studies, s, deidentify) for s in item.sources)
            prepared = pipeline.prepare(
                list(sources),
                item.question,
                kind=item.kind,
                candidates=item.candidates,
                request_id=item.id,
                metadata=item.metadata,
                deidentify=deidentify,
                model=model,
                view_size=view_size,
            )
        except StudyError:
            failed += 1
            continue
        recipes.add(prepared.recipe)
        tasks.add(prepared.task_version)
        rows.append(_row(sample, prepared, images))
    return rows, failed, (recipes, tasks)


def _study(cache: dict[Any, Any], source: Any, deidentify: Any) -> Any:
    from medlens import pipeline
    from medlens.study import load_study

    key = source if isinstance(source, str) else hashlib.sha256(source).hexdigest()
    if key not in cache:
        cache[key] = pipeline.protect(load_study(source), deidentify)
    return cache[key]


def request_row(prepared: Prepared, images: dict[str, Image.Image]) -> dict[str, Any]:
    """A prepared request as a TRL conversational prompt with its images, rendered as the
    transformers backend renders it (``TransformersBackend._render``)."""
    from medlens.types import ImagePart, TextPart

    prompt: list[dict[str, Any]] = []
    shown: list[Image.Image] = []
    for message in prepared.request.messages:
        content: list[dict[str, Any]] = []
        for part in message.content:
            if isinstance(part, ImagePart):
                shown.append(_shared(part.image, images))
                content.append({"type": "image"})
            elif isinstance(part, TextPart):
                content.append({"type": "text", "text": part.text})
        prompt.append({"role": message.role, "content": content})
    return {"prompt": prompt, "images": shown}


def _row(sample: Sample, prepared: Prepared, images: dict[str, Image.Image]) -> dict[str, Any]:
    """The TRL row plus the columns rewards and pair builders read (``medlens.train.rewards``):
    gold answers, kind, candidates, gold boxes and image size in pixels of the view shown."""
    row = request_row(prepared, images)
    answer = target_text(sample, prepared)
    request = prepared.request
    row["completion"] = [{"role": "assistant", "content": [{"type": "text", "text": answer}]}]
    row["id"] = f"{sample.benchmark}/{sample.id}"
    row["question"] = request.question
    row["kind"] = sample.kind
    row["answers"] = list(sample.answers)
    row["candidates"] = list(request.candidates)
    row["boxes"] = [_view_box(b["box"], prepared) for b in sample.metadata.get("boxes", [])]
    row["image_size"] = list(prepared.views[0].image.size) if prepared.views else []
    row["task"] = prepared.task_version
    row["deidentified"] = request.deidentified
    return row


def row_request(row: Mapping[str, Any], options: Any = None, images: Sequence[Any] = ()) -> Any:
    """The backend ``Request`` a row's prompt came from (``images`` replace its own, e.g.
    with a lesion noised out), so a model can answer training rows through any backend."""
    from medlens.tasks import get_task
    from medlens.types import GenerationOptions, ImagePart, Message, Request, TextPart

    shown = iter(images or row["images"])
    messages = tuple(
        Message(
            message["role"],
            tuple(
                ImagePart(next(shown)) if part.get("type") == "image" else TextPart(part["text"])
                for part in message["content"]
            ),
        )
        for message in row["prompt"]
    )
    if options is None:  # the task's own budget, as eval decodes without --max-new-tokens
        options = GenerationOptions(max_new_tokens=get_task(row["kind"]).max_new_tokens)
    return Request(
        id=str(row["id"]),
        messages=messages,
        kind=row["kind"],
        question=str(row.get("question", "")),
        candidates=tuple(row.get("candidates") or ()),
        deidentified=bool(row.get("deidentified", False)),
        metadata={"image_size": tuple(row["image_size"])} if row.get("image_size") else {},
        options=options,
    )


def _shared(image: Image.Image, images: dict[str, Image.Image]) -> Image.Image:
    rgb = image.convert("RGB") if image.mode != "RGB" else image
    key = hashlib.sha256(rgb.tobytes()).hexdigest() + str(rgb.size)
    return images.setdefault(key, rgb)
