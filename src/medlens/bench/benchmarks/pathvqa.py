"""PathVQA (He et al., arXiv 2003.10286, 2020): pathology QA generated from textbook and PEIR
captions. The QA are MIT-licensed; the image copyright stays with the publishers and PEIR.

Original release layout (Google Drive link of ``UCSD-AI4H/PathVQA``): ``pvqa/qas/<split>/
<split>_qa.pkl`` (a list of ``{"image", "question", "answer"}``) and ``pvqa/images/<split>/
<image>.jpg``; splits train / val / test. Pickles are read with a loader that accepts only
plain containers, so a tampered file cannot run code. Closed = yes/no answer, as the paper
splits its questions.

>>> from medlens.bench.benchmarks import get_benchmark
>>> row = {"image": "test_0001", "question": "is this a granuloma?", "answer": "yes"}
>>> [sample] = get_benchmark("pathvqa").from_hub_row(row, "test", 3)
>>> sample.id, sample.kind, sample.answers, sample.metadata["image_id"]
('test-3', 'closed', ('yes',), 'test_0001')
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medlens.bench.benchmark import Benchmark
from medlens.bench.benchmarks._common import closed_by_answer, image_value, read_plain_pickle
from medlens.bench.samples import Sample


class PathVQA(Benchmark):
    name = "pathvqa"
    hf_id = "flaviagiammarino/path-vqa"
    splits = ("test", "validation", "train")
    license = "QA: MIT; images: copyright of the textbook publishers and PEIR (not redistributable)"
    citation = "He X, Zhang Y, Mou L, Xing E, Xie P. PathVQA: 30000+ Questions for Medical VQA. arXiv 2003.10286."
    homepage = "https://github.com/UCSD-AI4H/PathVQA"
    scoring_rule = (
        "Yes/no accuracy and open-answer scores (the paper's BLEU/F1/exact match; LLaVA-Med "
        "reports open recall, llava/eval/run_eval.py @ ad758b6)."
    )
    local_dirname = "pvqa"
    local_marker = "qas/test/test_qa.pkl"
    deidentified_release = True
    """Figures of pathology textbooks and the PEIR digital library: published teaching
    images, not patient records."""

    def load_local(self, root: Path, split: str) -> list[Sample]:
        folder = "val" if split == "validation" else split
        rows = read_plain_pickle(root / "qas" / folder / f"{folder}_qa.pkl")
        image_dir = root / "images" / folder
        return [
            self.make(row, split, i, str(image_dir / f"{row['image']}.jpg"))
            for i, row in enumerate(rows)
        ]

    def from_hub_row(self, row: Mapping[str, Any], split: str, index: int) -> list[Sample]:
        return [self.make(row, split, index, image_value(row["image"]))]

    def make(self, row: Mapping[str, Any], split: str, index: int, image: str | bytes) -> Sample:
        answer = str(row["answer"])
        closed = closed_by_answer(answer)
        image_id = row.get("image") if isinstance(row.get("image"), str) else None
        return Sample(
            id=f"{split}-{index}",
            benchmark=self.name,
            split=split,
            question=str(row["question"]),
            answers=(answer,),
            kind="closed" if closed else "open",
            images=(image,),
            metadata={"answer_type": "CLOSED" if closed else "OPEN", "image_id": image_id or ""},
        )
