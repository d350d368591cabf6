"""Each loader on a small fixture in its original layout, Hub row mapping on rows built like
the Hub's, and VQA-RAD / SLAKE on the real data of ../shared/data."""

from __future__ import annotations

import io
import pickle
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from medlens.bench.benchmarks import benchmark_names, get_benchmark
from medlens.bench.benchmarks.mmmu_med import MMMUMed
from medlens.bench.benchmarks.pathvqa import PathVQA
from medlens.bench.benchmarks.vqa_rad import VQARad, exclude_test_leakage
from medlens.bench.quality import check_samples
from medlens.errors import ConfigError, DataError, UnknownNameError

FIXTURES = Path(__file__).parent / "fixtures"


def test_registry_lists_required_benchmarks_and_suggests_names() -> None:
    required = {
        "vqa-rad",
        "slake",
        "slake-grounding",
        "pathvqa",
        "pmc-vqa",
        "omnimedvqa",
        "mmmu-med",
        "medxpertqa-mm",
        "mediconfusion",
        "iu-xray",
    }
    assert required <= set(benchmark_names())
    for name in required:
        bench = get_benchmark(name)
        assert bench.name == name and bench.license and bench.scoring_rule and bench.citation
    with pytest.raises(UnknownNameError, match="Did you mean 'pathvqa'"):
        get_benchmark("path-vqa")


def test_pathvqa_fixture() -> None:
    samples = get_benchmark("pathvqa").load("test", FIXTURES)
    assert [s.kind for s in samples] == ["closed", "open"]
    assert samples[1].answer == "fibrosis"
    assert all(Path(str(s.images[0])).exists() for s in samples)
    assert check_samples(samples) == []


def test_pathvqa_pickle_loader_refuses_code(tmp_path: Path) -> None:
    qas = tmp_path / "qas" / "test"
    qas.mkdir(parents=True)
    with open(qas / "test_qa.pkl", "wb") as handle:
        pickle.dump([{"image": "x", "question": "q", "answer": Path("a")}], handle)
    with pytest.raises(DataError, match="refusing to unpickle"):
        get_benchmark("pathvqa").load("test", tmp_path)


def test_pmc_vqa_fixture() -> None:
    samples = get_benchmark("pmc-vqa").load("test", FIXTURES)
    assert samples[0].candidates == ("CT", "MRI", "Ultrasound", "PET")
    assert samples[1].answer == "Spleen" and samples[1].kind == "choice"
    assert Path(str(samples[0].images[0])).exists()


def test_omnimedvqa_fixture() -> None:
    (sample,) = get_benchmark("omnimedvqa").load("test", FIXTURES)
    assert sample.answer == "X-ray" and sample.candidates[1] == "X-ray"
    assert sample.metadata["modality"] == "X-Ray"
    assert sample.metadata["question_type"] == "Modality Recognition"
    assert Path(str(sample.images[0])).exists()


def test_medxpertqa_fixture() -> None:
    (sample,) = get_benchmark("medxpertqa-mm").load("test", FIXTURES)
    assert sample.answer == "Pseudogout" and len(sample.candidates) == 5
    assert sample.metadata["question_type"] == "Reasoning"
    assert Path(str(sample.images[0])).exists()


def test_mediconfusion_fixture_pairs() -> None:
    samples = get_benchmark("mediconfusion").load("test", FIXTURES)
    assert [s.answer for s in samples] == ["Pneumothorax", "Pleural effusion"]
    assert {s.metadata["pair_id"] for s in samples} == {"0"}
    assert samples[0].candidates == samples[1].candidates


def test_iu_xray_fixture() -> None:
    (sample,) = get_benchmark("iu-xray").load("test", FIXTURES)
    assert sample.kind == "report" and len(sample.images) == 2
    assert sample.answer.startswith("The heart is normal")


def test_wrong_folder_and_split_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not hold the vqa-rad release"):
        get_benchmark("vqa-rad").load("test", tmp_path)
    with pytest.raises(ConfigError, match="no split 'dev'"):
        get_benchmark("vqa-rad").load("dev", tmp_path)


def _png() -> Image.Image:
    return Image.new("RGB", (4, 4), "red")


def test_hub_rows_map_like_the_hub_dataset() -> None:
    """Rows shaped as ``datasets`` yields them (decoded PIL images, Hub column names)."""
    (closed,) = VQARad().from_hub_row(
        {"image": _png(), "question": "Is it?", "answer": "Yes"}, "test", 0
    )
    (opened,) = VQARad().from_hub_row(
        {"image": {"bytes": b"\x89PNG", "path": None}, "question": "Where?", "answer": "left"},
        "test",
        1,
    )
    assert (closed.kind, opened.kind) == ("closed", "open")
    assert Image.open(io.BytesIO(closed.images[0])).size == (4, 4)  # type: ignore[arg-type]
    assert opened.images == (b"\x89PNG",)
    (path_row,) = PathVQA().from_hub_row(
        {"image": _png(), "question": "q", "answer": "no"}, "test", 0
    )
    assert path_row.kind == "closed"
    row = {
        "id": "validation_Clinical_Medicine_1",
        "question": "<image 1> What is shown?",
        "options": "['Pneumonia', 'Edema', 'Normal']",
        "answer": "B",
        "image_1": _png(),
        "image_2": None,
        "img_type": "['X-Ray']",
        "question_type": "multiple-choice",
        "subfield": "Pulmonary",
        "topic_difficulty": "Easy",
        "subject": "Clinical_Medicine",
    }
    (mmmu,) = MMMUMed().from_hub_row(row, "validation", 0)
    assert (mmmu.kind, mmmu.answer, len(mmmu.images)) == ("choice", "Edema", 1)
    assert mmmu.candidates == ("Pneumonia", "Edema", "Normal")
    assert VQARad.hf_revision and len(VQARad.hf_revision) == 40


