"""The model zoo: entries, ``medlens models``, and published figures beside a run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medlens.bench.benchmarks import BENCHMARKS
from medlens.bench.metrics.bootstrap import Estimate
from medlens.bench.models import (
    MODELS,
    ZOO,
    PublishedFigure,
    ZooModel,
    beside_run,
    get_model,
    published,
)
from medlens.bench.protocols import PROTOCOLS
from medlens.cli.main import main
from medlens.errors import UnknownNameError
from medlens.tasks.presets import PRESETS

REQUIRED = {
    "google/medgemma-4b-it",
    "google/medgemma-27b-it",
    "lingshu-medical-mllm/Lingshu-7B",
    "lingshu-medical-mllm/Lingshu-32B",
    "FreedomIntelligence/HuatuoGPT-Vision-7B-hf",
    "microsoft/llava-med-v1.5-mistral-7b",
    "ZJU-AI4H/Hulu-Med-7B",
    "yuxianglai117/Med-R1",
    "JZPeterPan/MedVLM-R1",
    "UbiquantAI/Fleming-VL-8B",
    "Luxuriant16/medrega",
    "Qwen/Qwen2.5-VL-3B-Instruct",
    "Qwen/Qwen2.5-VL-7B-Instruct",
}

TINY = ZooModel(
    "prior",
    "tiny test entry (the prior baseline)",
    "baseline",
    "transformers",
    "none",
    "none",
    "any",
    "medlens",
    "MIT",
    "",
    figures=(
        PublishedFigure("vqa-rad", "test", "accuracy", 0.5, "medlens", "a test table", "this test"),
    ),
)


def test_the_zoo_holds_the_literature_with_consistent_names() -> None:
    assert REQUIRED <= {m.hub_id for m in ZOO}
    for model in ZOO:
        assert model.prompt_preset in PRESETS
        assert model.backend in ("transformers", "trust_remote_code", "vllm-openai", "convert")
        for figure in model.figures:
            assert figure.protocol in PROTOCOLS or (figure.protocol is None and figure.rule)
            assert 0 < figure.value <= 1 and figure.source and figure.seen_in
            assert figure.benchmark in BENCHMARKS
        assert all(len(why) > 40 for why in model.unverified)  # each says why
        assert model.figures or model.unverified, model.hub_id  # or why it has none
    assert get_model("lingshu-medical-mllm/lingshu-7b").name == "Lingshu 7B"  # case-insensitive
    with pytest.raises(UnknownNameError, match="Did you mean .lingshu-medical-mllm/lingshu-7b"):
        get_model("lingshu-medical-mllm/Lingshu-8B")


def test_published_figures_filter_by_benchmark_and_protocol() -> None:
    slake = published("google/medgemma-4b-it", "slake")
    assert [round(f.value, 3) for f in slake] == [0.723]
    assert published("google/medgemma-4b-it", "slake", ["medlens"]) == []
    assert published("/some/local/path", "slake") == []
    # Beyond MedGemma: Lingshu's MedEvalKit-with-judge figure, Hulu-Med's own table.
    (lingshu,) = published("lingshu-medical-mllm/Lingshu-7B", "vqa-rad")
    assert (lingshu.value, lingshu.protocol) == (0.679, "medevalkit-judge")
    assert published("ZJU-AI4H/Hulu-Med-7B", "slake")[0].value == pytest.approx(0.868)


def test_lingshu_32b_carries_its_authors_table_not_the_hulu_med_copy() -> None:
    # The Lingshu authors' table (project page and MedEvalKit README) against the row the
    # Hulu-Med README quotes (76.7, 86.7, 65.5).
    figures = {f.benchmark: f for f in get_model("lingshu-medical-mllm/Lingshu-32B").figures}
    disputed = {b: round(100 * figures[b].value, 1) for b in ("vqa-rad", "slake", "pathvqa")}
    assert disputed == {"vqa-rad": 76.5, "slake": 89.2, "pathvqa": 65.9}
    assert len(figures) == 7  # the table's seven columns, whose mean is its Avg. 66.6
    assert sum(f.value for f in figures.values()) / 7 == pytest.approx(0.666, abs=5e-4)
    assert all("MedEvalKit@9b12e3b" in f.seen_in for f in figures.values())
    assert {f.protocol for b, f in figures.items() if b != "mmmu-med"} == {"medevalkit-judge"}


def test_figures_on_other_rows_than_medlens_scores_are_never_set_beside_a_run() -> None:
    # MedGemma's card scores VQA-RAD on the "balanced split"; MMMU-Med's split is unstated.
    headline = {
        "medgemma-card": {"overall": Estimate(0.52, 0.47, 0.57, 451)},
        "medevalkit-judge": {"overall": Estimate(0.6, 0.55, 0.65, 451)},
    }
    card, medevalkit = beside_run("google/medgemma-27b-it", "vqa-rad", headline)
    assert card["protocol"] is None and card["run_value"] is None
    assert "balanced split" in card["line"] and "this run: not comparable" in card["line"]
    assert medevalkit["protocol"] == "medevalkit-judge"
    assert medevalkit["line"].endswith("· this run 60.0 (same protocol)")
    (mmmu,) = beside_run("lingshu-medical-mllm/Lingshu-7B", "mmmu-med", headline)
    assert mmmu["run_value"] is None and "not comparable" in mmmu["line"]
    (slake,) = published("google/medgemma-27b-it", "slake", ["medgemma-card"])
    assert (slake.value, slake.split) == (0.703, "test (English)")


def test_a_figure_no_protocol_reproduces_is_shown_but_never_set_beside_a_run() -> None:
    headline = {"medevalkit": {"overall": Estimate(0.61, 0.56, 0.65, 451)}}
    (shown,) = beside_run("FreedomIntelligence/HuatuoGPT-Vision-7B-hf", "vqa-rad", headline)
    assert shown["protocol"] is None and shown["run_value"] is None
    assert shown["line"].startswith("published 63.7 accuracy")
    assert "this run: not comparable" in shown["line"] and "61.0" not in shown["line"]
    # A figure under a protocol the run was not scored with is left out.
    assert beside_run("lingshu-medical-mllm/Lingshu-7B", "vqa-rad", headline) == []


def test_medlens_models_lists_and_shows(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert all(m in out for m in REQUIRED)
    assert "NOT CONFIRMED" in out  # Qwen2.5-VL-3B's id was not seen on a Hub page here
    assert main(["models", "google/medgemma-4b-it", "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert entry["prompt_preset"] == "medgemma"
    assert entry["figures"][0]["protocol"] == "medgemma-card"
    assert main(["models", "Luxuriant16/medrega"]) == 0
    out = capsys.readouterr().out
    assert "published figures:" not in out
    assert "not verified, so not recorded:" in out and "no results table" in out
    assert main(["models", "JZPeterPan/MedVLM-R1", "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert "MRI_CT_XRAY_300each" in entry["unverified"][0]
    assert "row 'MedVLM-R1-2B'" in entry["figures"][0]["source"]


@pytest.mark.data
def test_eval_and_report_print_the_published_figure_beside_the_run(
    shared_data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(MODELS._entries, "prior", TINY)
    code = main(
        [
            "eval",
            "vqa-rad",
            "--model",
            "prior",
            "--limit",
            "6",
            "--data-dir",
            str(shared_data),
            "--protocol",
            "medlens",
            "--no-baselines",
            "--store",
            str(tmp_path / "runs.sqlite"),
            "--out",
            str(tmp_path / "report"),
            "--no-progress",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if "published 50.0" in x)
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    (run,) = report["runs"]
    overall = run["results"]["medlens"]["overall"]["value"]
    assert line.endswith(f"· this run {100 * overall:.1f} (same protocol)")
    assert "a test table" in line and "protocol medlens" in line
    assert run["published"][0]["run_value"] == pytest.approx(overall)
    assert "Published figures" in (tmp_path / "report" / "report.html").read_text()
