"""VQA-RAD (Lau et al., Scientific Data 5:180251, 2018): clinician-written questions on 315
MedPix radiology images, CC0 1.0.

Splits are the MEVF split most papers report (``data_RAD/trainset.json`` 3,064 rows,
``testset.json`` 451 rows: 272 closed, 179 open). Traps, measured in
``shared/data/vqa-rad/PROVENANCE.md`` and re-counted by ``quality`` at load:

- the split is by question, not image: every test image is also a train image;
- 14 test (image, question) pairs are verbatim in train, and for 284 test rows the templated
  rewrite (``question_frame``, ``phrase_type == "frame"`` in train) of the test question is a
  train question on the same image. Anything fitted on train (priors, few-shot examples,
  calibration, vocabularies) must use ``exclude_leakage`` first;
- two rows carry ``answer_type`` "CLOSED " with a trailing space (stripped here).

Hub copy ``flaviagiammarino/vqa-rad`` keeps only image/question/answer (train 1,793 / test
451); its closed/open type is inferred from yes/no answers, as its card describes.

A row of the MEVF split, and one of the Hub copy (its type read from the yes/no answer):

>>> from medlens.bench.benchmarks import get_benchmark
>>> vqa_rad = get_benchmark("vqa-rad")
>>> row = {"qid": 42, "image_name": "synpic100.jpg", "question": "Where is the mass?",
...        "answer": "left lower lobe", "answer_type": "OPEN ", "image_organ": "CHEST"}
>>> sample = vqa_rad.from_local_row(row, "test", Path("data_RAD/images"))
>>> sample.id, sample.kind, sample.images, sample.metadata["organ"]
('42', 'open', ('data_RAD/images/synpic100.jpg',), 'CHEST')
>>> [hub] = vqa_rad.from_hub_row({"image": "x.jpg", "question": "Is it normal?", "answer": "No"},
...                              "test", 7)
>>> hub.id, hub.kind, hub.answers
('test-7', 'closed', ('No',))
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from medlens.bench.benchmark import Benchmark
from medlens.bench.benchmarks._common import (
    closed_by_answer,
    closed_candidates,
    image_value,
    read_json,
)
from medlens.bench.quality import check_samples, image_key, question_key
from medlens.bench.samples import QualityIssue, Sample
from medlens.types import AnswerKind

IMAGE_DIRS = ("VQA_RAD Image Folder", "data_RAD/images")


class VQARad(Benchmark):
    name = "vqa-rad"
    hf_id = "flaviagiammarino/vqa-rad"
    hf_revision = "74b6acbd67e60def0427836dfef45ed63ef83590"
    splits = ("test", "train")
    license = "CC0 1.0"
    citation = (
        "Lau JJ, Gayen S, Ben Abacha A, Demner-Fushman D. A dataset of clinically generated "
        "visual questions and answers about radiology images. Sci Data 5, 180251 (2018)."
    )
    homepage = "https://osf.io/89kps/"
    scoring_rule = (
        "Closed (yes/no and short choice) accuracy and open accuracy, as the MEVF split is "
        "reported since Nguyen et al. 2019 (MEVF); LLaVA-Med reports open recall instead "
        "(github.com/microsoft/LLaVA-Med llava/eval/run_eval.py @ ad758b6)."
    )
    version = "2"
    """2: a CLOSED question that is not yes/no (21 of 272 in test: "Is this an axial or
    saggital view of the brain?") is asked with the options it lists when its answer names
    one (20 of 21, ``closed_candidates``); version 1 asked it for yes or no."""
    local_dirname = "vqa-rad"
    local_marker = "data_RAD/testset.json"
    deidentified_release = True
    """Images from MedPix, a public teaching archive whose cases are de-identified for
    publication; released on OSF as CC0 (Lau et al. 2018)."""

    leaks_into_test = True

    def exclude_leakage(
        self,
        train: Iterable[Sample],
        test: Iterable[Sample],
        *,
        mode: Literal["images", "questions"] = "images",
    ) -> list[Sample]:
        """See ``exclude_test_leakage``."""
        return exclude_test_leakage(train, test, mode=mode)

    def load_local(self, root: Path, split: str) -> list[Sample]:
        rows = read_json(root / "data_RAD" / f"{split}set.json")
        image_dir = next(
            (root / d for d in IMAGE_DIRS if (root / d).is_dir()), root / IMAGE_DIRS[0]
        )
        frames = _test_frames(root) if split == "test" else {}
        return [self.from_local_row(row, split, image_dir, frames) for row in rows]

    def from_local_row(
        self,
        row: Mapping[str, Any],
        split: str,
        image_dir: Path,
        frames: Mapping[tuple[str, str], str] | None = None,
    ) -> Sample:
        """One MEVF row → Sample; ``frames`` maps (image, question) to the OSF question_frame."""
        answer_type = str(row["answer_type"]).strip().upper()
        question = str(row["question"])
        metadata: dict[str, Any] = {
            "image_id": row["image_name"],
            "answer_type": answer_type,
            "question_type": str(row.get("question_type", "")).strip(),
            "phrase_type": row.get("phrase_type", ""),
            "image_organ": row.get("image_organ", ""),
            "organ": row.get("image_organ", ""),
            "qid": row.get("qid"),
            # MedEvalKit picks its yes/no prompt from the reference answer, not the answer
            # type (21 CLOSED test questions answer "left", "t2", ...): the medevalkit prompt
            # preset reads this to build the prompt MedEvalKit sends.
            "yes_no_answer": str(row["answer"]).strip().lower() in ("yes", "no"),
        }
        frame = (frames or {}).get((row["image_name"], question))
        if frame:
            metadata["question_frame"] = frame
        kind: AnswerKind = "closed" if answer_type == "CLOSED" else "open"
        candidates, answers = closed_candidates(question, str(row["answer"]), kind)
        return Sample(
            id=str(row["qid"]),
            benchmark=self.name,
            split=split,
            question=question,
            answers=answers,
            kind=kind,
            candidates=candidates,
            images=(str(image_dir / row["image_name"]),),
            metadata=metadata,
        )

    def from_hub_row(self, row: Mapping[str, Any], split: str, index: int) -> list[Sample]:
        answer = str(row["answer"])
        return [
            Sample(
                id=f"{split}-{index}",
                benchmark=self.name,
                split=split,
                question=str(row["question"]),
                answers=(answer,),
                kind="closed" if closed_by_answer(answer) else "open",
                images=(image_value(row["image"]),),
                metadata={"answer_type": "CLOSED" if closed_by_answer(answer) else "OPEN"},
            )
        ]

    def quality(
        self, samples: Sequence[Sample], *, train: Sequence[Sample] = ()
    ) -> list[QualityIssue]:
        """The generic checks plus ``frame-leakage``: test rows whose templated rewrite is a
        train question on the same image."""
        issues = check_samples(samples, train=train)
        if train:
            pairs = {(image_key(t), question_key(t.question)) for t in train}
            framed = [
                s.id
                for s in samples
                if s.metadata.get("question_frame")
                and (image_key(s), question_key(str(s.metadata["question_frame"]))) in pairs
            ]
            if framed:
                issues.append(
                    QualityIssue(
                        "frame-leakage",
                        len(framed),
                        f"{len(framed)} test questions have their templated rewrite "
                        "(question_frame) in train on the same image",
                        tuple(framed[:5]),
                    )
                )
        return issues


def _test_frames(root: Path) -> dict[tuple[str, str], str]:
    """(image, question) → question_frame for the OSF test rows, when the OSF JSON is there."""
    path = root / "VQA_RAD Dataset Public.json"
    if not path.exists():
        return {}
    frames = {}
    for row in read_json(path):
        frame = str(row.get("question_frame") or "")
        if str(row.get("phrase_type", "")).startswith("test") and frame and frame != "NULL":
            frames[(row["image_name"], str(row["question"]))] = frame
    return frames


def exclude_test_leakage(
    train: Iterable[Sample],
    test: Iterable[Sample],
    *,
    mode: Literal["images", "questions"] = "images",
) -> list[Sample]:
    """``train`` without what leaks ``test``.

    ``mode="images"`` (the safe default) drops every train row on a test image; on the MEVF
    split that removes most of train, because all 203 test images are train images.
    ``mode="questions"`` drops only train rows that are a verbatim copy or the templated
    rewrite (``question_frame``) of a test question on the same image.
    """
    test = list(test)
    if mode == "images":
        test_images = {image_key(s) for s in test}
        return [t for t in train if image_key(t) not in test_images]
    leaked = set()
    for s in test:
        leaked.add((image_key(s), question_key(s.question)))
        frame = s.metadata.get("question_frame")
        if frame:
            leaked.add((image_key(s), question_key(str(frame))))
    return [t for t in train if (image_key(t), question_key(t.question)) not in leaked]


def id_spaces(root: Path | None, samples: Sequence[Sample]) -> dict[str, dict[str, Sample]]:
    """The two VQA-RAD id spaces in circulation: ``mevf`` (the split's ``qid``, what medlens
    uses) and ``osf`` (the ``qid`` of the OSF public JSON, which LLaVA-Med's answer files
    carry). On the test split the two share 59 ids, each naming different questions, so
    ``medlens score`` checks which space a predictions file uses. OSF rows are mapped to
    samples by (image, question); the space is absent without the OSF JSON."""
    spaces = {"mevf": {s.id: s for s in samples}}
    path = None if root is None else root / "VQA_RAD Dataset Public.json"
    if path is None or not path.exists():
        return spaces
    by_pair = {(str(s.metadata.get("image_id")), question_key(s.question)): s for s in samples}
    osf = {}
    for row in read_json(path):
        sample = by_pair.get((str(row["image_name"]), question_key(str(row["question"]))))
        if sample is not None:
            osf[str(row["qid"])] = sample
    spaces["osf"] = osf
    return spaces