def test_hub_loading_needs_the_bench_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from medlens.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "datasets", None)
    monkeypatch.delenv("MEDLENS_DATA", raising=False)
    with pytest.raises(MissingDependencyError, match=r"medlens\[bench\]"):
        get_benchmark("vqa-rad").load("test")


@pytest.mark.data
def test_vqa_rad_on_shared_data(shared_data: Path) -> None:
    bench = get_benchmark("vqa-rad")
    test = bench.load("test", shared_data)
    assert len(test) == 451
    assert Counter(s.kind for s in test) == {"closed": 272, "open": 179}
    assert len({s.metadata["image_id"] for s in test}) == 203
    first = test[0]
    assert {"phrase_type", "question_type", "image_organ", "image_id"} <= set(first.metadata)
    assert all(Path(str(s.images[0])).exists() for s in test)
    train = bench.load("train", shared_data / "vqa-rad")
    assert len(train) == 3064
    assert sum(s.metadata["answer_type"] == "CLOSED" for s in train) == 1823  # incl. 2 "CLOSED "
    issues = {i.kind: i for i in bench.quality(test, train=train)}
    assert issues["image-leakage"].count == 203
    assert issues["frame-leakage"].count == 284
    # PROVENANCE counts 14 exact pairs; normalising case/punctuation finds 2 more
    assert issues["question-leakage"].count >= 14
    train_issues = {i.kind: i for i in bench.quality(train)}
    assert train_issues["duplicate-question"].count > 0
    assert train_issues["conflicting-answers"].count > 0
    safe = exclude_test_leakage(train, test)
    assert not {s.metadata["image_id"] for s in safe} & {s.metadata["image_id"] for s in test}
    no_copies = exclude_test_leakage(train, test, mode="questions")
    assert len(safe) < len(no_copies) < len(train)
    assert "frame-leakage" not in {i.kind for i in bench.quality(test, train=no_copies)}
    assert "question-leakage" not in {i.kind for i in bench.quality(test, train=no_copies)}


@pytest.mark.data
def test_slake_on_shared_data(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDLENS_DATA", str(shared_data))
    bench = get_benchmark("slake")
    test = bench.load("test")
    assert len(test) == 1061
    assert Counter(s.kind for s in test) == {"closed": 416, "open": 645}
    assert sum(s.answer == "None" for s in test) == 9
    assert Counter(s.metadata["modality"] for s in test) == {"CT": 472, "X-Ray": 361, "MRI": 228}
    # English splits are disjoint; one test gold names no option its question lists
    (unanswerable,) = bench.quality(test, train=bench.load("train"))
    assert (unanswerable.kind, unanswerable.examples) == ("closed-answer-not-offered", ("12130",))
    train_issues = {i.kind: i.count for i in bench.quality(bench.load("train"))}
    assert train_issues == {
        "empty-answer": 1,
        "duplicate-question": 7,
        "closed-answer-not-offered": 3,
    }
    assert len(bench.load("validation")) == 1053
    boxed = [s for s in test if s.metadata["boxes"]]
    x0, y0, x1, y1 = boxed[0].metadata["boxes"][0]["box"]
    assert x1 > x0 and y1 > y0
    grounding = get_benchmark("slake-grounding").load("test")
    assert grounding and all(
        s.kind == "grounding" and len(s.metadata["boxes"]) == 1 for s in grounding
    )
    width, height = Image.open(str(grounding[0].images[0])).size
    assert all(
        0 <= b["box"][0] < b["box"][2] <= width and 0 <= b["box"][1] < b["box"][3] <= height
        for b in grounding[0].metadata["boxes"]
    )


def test_hub_loads_record_an_exact_revision(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every Hub load is pinned to a commit, and a run records which one."""
    from medlens.bench.benchmarks import get_benchmark
    from medlens.errors import DataError

    pathvqa = get_benchmark("pathvqa")
    assert pathvqa.pin("0123abc") == "0123abc"
    monkeypatch.setattr(type(pathvqa), "load_hub", lambda self, split, revision=None: [])
    loaded = pathvqa.load("test", revision="0123abc")
    assert (loaded.source, loaded.revision, len(loaded)) == ("hub", "0123abc", 0)
    vqa_rad = get_benchmark("vqa-rad")
    assert vqa_rad.pin() == vqa_rad.hf_revision
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="no pinned revision of flaviagiammarino/path-vqa"):
        get_benchmark("pathvqa").pin()


@pytest.mark.data
def test_a_local_load_says_where_its_samples_came_from(shared_data: Path) -> None:
    from medlens.bench.benchmarks import get_benchmark

    loaded = get_benchmark("vqa-rad").load("test", shared_data)
    assert (loaded.split, loaded.source, loaded.revision) == ("test", "local", None)
    assert len(loaded) == 451 and all(s.split == "test" for s in loaded)
