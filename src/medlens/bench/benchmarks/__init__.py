"""One file per benchmark, registered by name in ``BENCHMARKS``.

Registration is lazy (``"module:Class"`` targets), so listing benchmarks imports nothing
heavy; ``get_benchmark(name)`` imports the file and returns an instance.
"""

from __future__ import annotations

from medlens.bench.benchmark import BENCHMARKS, Benchmark

_FILES = {
    "vqa-rad": "vqa_rad:VQARad",
    "slake": "slake:Slake",
    "slake-grounding": "slake:SlakeGrounding",
    "pathvqa": "pathvqa:PathVQA",
    "pmc-vqa": "pmc_vqa:PMCVQA",
    "omnimedvqa": "omnimedvqa:OmniMedVQA",
    "mmmu-med": "mmmu_med:MMMUMed",
    "medxpertqa-mm": "medxpertqa:MedXpertQAMM",
    "mediconfusion": "mediconfusion:MediConfusion",
    "iu-xray": "iu_xray:IUXray",
}
BENCHMARKS.register_files(__name__, _FILES)


def get_benchmark(name: str) -> Benchmark:
    """The benchmark registered as ``name`` ("did you mean ..." for unknown names), or the
    study list a stored run names (``studies-<hash>``, ``medlens eval --studies``)."""
    from medlens.bench.benchmarks.studies import StudyList, is_study_list

    if is_study_list(name):
        return StudyList.stored(name)
    return BENCHMARKS.get(name)()


def benchmark_names() -> list[str]:
    return BENCHMARKS.names()


__all__ = ["BENCHMARKS", "benchmark_names", "get_benchmark"]
