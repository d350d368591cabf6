"""Reports from a run store filled by hand with known answers: numbers, baselines beside the
model, side-by-side comparison, re-scoring, self-contained HTML, JSON/CSV, extra sections."""

from __future__ import annotations

import csv
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from medlens.bench.benchmark import Sample
from medlens.bench.protocols import get_protocol
from medlens.bench.report import ReportSection, collect, register_section, write_report
from medlens.bench.report.model import SECTIONS
from medlens.bench.scoring import score_answer
from medlens.bench.store import (
    RunInfo,
    RunStore,
    StoredResult,
    answer_from_json,
    sample_to_json,
)
from medlens.errors import ConfigError, UnknownNameError

# 10 closed questions (6 "yes") and 4 open ones, two question categories.
SAMPLES = [
    Sample(
        f"c{i}",
        "vqa-rad",
        "test",
        f"Is finding {i} present?",
        ("yes" if i < 6 else "no",),
        "closed",
        (),
        metadata={"question_type": "PRES" if i % 2 else "ABN"},
    )
    for i in range(10)
] + [
    Sample(
        f"o{i}",
        "vqa-rad",
        "test",
        f"Which organ {i}?",
        (ans,),
        "open",
        (),
        metadata={"question_type": "ORGAN"},
    )
    for i, ans in enumerate(["liver", "left lung", "brain", "kidney"])
]


def _fill(
    store: RunStore,
    model: str,
    answers: dict[str, str],
    *,
    role: str = "model",
    group: str | None = None,
    protocols: tuple[str, ...] = ("medlens",),
    confidence: float | None = None,
    samples: list[Sample] = SAMPLES,
    calibration: str | None = None,
    abstained: frozenset[str] = frozenset(),
) -> RunInfo:
    """A run of ``samples`` answered ``answers``; with ``calibration``, its closed answers
    carry a calibrated ``confidence`` and those in ``abstained`` abstained."""
    run = store.create_run(
        benchmark="vqa-rad",
        split="test",
        model=model,
        backend=model,
        protocols=list(protocols),
        config={"limit": None, **({"calibration": calibration} if calibration else {})},
        role=role,
        group_id=group,
        n_planned=len(samples),
    )
    resolved = {p: get_protocol(p) for p in protocols}
    rows = []
    for position, sample in enumerate(samples):
        raw = answers[sample.id]
        answer = {"raw": raw, "text": raw, "parsed": True, "abstained": sample.id in abstained}
        if confidence is not None:
            calibrated = calibration is not None and sample.kind == "closed"
            answer["confidence"] = {
                "value": confidence,
                "method": "candidates",
                "calibrated": calibrated,
            }
        rows.append(
            StoredResult(
                sample.id,
                position,
                "",
                sample_to_json(sample),
                "[user] q",
                raw,
                answer,
                score_answer(resolved, sample, answer_from_json(answer)),
                {},
                False,
            )
        )
    store.add_results(run.id, rows)
    store.update_run(run.id, status="complete", add_elapsed_s=2.0)
    return store.get_run(run.id)


# The model: 8/10 closed right; open: "liver" right, "lung" half of "left lung", 2 wrong.
MODEL = {f"c{i}": ("yes" if i < 6 else "no") for i in range(8)} | {"c8": "yes", "c9": "yes"}
MODEL |= {"o0": "liver", "o1": "lung", "o2": "heart", "o3": "spleen"}
PRIOR = {f"c{i}": "yes" for i in range(10)} | {f"o{i}": "liver" for i in range(4)}
OTHER = {f"c{i}": "no" for i in range(10)} | {f"o{i}": "kidney" for i in range(4)}


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    db = RunStore(tmp_path / "runs.sqlite")
    yield db  # type: ignore[misc]
    db.close()


