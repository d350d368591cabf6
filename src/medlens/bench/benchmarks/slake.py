"""SLAKE 1.0 (Liu et al., ISBI 2021, arXiv 2102.09542): bilingual radiology VQA with organ and
lesion boxes, CC BY 4.0 (images from MSD, CHAOS and NIH ChestX-ray8 keep their terms).

``slake`` is the English part (``q_lang == "en"``): train 4,919 / validation 1,053 / test
1,061 (416 closed, 645 open), image-disjoint. Never mix languages across splits: 72
English-test images are Chinese-train images. "None" is a real answer (no finding) and is
kept as the string "None"; one English train answer is empty.

``slake-grounding`` turns ``imgs/xmlab<N>/detection.json`` (``[{"Label": [x, y, w, h]}]``)
into one grounding question per box of the split's English images, so that box predictions
are scored by IoU (medlens's own task; the SLAKE paper does not score boxes).

A release of one English question on one image with one box, read by both:

>>> import json, tempfile
>>> from medlens.bench.benchmarks import get_benchmark
>>> folder = tempfile.TemporaryDirectory()
>>> release = Path(folder.name) / "Slake1.0"
>>> (release / "imgs" / "xmlab1").mkdir(parents=True)
>>> row = {"qid": 7, "img_name": "xmlab1/source.jpg", "q_lang": "en", "answer_type": "OPEN",
...        "question": "Which organ is abnormal?", "answer": "Liver", "modality": "CT"}
>>> _ = (release / "test.json").write_text(json.dumps([row]))
>>> detection = [{"Liver": [10, 20, 30, 40]}]  # x, y, w, h
>>> _ = (release / "imgs" / "xmlab1" / "detection.json").write_text(json.dumps(detection))
>>> [question] = get_benchmark("slake").load("test", data_dir=folder.name)
>>> question.id, question.kind, question.answers, question.metadata["modality"]
('7', 'open', ('Liver',), 'CT')
>>> [box] = get_benchmark("slake-grounding").load("test", data_dir=folder.name)
>>> box.kind, box.metadata["boxes"]
('grounding', [{'label': 'Liver', 'box': [10.0, 20.0, 40.0, 60.0]}])
>>> folder.cleanup()
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medlens.bench.benchmark import Benchmark, data_root
from medlens.bench.benchmarks._common import closed_candidates, hub_snapshot, read_json
from medlens.bench.samples import Sample
from medlens.types import AnswerKind

SPLIT_FILES = {"train": "train.json", "validation": "validate.json", "test": "test.json"}
GROUNDING_PROMPT = (
    "Locate the {label} in this image. Answer with its bounding box as [x0, y0, x1, y1] in pixels."
)


def read_boxes(image_dir: Path) -> list[dict[str, Any]]:
    """``detection.json`` boxes as ``{"label", "box": [x0, y0, x1, y1]}`` (the file stores
    ``[x, y, w, h]``: every box fits the image under that reading, see PROVENANCE.md)."""
    path = image_dir / "detection.json"
    if not path.exists():
        return []
    boxes = []
    for entry in read_json(path):
        for label, (x, y, w, h) in entry.items():
            boxes.append({"label": label, "box": [float(x), float(y), float(x + w), float(y + h)]})
    return boxes


class _SlakeRelease(Benchmark):
    hf_id = "BoKelvin/SLAKE"
    splits = ("test", "validation", "train")
    license = "CC BY 4.0 (cite Liu et al., ISBI 2021); source images keep their own terms"
    citation = (
        "Liu B, Zhan LM, Xu L, Ma L, Yang Y, Wu XM. SLAKE: A Semantically-Labeled "
        "Knowledge-Enhanced Dataset for Medical Visual Question Answering. ISBI 2021."
    )
    homepage = "https://www.med-vqa.com/slake/"
    local_dirname = "slake"
    local_marker = "Slake1.0/test.json"
    deidentified_release = True
    """Images selected from public releases (Medical Segmentation Decathlon, NIH
    ChestX-ray8, CHAOS) that their publishers de-identified (Liu et al., ISBI 2021)."""
    language = "en"

    def local_root(self, data_dir: Any = None) -> Path | None:
        """The folder holding ``test.json`` and ``imgs/`` (``Slake1.0``), found from
        ``data_dir`` itself, its ``slake/`` or ``Slake1.0/`` child."""
        base = data_root(data_dir)
        if base is None:
            return None
        for candidate in (base, base / "Slake1.0", base / "slake" / "Slake1.0"):
            if (candidate / "test.json").exists() and (candidate / "imgs").is_dir():
                return candidate
        return None

    def english_rows(self, root: Path, split: str) -> list[Mapping[str, Any]]:
        rows = read_json(root / SPLIT_FILES[split])
        return [r for r in rows if r.get("q_lang") == self.language]

    def load_hub(self, split: str, *, revision: str | None = None) -> list[Sample]:
        """The Hub repository holds the original JSON files and ``imgs.zip``: download it at
        the pinned revision, unpack the images once and read it as a local release."""
        root = hub_snapshot(self.hf_id or "", self.hub_revision(revision), ("imgs.zip",))
        return self.load_local(root, split)


class Slake(_SlakeRelease):
    name = "slake"
    version = "2"
    """2: a closed question that is not yes/no (61 of 416 in test: "Which organ is abnormal,
    heart or lung?") is asked with the options it lists (``closed_candidates``); version 1
    asked it for yes or no, so every answer to it was unparseable under ``medlens``."""
    scoring_rule = (
        "Closed and open accuracy over the English test split, as the SLAKE paper reports; "
        "MedEvalKit scores open answers by exact match and lmms-eval by normalised exact match."
    )

    def load_local(self, root: Path, split: str) -> list[Sample]:
        boxes: dict[str, list[dict[str, Any]]] = {}
        samples = []
        for row in self.english_rows(root, split):
            folder = str(row["img_name"]).split("/")[0]
            if folder not in boxes:
                boxes[folder] = read_boxes(root / "imgs" / folder)
            samples.append(self.from_row(row, split, root / "imgs", boxes[folder]))
        return samples

    def from_row(
        self,
        row: Mapping[str, Any],
        split: str,
        image_root: Path,
        boxes: list[dict[str, Any]] | None = None,
    ) -> Sample:
        """One row of the original split JSON → Sample (also the Hub repository's rows)."""
        answer_type = str(row["answer_type"]).strip().upper()
        question = str(row["question"])
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
            images=(str(image_root / str(row["img_name"])),),
            metadata={
                "image_id": row["img_name"],
                "answer_type": answer_type,
                "content_type": row.get("content_type", ""),
                "question_type": row.get("content_type", ""),
                "base_type": row.get("base_type", ""),
                "modality": row.get("modality", ""),
                "organ": row.get("location", ""),
                "qid": row.get("qid"),
                "boxes": boxes or [],
            },
        )


class SlakeGrounding(_SlakeRelease):
    name = "slake-grounding"
    scoring_rule = (
        "Box IoU against the detection.json box of the named label; a hit is IoU >= 0.5 "
        "(PASCAL VOC), summarised as accuracy@0.5, mean IoU and AP50."
    )

    def load_local(self, root: Path, split: str) -> list[Sample]:
        folders = sorted(
            {str(r["img_name"]).split("/")[0] for r in self.english_rows(root, split)},
            key=lambda f: int(f.removeprefix("xmlab")) if f[5:].isdigit() else 0,
        )
        samples = []
        for folder in folders:
            image = str(root / "imgs" / folder / "source.jpg")
            for i, box in enumerate(read_boxes(root / "imgs" / folder)):
                samples.append(
                    Sample(
                        id=f"{folder}-{i}",
                        benchmark=self.name,
                        split=split,
                        question=GROUNDING_PROMPT.format(label=box["label"]),
                        answers=(str(box["label"]),),
                        kind="grounding",
                        images=(image,),
                        metadata={
                            "image_id": f"{folder}/source.jpg",
                            "label": box["label"],
                            "boxes": [box],
                        },
                    )
                )
        return samples
