"""MedXpertQA, multimodal subset (Zuo et al., ICML 2025, arXiv 2501.18362): expert-level
five-option questions with images and clinical tables. MIT licence.

Layout of ``TsinghuaC3I/MedXpertQA`` (the original release): ``MM/test.jsonl`` and
``MM/dev.jsonl`` with ``id, question, options{A..E}, label, images[], medical_task,
body_system, question_type``; image files come in ``images.zip`` (``images/<name>``).

>>> from medlens.bench.benchmarks import get_benchmark
>>> row = {"id": "MM-1", "question": "What is the most likely diagnosis?", "label": "C",
...        "options": {"A": "Gout", "B": "Sarcoidosis", "C": "Osteosarcoma", "D": "Rickets",
...                    "E": "Scurvy"},
...        "images": ["MM-1-a.jpeg"], "question_type": "Reasoning"}
>>> sample = get_benchmark("medxpertqa-mm").from_row(row, "test", Path("images"))
>>> sample.kind, sample.answers, sample.images, sample.metadata["question_type"]
('choice', ('Osteosarcoma',), ('images/MM-1-a.jpeg',), 'Reasoning')
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medlens.bench.benchmark import Benchmark
from medlens.bench.benchmarks._common import hub_snapshot
from medlens.bench.samples import Sample
from medlens.errors import DataError


class MedXpertQAMM(Benchmark):
    name = "medxpertqa-mm"
    hf_id = "TsinghuaC3I/MedXpertQA"
    hf_revision = "f4e6fe7e5a9e13d6c97d7aa2b91cdd8b80c9cc61"
    splits = ("test", "dev")
    license = "MIT"
    citation = "Zuo Y, Qu S, Li Y, et al. MedXpertQA: Benchmarking Expert-Level Medical Reasoning and Understanding. ICML 2025."
    homepage = "https://github.com/TsinghuaC3I/MedXpertQA"
    scoring_rule = (
        "Accuracy over the five options, overall and by reasoning/understanding (the paper)."
    )
    local_dirname = "MedXpertQA"
    local_marker = "MM/test.jsonl"
    deidentified_release = True
    """Images of published exam questions and textbook cases (Zuo et al., ICML 2025):
    published material, not patient records."""

    def load_local(self, root: Path, split: str) -> list[Sample]:
        path = root / "MM" / f"{split}.jsonl"
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError as exc:
            raise DataError(f"{path} is missing; is this the MedXpertQA release?") from exc
        return [
            self.from_row(json.loads(line), split, root / "images")
            for line in lines
            if line.strip()
        ]

    def load_hub(self, split: str, *, revision: str | None = None) -> list[Sample]:
        root = hub_snapshot(self.hf_id or "", self.hub_revision(revision), ("images.zip",))
        return self.load_local(root, split)

    def from_row(self, row: Mapping[str, Any], split: str, image_dir: Path) -> Sample:
        options: Mapping[str, str] = row["options"]
        letters = sorted(options)
        label = str(row["label"]).strip().upper()
        return Sample(
            id=str(row["id"]),
            benchmark=self.name,
            split=split,
            question=str(row["question"]),
            answers=(str(options[label]),),
            kind="choice",
            images=tuple(str(image_dir / name) for name in row.get("images", [])),
            candidates=tuple(str(options[k]) for k in letters),
            metadata={
                "label": label,
                "medical_task": row.get("medical_task", ""),
                "body_system": row.get("body_system", ""),
                "question_type": row.get("question_type", ""),
                "image_id": "|".join(row.get("images", [])),
            },
        )
