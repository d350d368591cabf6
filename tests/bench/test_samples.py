"""Per-sample outputs (issue 14, item 5): ``eval --log-samples`` and ``report --samples`` as
JSONL/CSV with the right gold, parsed answer and per-protocol scores, thumbnails of the images
the model received, and the HTML sample table in chromium (wrong answers first, filters)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from medlens.bench.store import RunStore
from medlens.cli.main import main

PROTOCOLS = "medlens,llava-med-ad758b6"


@dataclass(frozen=True)
class TinyRun:
    store: Path
    model_run: str
    no_image_run: str
    jsonl: Path
    data: Path


@pytest.fixture(scope="module")
def tiny_run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TinyRun]:
    """The prior baseline as the model on the first 6 VQA-RAD test questions (3 images),
    beside the no-image and random baselines, with ``--log-samples``."""
    root = tmp_path_factory.mktemp("samples")
    store, jsonl = root / "runs.sqlite", root / "eval.jsonl"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEDLENS_HOME", str(root / "home"))
        argv = ["eval", "vqa-rad", "--model", "prior", "--limit", "6", "--protocol", PROTOCOLS]
        argv += ["--data-dir", str(shared_data), "--store", str(store), "--no-progress"]
        assert main([*argv, "--log-samples", str(jsonl)]) == 0
    db = RunStore(store)
    runs = {r.model: r.id for r in db.runs()}
    db.close()
    yield TinyRun(store, runs["prior"], runs["no-image"], jsonl, shared_data)


def _testset(data: Path) -> dict[str, dict[str, Any]]:
    rows = json.loads((data / "vqa-rad" / "data_RAD" / "testset.json").read_text())
    return {str(r["qid"]): r for r in rows}


@pytest.mark.data
def test_log_samples_rows_hold_gold_parsed_answer_and_each_protocols_score(
    tiny_run: TinyRun,
) -> None:
    rows = [json.loads(line) for line in tiny_run.jsonl.read_text().splitlines()]
    assert len(rows) == 18  # 6 questions x (prior as the model, no-image, random)
    model = {r["id"]: r for r in rows if r["run_id"] == tiny_run.model_run}
    testset = _testset(tiny_run.data)
    assert list(model) == ["11", "13", "14", "20", "22", "24"]  # the release's order
    for sample_id, row in model.items():
        truth = testset[sample_id]
        assert row["question"] == truth["question"] and row["gold"] == [str(truth["answer"])]
        assert row["benchmark"] == "vqa-rad" and row["role"] == "model"
        assert row["kind"] == truth["answer_type"].strip().lower()
        assert row["parse_ok"] and row["parsed"] == row["raw"].strip()
        right = row["parsed"].lower() == str(truth["answer"]).lower()
        medlens = row["scores"]["medlens"]
        assert medlens["outcome"] == ("correct" if right else "wrong")
        assert medlens["score"] == float(right)
        if row["kind"] == "closed":
            assert 0.0 < row["confidence"] < 1.0 and row["confidence_method"] == "candidates"
            # LLaVA-Med's first release leaves wrong closed answers out of its denominator.
            assert row["scores"]["llava-med-ad758b6"]["counted"] is right
        assert not row["calibrated"] and not row["abstained"] and row["error"] is None

    # The known sample: qid 11, "Is there evidence of an aortic aneurysm?", gold "yes".
    known = model["11"]
    assert known["gold"] == ["yes"] and known["category"] == "PRES"
    assert known["scores"]["medlens"]["score"] == float(known["parsed"] == "yes")


@pytest.mark.data
def test_report_samples_csv_matches_the_jsonl(tiny_run: TinyRun, tmp_path: Path) -> None:
    target = tmp_path / "model.csv"
    argv = ["report", tiny_run.model_run, "--store", str(tiny_run.store), "--no-baselines"]
    assert main([*argv, "--out", str(tmp_path / "r"), "--samples", str(target)]) == 0
    table = list(csv.DictReader(target.open(encoding="utf-8")))
    logged = [json.loads(line) for line in tiny_run.jsonl.read_text().splitlines()]
    expected = [r for r in logged if r["run_id"] == tiny_run.model_run]
    assert [r["id"] for r in table] == [r["id"] for r in expected]
    for flat, row in zip(table, expected):
        assert flat["gold"] == " | ".join(row["gold"]) and flat["parsed"] == row["parsed"]
        assert flat["raw"] == row["raw"] and flat["question"] == row["question"]
        for protocol in PROTOCOLS.split(","):
            assert float(flat[f"{protocol}:score"]) == row["scores"][protocol]["score"]
            assert flat[f"{protocol}:outcome"] == row["scores"][protocol]["outcome"]

    both = main([*argv, "--out", str(tmp_path / "r2"), "--samples"])
    assert both == 0 and {p.name for p in (tmp_path / "r2").glob("samples.*")} == {
        "samples.jsonl",
        "samples.csv",
    }
    wrong_suffix = ["--out", str(tmp_path / "r3"), "--samples", str(tmp_path / "x.xlsx")]
    assert main([*argv, *wrong_suffix]) == 2  # one clear error


@pytest.mark.data
def test_thumbnails_are_the_image_the_model_received(tiny_run: TinyRun) -> None:
    db = RunStore(tiny_run.store)
    try:
        shown = db.thumbnails(tiny_run.model_run)
        assert set(shown) == {"11", "13", "14", "20", "22", "24"}
        assert not db.thumbnails(tiny_run.no_image_run)  # that baseline sees no image
    finally:
        db.close()
    (thumb,) = shown["11"]
    assert thumb.digest == shown["24"][0].digest  # qid 11 and 24 ask about one image
    assert max(thumb.width, thumb.height) == 128
    # VQA-RAD pixels reach the model as published, so the thumbnail is the file's, scaled.
    original = Image.open(tiny_run.data / "vqa-rad" / "VQA_RAD Image Folder" / "synpic42202.jpg")
    got = Image.open(io.BytesIO(thumb.data)).convert("L")
    assert got.size == (thumb.width, thumb.height)
    assert abs(got.width / got.height - original.width / original.height) < 0.01
    expected = original.convert("L").resize(got.size, Image.Resampling.LANCZOS)
    difference = np.abs(np.asarray(got, float) - np.asarray(expected, float)).mean()
    assert difference < 3.0  # JPEG quality 85 of the same picture


def _visible(page: Any) -> list[tuple[str, str]]:
    """(sample id, outcome under the chosen protocol) of the rows shown, top to bottom."""
    return [
        (cells.split(" · ")[1], outcome)
        for cells, outcome in page.eval_on_selector_all(
            "#sample-table tbody tr:not([hidden])",
            "rows => rows.map(r => [r.cells[1].textContent, "
            "r.dataset['o' + document.getElementById('samples').dataset.p]])",
        )
    ]


@pytest.mark.data
@pytest.mark.slow
def test_html_sample_table_wrong_first_filters_and_thumbnails(
    tiny_run: TinyRun, tmp_path: Path, page: Any
) -> None:
    out = tmp_path / "report"
    argv = ["report", tiny_run.model_run, "--store", str(tiny_run.store), "--out", str(out)]
    assert main([*argv, "--max-thumbnails", "2"]) == 0
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto((out / "report.html").as_uri())
    logged = [json.loads(line) for line in tiny_run.jsonl.read_text().splitlines()]
    model = {r["id"]: r for r in logged if r["run_id"] == tiny_run.model_run}
    outcome = {i: r["scores"]["medlens"]["outcome"] for i, r in model.items()}

    rows = _visible(page)
    assert sorted(rows) == sorted(outcome.items())  # every answer, with its medlens outcome
    kinds = [o == "correct" for _, o in rows]
    assert kinds == sorted(kinds) and not all(kinds)  # wrong answers first
    assert page.text_content("#s-count") == "6 of 6 answers"

    page.select_option("#s-outcome", "correct")
    assert {i for i, _ in _visible(page)} == {i for i, o in outcome.items() if o == "correct"}
    page.select_option("#s-outcome", "wrong")
    assert {i for i, _ in _visible(page)} == {i for i, o in outcome.items() if o != "correct"}
    page.select_option("#s-outcome", "")
    page.fill("#s-search", "ANEURYSM")
    assert [i for i, _ in _visible(page)] == ["11"]
    assert page.text_content("#s-count") == "1 of 6 answers"
    page.fill("#s-search", "")

    # The protocol chooses the score shown and the order: llava-med-ad758b6 does not count
    # a wrong closed answer.
    page.select_option("#s-protocol", label="llava-med-ad758b6")
    row = page.locator("#sample-table tbody tr", has_text="aortic aneurysm")
    shown_score = row.locator("td .sp:visible").inner_text()
    expected = model["11"]["scores"]["llava-med-ad758b6"]
    assert shown_score.startswith(f"{expected['outcome']} {expected['score']:.2f}")
    assert ("not counted" in shown_score) is (not expected["counted"])

    # Thumbnails: 3 distinct images, 2 embedded (--max-thumbnails 2), the third said.
    embedded = page.eval_on_selector_all(
        "#sample-table .thumb",
        "els => els.map(e => [getComputedStyle(e).backgroundImage.slice(0, 27), e.offsetWidth])",
    )
    assert embedded and all(url == 'url("data:image/jpeg;base64' for url, _ in embedded)
    assert all(0 < width <= 128 for _, width in embedded)
    assert "1 more left out" in page.text_content("#s-images")
    assert page.locator("#sample-table", has_text="not embedded").count() == 1
    assert all(url.startswith(("file:", "data:")) for url in requests)  # self-contained


@pytest.mark.data
def test_no_thumbnails_are_kept_when_deidentification_is_off(
    shared_data: Path, tmp_path: Path
) -> None:
    """With --no-deid the model receives the images as given, identified or not: the store
    keeps none of them and the report's sample table says why it shows none."""
    store = tmp_path / "runs.sqlite"
    argv = ["eval", "vqa-rad", "--model", "prior", "--limit", "2", "--no-baselines"]
    argv += ["--data-dir", str(shared_data), "--store", str(store), "--no-progress", "--no-deid"]
    assert main([*argv, "--out", str(tmp_path / "report")]) == 0
    db = RunStore(store)
    (run,) = db.runs()
    assert db.count(run.id) == 2 and db.thumbnails(run.id) == {}
    db.close()
    page = (tmp_path / "report" / "report.html").read_text()
    assert f"de-identification was off for run(s) {run.id}" in page
    assert "th-" not in page.split("<table id='sample-table'>")[1]  # no image in the table


