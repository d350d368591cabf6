"""PMC-VQA (Zhang et al., arXiv 2305.10415, 2023): multiple-choice questions on PubMed Central
figures, CC BY-SA 4.0 (the figures follow their articles' licences).

Original layout (``xmcmic/PMC-VQA`` on the Hub, the GitHub README of xiaoman-zhang/PMC-VQA):
``test_clean.csv`` (the 2,000 manually checked test questions most papers report) or
``train_2.csv`` with columns ``Figure_path, Question, Answer, Choice A..D, Answer_label``;
choices read ``"A:CT"`` and lose their ``"A:"`` prefix here. Figures sit in ``images/``
(``figures/`` in older releases).

>>> from medlens.bench.benchmarks import get_benchmark
>>> row = {"Figure_path": "PMC1234_F1.jpg", "Question": "What imaging modality was used?",
...        "Answer": "CT", "Choice A": "A:MRI", "Choice B": "B:CT", "Choice C": " C:X-ray",
...        "Choice D": "D:Ultrasound", "Answer_label": "B"}
>>> sample = get_benchmark("pmc-vqa").from_row(row, "test", 0, Path("images"))
>>> sample.id, sample.kind, sample.candidates, sample.answers
('test-0', 'choice', ('MRI', 'CT', 'X-ray', 'Ultrasound'), ('CT',))
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medlens.bench.benchmark import Benchmark
from medlens.bench.samples import Sample
from medlens.errors import DataError

SPLIT_FILES = {"test": "test_clean.csv", "train": "train_2.csv"}
_PREFIX = re.compile(r"^\s*[A-D]\s*[:.)]\s*")


class PMCVQA(Benchmark):
    name = "pmc-vqa"
    hf_id = "xmcmic/PMC-VQA"
    splits = ("test", "train")
    license = "CC BY-SA 4.0"
    citation = "Zhang X, Wu C, Zhao Z, et al. PMC-VQA: Visual Instruction Tuning for Medical VQA. arXiv 2305.10415."
    homepage = "https://github.com/xiaoman-zhang/PMC-VQA"
    scoring_rule = "Multiple-choice accuracy over the four options (the PMC-VQA paper)."
    local_dirname = "pmc-vqa"
    local_marker = "test_clean.csv"
    deidentified_release = True
    """Figures of PubMed Central open-access articles, de-identified by their authors
    and journals before publication."""

    def load_local(self, root: Path, split: str) -> list[Sample]:
        path = root / SPLIT_FILES[split]
        if not path.exists():
            raise DataError(f"{path} is missing; PMC-VQA's {split} split is {SPLIT_FILES[split]}")
        image_dir = next(
            (root / d for d in ("images", "figures") if (root / d).is_dir()), root / "images"
        )
        with open(path, encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        return [self.from_row(row, split, i, image_dir) for i, row in enumerate(rows)]

    def from_row(self, row: Mapping[str, Any], split: str, index: int, image_dir: Path) -> Sample:
        """One CSV row → Sample; the Hub copy's rows have the same columns."""
        candidates = tuple(_PREFIX.sub("", str(row[f"Choice {c}"])).strip() for c in "ABCD")
        label = str(row.get("Answer_label", "")).strip().upper()
        answer = (
            candidates["ABCD".index(label)]
            if label in ("A", "B", "C", "D")
            else str(row["Answer"]).strip()
        )
        return Sample(
            id=str(row.get("index") or f"{split}-{index}"),
            benchmark=self.name,
            split=split,
            question=str(row["Question"]).strip(),
            answers=(answer,),
            kind="choice",
            images=(str(image_dir / str(row["Figure_path"])),),
            candidates=candidates,
            metadata={"image_id": row["Figure_path"], "answer_label": label},
        )

    def from_hub_row(self, row: Mapping[str, Any], split: str, index: int) -> list[Sample]:
        return [self.from_row(row, split, index, Path("images"))]
