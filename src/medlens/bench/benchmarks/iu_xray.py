"""IU X-ray / Open-i chest X-ray reports (Demner-Fushman et al., JAMIA 2016): frontal and
lateral images with findings and impression. Licence CC BY-NC-ND 4.0: non-commercial, no
derivatives; medlens does not ship or convert it.

Layout read here is the R2Gen release (Chen et al., EMNLP 2020) that report-generation papers
use: ``annotation.json`` = ``{"train"|"val"|"test": [{"id", "report", "image_path": [...]}]}``
and ``images/<study>/<n>.png``. ``report`` is the findings section (R2Gen's choice). Hub:
``dz-osamu/IU-Xray`` rows are not pinned here; pass ``--data-dir`` for reproducible numbers.

>>> from medlens.bench.benchmarks import get_benchmark
>>> entry = {"id": "CXR1_1_IM-0001", "report": "The heart is normal in size. The lungs are clear.",
...          "image_path": ["CXR1_1_IM-0001/0.png", "CXR1_1_IM-0001/1.png"]}
>>> study = get_benchmark("iu-xray").from_entry(entry, "test", Path("images"))
>>> study.kind, study.answers
('report', ('The heart is normal in size. The lungs are clear.',))
>>> study.images
('images/CXR1_1_IM-0001/0.png', 'images/CXR1_1_IM-0001/1.png')
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medlens.bench.benchmark import Benchmark
from medlens.bench.benchmarks._common import read_json
from medlens.bench.samples import Sample

SPLITS = {"test": "test", "validation": "val", "train": "train"}
PROMPT = "Write the findings section of the radiology report for this chest X-ray."


class IUXray(Benchmark):
    name = "iu-xray"
    splits = ("test", "validation", "train")
    license = "CC BY-NC-ND 4.0 (non-commercial, no derivatives)"
    citation = "Demner-Fushman D, Kohli MD, Rosenman MB, et al. Preparing a collection of radiology examinations for distribution and retrieval. JAMIA 23(2), 2016."
    homepage = "https://openi.nlm.nih.gov/faq#collection"
    scoring_rule = (
        "BLEU-1..4, METEOR, ROUGE-L (R2Gen, Chen et al. 2020) and CIDEr on the findings; "
        "clinical efficacy (CheXbert/RadGraph F1) where those models are available."
    )
    local_dirname = "iu_xray"
    local_marker = "annotation.json"
    deidentified_release = True
    """Open-i images and reports were de-identified by the NLM before release (DICOM headers
    removed, PHI in reports replaced by "XXXX"; Demner-Fushman et al., JAMIA 2016)."""

    def load_local(self, root: Path, split: str) -> list[Sample]:
        entries = read_json(root / "annotation.json")[SPLITS[split]]
        return [self.from_entry(e, split, root / "images") for e in entries]

    def from_entry(self, entry: Mapping[str, Any], split: str, image_dir: Path) -> Sample:
        return Sample(
            id=str(entry["id"]),
            benchmark=self.name,
            split=split,
            question=PROMPT,
            answers=(str(entry["report"]).strip(),),
            kind="report",
            images=tuple(str(image_dir / p) for p in entry["image_path"]),
            metadata={"image_id": str(entry["id"])},
        )