@pytest.mark.slow
def test_user_studies_show_the_deidentified_view_and_unscored_answers(
    tmp_path: Path, page: Any
) -> None:
    """`eval --studies` on a list of the user's own studies without gold answers: the
    burned-in name is OCR-redacted before the model, and the report's thumbnail is that
    redacted view, not the file; the table lists the unscored answers without score filters."""
    from medlens.testing.phi import burn_text

    rng = np.random.default_rng(3)
    pixels = np.full((256, 256), 40, np.uint8)
    pixels[60:200, 60:200] = 150  # a bright "organ"
    burned = burn_text(pixels, "DOE^JANE 1961", rng, sizes=(20, 22), upright=True)
    assert burned is not None
    Image.fromarray(pixels).save(tmp_path / "scan.png")
    cases = tmp_path / "cases.csv"
    cases.write_text("qid,study,question\ncase-1,scan.png,Is there a nodule?\n")
    store, out = tmp_path / "runs.sqlite", tmp_path / "report"
    argv = ["eval", "--studies", str(cases), "--model", "random", "--no-baselines"]
    assert main([*argv, "--store", str(store), "--out", str(out), "--no-progress"]) == 0

    db = RunStore(store)
    (run,) = db.runs()
    (thumb,) = db.thumbnails(run.id)["case-1"]
    db.close()
    seen = np.asarray(Image.open(io.BytesIO(thumb.data)).convert("L"), float)
    original = Image.fromarray(pixels)
    original.thumbnail((128, 128))
    text = np.asarray(Image.fromarray(burned.mask).resize(original.size)) > 0
    # The text's pixels differ from the file's in the thumbnail (redacted), the rest not.
    assert np.abs(seen - np.asarray(original, float))[text].mean() > 40
    assert np.abs(seen - np.asarray(original, float))[~text].mean() < 12

    page.goto((out / "report.html").as_uri())
    assert page.text_content("#s-count") == "1 of 1 answers"
    assert page.locator("#s-protocol").count() == 0 and page.locator("#s-outcome").count() == 0
    assert "not scored (the questions have no gold answers)" in page.content()
    page.fill("#s-search", "nodule")
    assert page.text_content("#s-count") == "1 of 1 answers"
    page.fill("#s-search", "effusion")
    assert page.text_content("#s-count") == "0 of 1 answers"