def test_numbers_baselines_and_files(store: RunStore, tmp_path: Path) -> None:
    model = _fill(store, "tiny-vlm", MODEL)
    prior = _fill(store, "prior", PRIOR, role="baseline", group=model.group_id)
    files = write_report(store, [model.id], tmp_path / "out", n_boot=200)

    data = json.loads(files.json.read_text())
    runs = {r["model"]: r for r in data["runs"]}
    assert list(runs) == ["tiny-vlm", "prior"]  # the baseline came along, after the model
    medlens = runs["tiny-vlm"]["results"]["medlens"]
    assert medlens["closed_accuracy"]["value"] == pytest.approx(0.8)
    assert medlens["closed_accuracy"]["n"] == 10
    # token F1: liver 1, lung vs "left lung" 2/3, heart 0, spleen 0
    assert medlens["open_f1"]["value"] == pytest.approx((1 + 2 / 3) / 4)
    assert medlens["overall"]["n"] == 14
    low, high = medlens["closed_accuracy"]["low"], medlens["closed_accuracy"]["high"]
    assert 0.0 <= low < 0.8 < high <= 1.0
    assert runs["prior"]["results"]["medlens"]["closed_accuracy"]["value"] == pytest.approx(0.6)
    assert runs["tiny-vlm"]["categories"]["medlens"]["ORGAN"]["n"] == 4
    assert runs["prior"]["elapsed_s"] == 2.0

    rows = list(csv.DictReader(files.csv.open()))
    closed = [r for r in rows if r["metric"] == "closed_accuracy" and r["protocol"] == "medlens"]
    assert {(r["run_id"], float(r["value"])) for r in closed} == {(model.id, 0.8), (prior.id, 0.6)}
    assert any(r["metric"] == "question_type:PRES" for r in rows)

    page = files.html.read_text()
    assert "80.0" in page and "60.0" in page and "baseline" in page
    assert "Per question category" in page and "ORGAN" in page
    assert "Strict medlens rules" in page  # the protocol's own rule text
    assert "Lau JJ" in page  # the benchmark's citation
    # Self-contained: one inline script (the sample table's filters), no external resource;
    # every chart is well-formed SVG.
    assert page.count("<script") == 1 and "<script>" in page
    assert not re.search(r"(src|href)=['\"]https?:", page) and "url(http" not in page
    svgs = re.findall(r"<svg.*?</svg>", page, flags=re.DOTALL)
    assert svgs
    for svg in svgs:
        ET.fromstring(svg)


def test_side_by_side_and_without_baselines(store: RunStore, tmp_path: Path) -> None:
    first = _fill(store, "tiny-vlm", MODEL)
    _fill(store, "prior", PRIOR, role="baseline", group=first.group_id)
    second = _fill(store, "other-vlm", OTHER)
    data = collect(store, [first.id, second.id[:6]], n_boot=100)
    assert [s.run.model for s in data.runs] == ["tiny-vlm", "other-vlm", "prior"]
    closed = {s.run.model: s.headline["medlens"]["closed_accuracy"].value for s in data.runs}
    assert closed == pytest.approx({"tiny-vlm": 0.8, "other-vlm": 0.4, "prior": 0.6})
    bare = collect(store, [first.id], baselines=False, n_boot=100)
    assert [s.run.model for s in bare.runs] == ["tiny-vlm"]
    files = write_report(store, [first.id, second.id], tmp_path / "cmp", n_boot=100)
    page = files.html.read_text()
    assert page.index(first.id) < page.index(second.id)  # both rows in one table


def test_protocol_flag_rescores_stored_generations(store: RunStore, tmp_path: Path) -> None:
    run = _fill(store, "tiny-vlm", MODEL)
    assert run.protocols == ("medlens",)
    data = collect(store, [run.id], protocols=["llava-med"], n_boot=100)
    assert list(data.protocols) == ["llava-med"]
    assert "llava-med" in store.get_run(run.id).protocols
    stored = store.results(run.id)
    assert all("llava-med" in r.scores and "medlens" in r.scores for r in stored)
    recall = data.runs[0].headline["llava-med"]["open_recall"].value
    assert recall == pytest.approx((1 + 1 / 2) / 4)  # "lung" recalls 1 of 2 reference tokens


def test_empty_groups_are_null_in_json(store: RunStore, tmp_path: Path) -> None:
    run = _fill(store, "tiny-vlm", MODEL)
    files = write_report(store, [run.id], tmp_path / "o", n_boot=50)
    text = files.json.read_text()
    assert "NaN" not in text
    json.loads(text)


def test_extra_sections(store: RunStore, tmp_path: Path) -> None:
    run = _fill(store, "tiny-vlm", MODEL)

    def answers_seen(data, db):  # type: ignore[no-untyped-def]
        n = sum(len(db.results(s.run.id)) for s in data.runs)
        return ReportSection("Answers seen", f"<p>{n} answers &lt;checked&gt;</p>", {"n": n})

    files = write_report(store, [run.id], tmp_path / "x", extra_sections=[answers_seen], n_boot=50)
    assert "<h2>Answers seen</h2><p>14 answers &lt;checked&gt;</p>" in files.html.read_text()
    sections = json.loads(files.json.read_text())["sections"]
    assert sections["Answers seen"] == {"n": 14} and list(sections) == ["Answers seen", "Samples"]

    registered = register_section(lambda data, db: None)  # a builder may skip itself
    try:
        write_report(store, [run.id], tmp_path / "y", n_boot=50)
    finally:
        SECTIONS.remove(registered)


