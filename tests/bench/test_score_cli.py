"""``medlens score``: another tool's predictions matched to a benchmark and re-scored."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from medlens.backends.scripted import ScriptedBackend
from medlens.bench.benchmark import Sample
from medlens.bench.metrics.judge import LLMJudge
from medlens.cli.main import main

pytestmark = pytest.mark.data


def _rad_rows(shared_data: Path) -> list[dict[str, object]]:
    return json.loads((shared_data / "vqa-rad" / "data_RAD" / "testset.json").read_text())


def test_score_jsonl_by_id_under_three_protocols(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = _rad_rows(shared_data)
    lines = []
    for row in rows:
        closed = str(row["answer_type"]).strip() == "CLOSED"
        # LLaVA-Med answer-file shape: question_id + text
        lines.append({"question_id": row["qid"], "text": "normal" if closed else row["answer"]})
    lines.append({"question_id": 999999, "text": "yes"})
    lines.append(dict(lines[0]))
    path = tmp_path / "answers.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines))
    out = tmp_path / "scores.json"
    code = main(
        [
            "score",
            str(path),
            "--benchmark",
            "vqa-rad",
            "--data-dir",
            str(shared_data),
            "--protocol",
            "medlens,llava-med,medevalkit",
            "--json",
            str(out),
            "--bootstrap",
            "100",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "row 452: id 999999 is not a question of this benchmark split" in printed
    result = json.loads(out.read_text())
    assert (result["matched"], result["duplicates"], result["missing"]) == (451, [453], 0)
    medlens = result["protocols"]["medlens"]
    assert medlens["outcomes"]["unparseable"] == 251  # "normal" is not yes/no
    assert medlens["headline"]["open_f1"]["value"] == 1.0
    assert medlens["headline"]["closed_accuracy"]["n"] == 272
    ci = medlens["headline"]["overall"]
    assert ci["low"] <= ci["value"] <= ci["high"]
    # the same answers under the substring rules: "normal" counts as "no"
    answers_no = sum(
        str(r["answer"]).lower() == "no" for r in rows if str(r["answer_type"]).strip() == "CLOSED"
    )
    llava = result["protocols"]["llava-med"]
    assert llava["headline"]["closed_accuracy"]["value"] == 1.0
    # every closed question whose reference is not in "normal" is silently left out
    assert llava["excluded"] == 272 - answers_no
    assert llava["headline"]["closed_accuracy"]["n"] == answers_no
    medevalkit = result["protocols"]["medevalkit"]
    assert medevalkit["headline"]["closed_accuracy"]["value"] == pytest.approx(
        answers_no / medevalkit["headline"]["closed_accuracy"]["n"]
    )
    assert "question_type" in medlens["groups"] and "organ" in medlens["groups"]


def test_score_csv_by_question_and_image_on_slake(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = json.loads((shared_data / "slake" / "Slake1.0" / "test.json").read_text())
    english = [r for r in rows if r["q_lang"] == "en"][:30]
    path = tmp_path / "preds.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["question", "img_name", "response"])
        writer.writeheader()
        for r in english:
            writer.writerow(
                {"question": r["question"], "img_name": r["img_name"], "response": r["answer"]}
            )
        writer.writerow({"question": english[0]["question"], "img_name": "", "response": "CT"})
    out = tmp_path / "s.json"
    code = main(
        [
            "score",
            str(path),
            "--benchmark",
            "slake",
            "--data-dir",
            str(shared_data),
            "--protocol",
            "lmms-eval,medgemma-card",
            "--json",
            str(out),
            "--bootstrap",
            "50",
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())
    assert result["matched"] == 30
    (unmatched,) = result["unmatched"]
    assert unmatched["row"] == 31 and "add an image column" in unmatched["reason"]
    assert result["protocols"]["lmms-eval"]["headline"]["overall"]["value"] == 1.0
    assert result["protocols"]["medgemma-card"]["headline"]["overall"]["value"] == 1.0
    assert (
        "columns: id=None question=question image=img_name answer=response"
        in capsys.readouterr().out
    )


def test_score_with_judge_backend(shared_data: Path, tmp_path: Path) -> None:
    rows = [r for r in _rad_rows(shared_data) if r["answer_type"] == "OPEN"][:12]
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join(json.dumps({"qid": r["qid"], "response": "kidney"}) for r in rows))
    out = tmp_path / "j.json"
    # the unfitted prior baseline answers the first candidate ("yes") to every verdict request
    code = main(
        [
            "score",
            str(path),
            "--benchmark",
            "vqa-rad",
            "--data-dir",
            str(shared_data),
            "--judge",
            "prior",
            "--json",
            str(out),
            "--bootstrap",
            "50",
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())
    assert result["judge"]["accuracy"]["value"] == 1.0 and result["judge"]["accuracy"]["n"] == 12
    rule_based = result["protocols"]["medlens"]["headline"]["open_f1"]["value"]
    assert rule_based < 1.0  # reported beside, not replaced


def test_judge_with_scripted_backend() -> None:
    samples = [
        Sample("1", "vqa-rad", "test", "Which organ is enlarged?", ("kidney",), "open", ("a.jpg",)),
        Sample("2", "vqa-rad", "test", "Which organ is enlarged?", ("liver",), "open", ("a.jpg",)),
        Sample("3", "vqa-rad", "test", "Where is the lesion?", ("left lobe",), "open", ("a.jpg",)),
    ]
    backend = ScriptedBackend(
        answers=lambda r: (
            "maybe"
            if "lesion" in r.question
            else (
                "Yes." if "Reference answer: kidney\nModel answer: renal" in r.question else "No."
            )
        )
    )
    judge = LLMJudge(backend)
    verdicts = judge.grade(samples, ["renal", "spleen", "left"])
    assert [v.correct for v in verdicts] == [True, False, None]
    summary = judge.summarize(verdicts, n_boot=50)
    assert (summary.accuracy.value, summary.accuracy.n, summary.unreadable) == (0.5, 2, 1)
    asked = backend.requests[0]
    assert asked.candidates == ("yes", "no") and not asked.images


def test_missing_answer_column_is_a_clear_error(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"qid": 11, "foo": "yes"}))
    code = main(["score", str(path), "--benchmark", "vqa-rad", "--data-dir", str(shared_data)])
    assert code == 2
    assert "no model-answer column found" in capsys.readouterr().err
