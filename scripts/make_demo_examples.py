"""Write the real test images ``medlens demo`` shows, with their questions and gold answers.

Chosen by rule, not by how any model answers them: the first English SLAKE test image of
each modality (CT, MRI, X-Ray) with its first closed and first open question, and the first
VQA-RAD test image with its first two questions. Images are shrunk to 256 px on the long side
(JPEG) so the package stays small. Licences: VQA-RAD CC0 1.0; SLAKE CC BY 4.0 (Liu et al.,
ISBI 2021). Usage: ``python scripts/make_demo_examples.py ../shared/data``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from PIL import Image

OUT = Path(__file__).resolve().parents[1] / "src" / "medlens" / "cli" / "demo_examples"
SLAKE = "SLAKE 1.0 English test split (Liu et al., ISBI 2021), CC BY 4.0"
VQA_RAD = "VQA-RAD MEVF test split (Lau et al., Sci Data 2018), CC0 1.0"


def _save(source: Path, name: str) -> str:
    image = Image.open(source).convert("RGB")
    image.thumbnail((256, 256), Image.Resampling.BICUBIC)
    image.save(OUT / name, quality=90)
    return name


def main(data: Path) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    examples = []
    slake = [
        r
        for r in json.loads((data / "slake/Slake1.0/test.json").read_text())
        if r["q_lang"] == "en"
    ]
    for modality in ("CT", "MRI", "X-Ray"):
        image = next(r["img_name"] for r in slake if r["modality"] == modality)
        rows = [r for r in slake if r["img_name"] == image]
        file = _save(data / "slake/Slake1.0/imgs" / image, f"slake-{image.split('/')[0]}.jpg")
        for kind in ("CLOSED", "OPEN"):
            row = next(r for r in rows if r["answer_type"] == kind)
            examples.append(
                {
                    "image": file,
                    "source": f"{SLAKE}: imgs/{image}, qid {row['qid']}",
                    "modality": modality,
                    "question": row["question"],
                    "answer": row["answer"],
                    "kind": kind.lower(),
                }
            )
    rad = json.loads((data / "vqa-rad/data_RAD/testset.json").read_text())
    image = rad[0]["image_name"]
    file = _save(data / "vqa-rad/VQA_RAD Image Folder" / image, f"vqa-rad-{image}")
    for row in [r for r in rad if r["image_name"] == image][:2]:
        examples.append(
            {
                "image": file,
                "source": f"{VQA_RAD}: {image}, qid {row['qid']}",
                "modality": row["image_organ"],
                "question": row["question"],
                "answer": str(row["answer"]),
                "kind": row["answer_type"].strip().lower(),
            }
        )
    (OUT / "examples.json").write_text(json.dumps(examples, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