def test_unknown_runs_fail_clearly(store: RunStore, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least one run"):
        write_report(store, [], tmp_path)
    with pytest.raises(UnknownNameError, match="not in the store"):
        write_report(store, ["feedbeef"], tmp_path)


def test_trust_sections_show_image_reliance_and_calibration(
    store: RunStore, tmp_path: Path
) -> None:
    model = _fill(store, "tiny-vlm", MODEL, confidence=0.9)
    _fill(store, "no-image", OTHER, role="baseline", group=model.group_id)
    _fill(store, "prior", PRIOR, role="baseline", group=model.group_id)
    files = write_report(store, [model.id], tmp_path / "t", n_boot=50)
    sections = json.loads(files.json.read_text())["sections"]
    rows = {r["run"]: r for r in sections["Image reliance"][model.id]["rows"]}
    # medlens outcomes: model 8 closed + "liver" correct = 9/14; no-image 4 closed + "kidney".
    assert rows["tiny-vlm"]["accuracy"] == pytest.approx(9 / 14)
    assert rows["no-image"]["image_reliance"] == pytest.approx(4 / 14)
    assert list(sections["Calibration and selective prediction"]) == [model.id]
    page = files.html.read_text()
    assert page.count("data:image/png;base64,") >= 3  # reliability, risk-coverage, accuracy
    bare = write_report(store, [model.id], tmp_path / "u", n_boot=50, trust_sections=False)
    assert list(json.loads(bare.json.read_text())["sections"]) == ["Samples"]


def test_html_tables_mark_n_delta_iou_calibration_and_mixed_samples(
    store: RunStore, tmp_path: Path
) -> None:
    """The HTML side of issue 14 items 2 and 6, from the rows the CLI table prints
    (``report.table``): n scored/stored per protocol, † on the buggy protocol with its fix,
    Δ with its sign convention, an IoU column for boxes, calibrated coverage / abstentions /
    selective accuracy, and a warning when compared runs answered different questions."""
    boxes = [
        Sample(
            f"g{i}",
            "vqa-rad",
            "test",
            "Where is the nodule?",
            ("nodule",),
            "grounding",
            (),
            metadata={"boxes": [{"label": "nodule", "box": [0, 0, 10, 10]}]},
        )
        for i in range(2)
    ]
    # Box g0 overlaps half of the reference (IoU 50/100 = 0.5), g1 misses it: mean IoU 0.25.
    answers = MODEL | {
        "g0": '[{"label": "nodule", "box_2d": [0, 0, 10, 5]}]',
        "g1": '[{"label": "nodule", "box_2d": [50, 50, 60, 60]}]',
    }
    protocols = ("medlens", "llava-med-ad758b6")
    model = _fill(
        store,
        "tiny-vlm",
        answers,
        protocols=protocols,
        samples=SAMPLES + boxes,
        confidence=0.9,
        calibration="tiny-profile",
        abstained=frozenset({"c8", "c9"}),  # the two wrong closed answers
    )
    _fill(
        store,
        "prior",
        PRIOR | {"g0": "[]", "g1": "[]"},
        role="baseline",
        group=model.group_id,
        protocols=protocols,
        samples=SAMPLES + boxes,
    )
    fewer = _fill(store, "other-vlm", OTHER, samples=SAMPLES[:6])  # medlens only
    files = write_report(store, [model.id, fewer.id], tmp_path / "h", n_boot=50)
    page = files.html.read_text()

    assert "<code>llava-med-ad758b6</code>†" in page
    assert "†llava-med-ad758b6: reproduces known bugs of the published code" in page
    assert "llava-med-fixed is the corrected rule" in page
    # llava-med-ad758b6 counts only right closed answers (8 of 10 closed) + 4 open + 2 boxes.
    assert "<td class='bad'>14/16</td>" in page and "<td class=''>16/16</td>" in page
    assert "Δ pts vs model" in page and "this run&#x27;s overall minus the model&#x27;s" in page
    # medlens overall: model (8 + 1 + 2/3 + 1) / 16 = 66.7 %, prior (6 + 1) / 16 = 43.8 %.
    assert "<td>-22.9</td>" in page
    assert "<th>IoU</th>" in page and "<td>25.0</td>" in page
    assert "IoU: mean intersection over union" in page
    assert "Calibrated runs: coverage and selective accuracy" in page
    # 10 closed questions calibrated, 2 abstained: coverage 80 %, the 8 answered all right.
    calibrated = re.search(
        r"tiny-profile</td><td>10</td><td>80.0</td><td>8</td><td>2</td>"
        r"<td>100.0</td>",
        page,
    )
    assert calibrated, "the calibrated run's coverage, abstentions and selective accuracy"
    assert "Warning: the vqa-rad test runs answered different questions" in page
    assert f"{fewer.id}: 6" in page and f"{model.id}: 16" in page
    # The sample table shows the runs under the protocols each was scored with.
    assert page.count("<span class='sp p1 muted'>not scored</span>") == 6
