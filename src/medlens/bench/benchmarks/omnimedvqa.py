"""OmniMedVQA (Hu et al., CVPR 2024): multiple-choice VQA over 12 modalities from 73 public
datasets. Only the "Open-access" part may be redistributed; each source dataset keeps its
licence.

Original layout (OpenGVLab release): ``QA_information/Open-access/<dataset>.json`` (lists of
``question_id, question_type, question, gt_answer, option_A..D, image_path,
modality_type, dataset``) and ``Images/...`` under the same root (``image_path`` is relative to
it).

>>> from medlens.bench.benchmarks import get_benchmark
>>> row = {"question_id": "ACRIMA_0", "question": "Is this eye healthy?", "gt_answer": "Glaucoma",
...        "option_A": "Healthy", "option_B": "Glaucoma", "option_C": "",
...        "image_path": "Images/ACRIMA/Im001.png", "modality_type": "Fundus Photography"}
>>> sample = get_benchmark("omnimedvqa").from_row(row, "test", Path("OmniMedVQA"))
>>> sample.kind, sample.candidates, sample.answers, sample.images
('choice', ('Healthy', 'Glaucoma'), ('Glaucoma',), ('OmniMedVQA/Images/ACRIMA/Im001.png',))
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medlens.bench.benchmark import Benchmark
from medlens.bench.benchmarks._common import read_json
from medlens.bench.samples import Sample


class OmniMedVQA(Benchmark):
    name = "omnimedvqa"
    hf_id = None
    license = "Open-access part; each of the 73 source datasets keeps its own licence"
    citation = "Hu Y, Li T, Lu Q, et al. OmniMedVQA: A New Large-Scale Comprehensive Evaluation Benchmark for Medical LVLM. CVPR 2024."
    homepage = "https://github.com/OpenGVLab/Multi-Modality-Arena"
    scoring_rule = (
        "Multiple-choice accuracy, per modality and question type (the OmniMedVQA paper)."
    )
    local_dirname = "OmniMedVQA"
    local_marker = "QA_information/Open-access"
    deidentified_release = True
    """Built from 73 public classification datasets, each de-identified by its
    publisher (Hu et al., CVPR 2024)."""

    def load_local(self, root: Path, split: str) -> list[Sample]:
        samples: list[Sample] = []
        for path in sorted((root / "QA_information" / "Open-access").glob("*.json")):
            samples.extend(self.from_row(row, split, root) for row in read_json(path))
        return samples

    def from_row(self, row: Mapping[str, Any], split: str, root: Path) -> Sample:
        candidates = tuple(
            str(row[f"option_{c}"]) for c in "ABCDEF" if row.get(f"option_{c}") not in (None, "")
        )
        return Sample(
            id=str(row["question_id"]),
            benchmark=self.name,
            split=split,
            question=str(row["question"]),
            answers=(str(row["gt_answer"]),),
            kind="choice",
            images=(str(root / str(row["image_path"])),),
            candidates=candidates,
            metadata={
                "image_id": row["image_path"],
                "question_type": row.get("question_type", ""),
                "modality": row.get("modality_type", ""),
                "source_dataset": row.get("dataset", ""),
            },
        )
