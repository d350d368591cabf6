"""MediConfusion (Sepehri et al., ICLR 2025, arXiv 2409.15477): 176 pairs of ROCO radiology
images that share a question and two options but have opposite answers. MIT (code and
annotations); images come from ROCO under their sources' terms.

Each pair becomes two samples with ``metadata["pair_id"]``; the paper's headline is *set
accuracy* (both questions of a pair right) and *confusion* (same option for both images),
which ``pair_scores`` computes from per-sample results.

Layout read here: ``dataset.json``, a list of pairs with ``id, question, option_A, option_B,
im_1, im_2, answer_1, answer_2`` (answers are option letters) and an ``images/`` folder, as the
release's download script produces. The field names are this loader's documented contract;
check them against the release you have.

A pair becomes two questions; a model that picks A for both images is confused:

>>> from medlens.bench.benchmarks import get_benchmark
>>> mediconfusion = get_benchmark("mediconfusion")
>>> pair = {"id": 5, "question": "Which is true?", "option_A": "There is a fracture",
...         "option_B": "There is no fracture", "im_1": "a.jpg", "im_2": "b.jpg",
...         "answer_1": "A", "answer_2": "B"}
>>> first, second = mediconfusion.from_pair(pair, "test", Path("images"))
>>> first.id, first.answers, second.id, second.answers
('5-1', ('There is a fracture',), '5-2', ('There is no fracture',))
>>> mediconfusion.corpus_metrics([first, second], ["A", "A"], [True, False])
{'set_accuracy': 0.0, 'confusion': 1.0, 'pairs': 1.0, 'unanswered_pairs': 0.0}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from medlens.bench.benchmark import Benchmark
from medlens.bench.benchmarks._common import read_json
from medlens.bench.samples import Sample


class MediConfusion(Benchmark):
    name = "mediconfusion"
    hf_id = None  # shahab7899/MediConfusion exists, but its row schema is not verified here
    license = "MIT (annotations); images from ROCO keep their sources' terms"
    citation = "Sepehri MS, Fabian Z, Soltanolkotabi M, Soltanolkotabi M. MediConfusion. ICLR 2025."
    homepage = "https://github.com/MShahabSepehri/MediConfusion"
    scoring_rule = "Set accuracy (both images of a pair right) and confusion (same option twice)."
    local_dirname = "MediConfusion"
    local_marker = "dataset.json"
    deidentified_release = True
    """ROCO images, i.e. figures of PubMed Central open-access articles, de-identified
    by their authors and journals before publication."""

    def load_local(self, root: Path, split: str) -> list[Sample]:
        return [
            s
            for pair in read_json(root / "dataset.json")
            for s in self.from_pair(pair, split, root / "images")
        ]

    def from_pair(self, pair: Mapping[str, Any], split: str, image_dir: Path) -> list[Sample]:
        options = (str(pair["option_A"]), str(pair["option_B"]))
        samples = []
        for side in (1, 2):
            letter = str(pair[f"answer_{side}"]).strip().upper()
            samples.append(
                Sample(
                    id=f"{pair['id']}-{side}",
                    benchmark=self.name,
                    split=split,
                    question=str(pair["question"]),
                    answers=(options["AB".index(letter)],),
                    kind="choice",
                    images=(str(image_dir / str(pair[f"im_{side}"])),),
                    candidates=options,
                    metadata={
                        "pair_id": str(pair["id"]),
                        "image_id": pair[f"im_{side}"],
                        "side": side,
                    },
                )
            )
        return samples

    def corpus_metrics(
        self, samples: Sequence[Sample], extracted: Sequence[str | None], correct: Sequence[bool]
    ) -> dict[str, float]:
        """Pair scores of every protocol's corpus (``pair_scores``)."""
        if not any("pair_id" in s.metadata for s in samples):
            return {}
        return pair_scores(samples, extracted, correct)


def pair_scores(
    samples: Sequence[Sample], chosen: Sequence[str | None], correct: Sequence[bool]
) -> dict[str, float]:
    """Set accuracy and confusion over complete pairs (``medlens.trust.pairs``): ``chosen`` is
    the option each sample's answer picked (None when unparseable), ``correct`` whether it
    was right."""
    from medlens.trust.pairs import pair_accuracy

    summary = pair_accuracy(
        [str(s.metadata["pair_id"]) for s in samples],
        [
            "correct" if ok else ("wrong" if pick is not None else "unparseable")
            for ok, pick in zip(correct, chosen)
        ],
        chosen,
    )
    return {
        "set_accuracy": summary.pair_accuracy,
        "confusion": summary.confusion,
        "pairs": float(summary.pairs),
        "unanswered_pairs": float(summary.unanswered_pairs),
    }
