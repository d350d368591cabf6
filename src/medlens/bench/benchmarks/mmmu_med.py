"""MMMU, Health & Medicine discipline (Yue et al., CVPR 2024): college-exam questions with
images in five subjects. Apache-2.0. The test answers are hidden, so medlens scores the
validation split (150 questions) as the MMMU leaderboard's "val" column does.

MMMU is distributed only as Hugging Face parquet (one configuration per subject); a local
copy is a clone of that repository (``<Subject>/validation-*.parquet``) and goes through the
same row mapping. ``options`` is a Python-literal list; ``answer`` the option letter.

>>> from medlens.bench.benchmarks import get_benchmark
>>> row = {"id": "validation_Clinical_Medicine_1", "question": "What does <image 1> show?",
...        "options": "['Pneumonia', 'Edema', 'Effusion']", "answer": "B",
...        "question_type": "multiple-choice", "image_1": "ct.png", "image_2": None}
>>> [sample] = get_benchmark("mmmu-med").from_hub_row(row, "validation", 0)
>>> sample.kind, sample.candidates, sample.answers, sample.images
('choice', ('Pneumonia', 'Edema', 'Effusion'), ('Edema',), ('ct.png',))
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medlens.bench.benchmark import Benchmark
from medlens.bench.benchmarks._common import image_value
from medlens.bench.metrics.choice import LETTERS
from medlens.bench.samples import Sample
from medlens.errors import require

SUBJECTS = (
    "Basic_Medical_Science",
    "Clinical_Medicine",
    "Diagnostics_and_Laboratory_Medicine",
    "Pharmacy",
    "Public_Health",
)


class MMMUMed(Benchmark):
    name = "mmmu-med"
    hf_id = "MMMU/MMMU"
    splits = ("validation", "dev")
    default_split = "validation"
    license = "Apache-2.0"
    citation = "Yue X, Ni Y, Zhang K, et al. MMMU: A Massive Multi-discipline Multimodal Understanding and Reasoning Benchmark. CVPR 2024."
    homepage = "https://mmmu-benchmark.github.io/"
    scoring_rule = (
        "Micro-averaged accuracy; MMMU's own parser maps an unreadable answer to a random "
        "option (mmmu/utils/eval_utils.py parse_multi_choice_response), medlens does not."
    )
    local_dirname = "MMMU"
    local_marker = "Clinical_Medicine"
    deidentified_release = True
    """Images from textbooks, exams and public web sources: published material, not
    patient records."""

    def _rows(self, source: str, subject: str, split: str, revision: str | None) -> Any:
        datasets = require("datasets", "bench", f"Loading {self.name}")
        if Path(source).is_dir():
            files = sorted(str(p) for p in (Path(source) / subject).glob(f"{split}-*.parquet"))
            return datasets.load_dataset("parquet", data_files=files, split="train")
        return datasets.load_dataset(source, subject, split=split, revision=revision)

    def load_local(self, root: Path, split: str) -> list[Sample]:
        return self._load(str(root), split, None)

    def load_hub(self, split: str, *, revision: str | None = None) -> list[Sample]:
        return self._load(self.hf_id or "", split, self.hub_revision(revision))

    def _load(self, source: str, split: str, revision: str | None) -> list[Sample]:
        samples = []
        for subject in SUBJECTS:
            for index, row in enumerate(self._rows(source, subject, split, revision)):
                samples.extend(self.from_hub_row({**row, "subject": subject}, split, index))
        return samples

    def from_hub_row(self, row: Mapping[str, Any], split: str, index: int) -> list[Sample]:
        options = ast.literal_eval(str(row.get("options") or "[]"))
        answer = str(row["answer"]).strip()
        is_choice = (
            str(row.get("question_type", "multiple-choice")) == "multiple-choice" and options
        )
        if is_choice and answer in LETTERS[: len(options)]:
            answer = str(options[LETTERS.index(answer)])
        images = tuple(
            image_value(row[f"image_{i}"]) for i in range(1, 8) if row.get(f"image_{i}") is not None
        )
        return [
            Sample(
                id=str(row["id"]),
                benchmark=self.name,
                split=split,
                question=str(row["question"]),
                answers=(answer,),
                kind="choice" if is_choice else "open",
                images=images,
                candidates=tuple(str(o) for o in options) if is_choice else (),
                metadata={
                    "subject": row.get("subject", ""),
                    "question_type": row.get("subfield", ""),
                    "img_type": row.get("img_type", ""),
                    "difficulty": row.get("topic_difficulty", ""),
                },
            )
        ]
