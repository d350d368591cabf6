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
from tests.bench.judge_server import JudgeServer

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
            "medlens,llava-med-ad758b6,medevalkit",
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
    llava = result["protocols"]["llava-med-ad758b6"]
    assert llava["headline"]["closed_accuracy"]["value"] == 1.0
    # the first release: every closed question whose reference is not in "normal" is left out
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
    # the prior baseline (the shipped VQA-RAD train counts: 884 "no", 829 "yes") answers
    # "no" to every yes/no verdict request
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
    assert result["judge"]["accuracy"]["value"] == 0.0 and result["judge"]["accuracy"]["n"] == 12
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


# --------------------------------------------------------------------------------------------
# Row matching: a row is never scored against another question's gold
# --------------------------------------------------------------------------------------------


def _osf_test_rows(shared_data: Path) -> list[dict[str, object]]:
    """OSF public-JSON rows of the MEVF test questions (matched by image and question)."""
    test = {(r["image_name"], r["question"].strip().lower()) for r in _rad_rows(shared_data)}
    osf = json.loads((shared_data / "vqa-rad" / "VQA_RAD Dataset Public.json").read_text())
    return [r for r in osf if (r["image_name"], str(r["question"]).strip().lower()) in test]


def _score(path: Path, tmp_path: Path, shared_data: Path, *extra: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    out = tmp_path / f"{path.stem}.json"
    code = main(
        [
            "score",
            str(path),
            "--benchmark",
            "vqa-rad",
            "--data-dir",
            str(shared_data),
            "--protocol",
            "medlens,llava-med",
            "--json",
            str(out),
            "--bootstrap",
            "50",
            *extra,
        ]
    )
    return code, (json.loads(out.read_text()) if out.exists() else {})


def _answer(question: str) -> str:
    return "yes" if len(question) % 2 else "no"  # deterministic, differs across questions


def test_rows_keyed_by_the_osf_id_space_are_rekeyed_to_identical_figures(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mevf = [
        {"qid": r["qid"], "question": r["question"], "text": _answer(str(r["question"]))}
        for r in _rad_rows(shared_data)
    ]
    # LLaVA-Med's answer files: OSF question_id and the whole prompt, suffix included.
    suffix = " Please choose from the following two options: [yes, no]"
    osf = [
        {
            "question_id": r["qid"],
            "prompt": f"{r['question']}{suffix}",
            "text": _answer(r["question"]),
        }
        for r in _osf_test_rows(shared_data)
    ]
    ids_only = [{"question_id": row["question_id"], "text": row["text"]} for row in osf]
    results = []
    for name, rows in (("mevf", mevf), ("osf", osf), ("osf_ids", ids_only)):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("\n".join(json.dumps(r) for r in rows))
        code, result = _score(path, tmp_path, shared_data)
        assert code == 0, capsys.readouterr().err
        results.append(result)
    printed = capsys.readouterr().out
    assert "(ids read as osf)" in printed and "conflicting 0" in printed
    assert [r["id_space"] for r in results] == ["mevf", "osf", "osf"]
    assert [r["matched"] for r in results] == [451, 451, 451]
    assert results[0]["protocols"] == results[1]["protocols"] == results[2]["protocols"]


def test_ids_that_contradict_their_question_fail_naming_the_conflicts(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [
        {"qid": r["qid"], "question": r["question"], "text": "yes"} for r in _rad_rows(shared_data)
    ]
    for row in rows[:3]:
        row["question"] = f"{row['question']} of the left femur in zebrafish"
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    code, _ = _score(path, tmp_path, shared_data)
    captured = capsys.readouterr()
    assert code == 2
    assert "matched 448 (ids read as mevf)" in captured.out and "conflicting 3" in captured.out
    assert "3 rows name, by id, a question their own text or image contradicts" in captured.err
    assert "row 1: id" in captured.err and "zebrafish" in captured.err


def test_ids_alone_that_resolve_in_both_spaces_need_the_id_space(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mevf_ids = {str(r["qid"]) for r in _rad_rows(shared_data)}
    shared = [r for r in _osf_test_rows(shared_data) if str(r["qid"]) in mevf_ids]
    assert len(shared) == 59  # the ids both spaces give, each to different questions
    path = tmp_path / "shared_ids.jsonl"
    path.write_text("\n".join(json.dumps({"question_id": r["qid"], "text": "yes"}) for r in shared))
    code, _ = _score(path, tmp_path, shared_data)
    assert code == 2
    assert "--id-space (mevf, osf)" in capsys.readouterr().err
    code, result = _score(path, tmp_path, shared_data, "--id-space", "osf")
    assert code == 0 and result["id_space"] == "osf" and result["matched"] == 59
    matched_questions = {r["question"].strip().lower() for r in shared}
    assert len(matched_questions) == 59


# --------------------------------------------------------------------------------------------
# medevalkit-judge against a real loopback server
# --------------------------------------------------------------------------------------------


def test_medevalkit_judge_grades_through_a_loopback_server_and_caches_verdicts(
    shared_data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    judge_server: JudgeServer,
) -> None:
    rows = _rad_rows(shared_data)[:60]
    answers = []
    for i, row in enumerate(rows):
        gold = str(row["answer"])
        # Open answers: every third one a paraphrase the judge accepts, the rest wrong.
        answers.append(
            gold
            if str(row["answer_type"]).strip() == "CLOSED"
            else (f"same as {gold}" if i % 3 == 0 else "spleen")
        )
    path = tmp_path / "answers.jsonl"
    path.write_text(
        "\n".join(
            json.dumps({"qid": r["qid"], "question": r["question"], "text": a})
            for r, a in zip(rows, answers)
        )
    )
    url = f"http://127.0.0.1:{judge_server.server_address[1]}/v1"
    argv = [
        "score",
        str(path),
        "--benchmark",
        "vqa-rad",
        "--data-dir",
        str(shared_data),
        "--protocol",
        "medevalkit,medevalkit-judge",
        "--bootstrap",
        "20",
        "--store",
        str(tmp_path / "runs.sqlite"),
        "--judge",
        url,
    ]

    def medevalkit_prompts() -> int:
        return sum("The standard answer:" in p for p in judge_server.prompts)

    out = tmp_path / "first.json"
    assert main([*argv, "--json", str(out)]) == 0
    asked = medevalkit_prompts()
    again = tmp_path / "again.json"
    assert main([*argv, "--json", str(again)]) == 0
    assert medevalkit_prompts() == asked  # the second scoring asked the judge nothing
    first = json.loads(out.read_text())["protocols"]["medevalkit-judge"]
    assert json.loads(again.read_text())["protocols"]["medevalkit-judge"] == first
    # Every open answer (by MedEvalKit's yes/no rule) was judged once, with its prompt.
    open_rows = [
        (r["question"], a)
        for r, a in zip(rows, answers)
        if str(r["answer"]).strip().lower() not in ("yes", "no")
    ]
    assert asked == len(set(open_rows)) > 0
    judged = first["headline"]["open_judge_accuracy"]
    accepted = sum(a.startswith("same as") for _, a in open_rows)
    assert judged["value"] == pytest.approx(accepted / len(open_rows))
    rules = json.loads(out.read_text())["protocols"]["medevalkit"]["headline"]
    assert first["headline"]["closed_accuracy"] == rules["closed_accuracy"]
    assert "get_compare_messages" in capsys.readouterr().out


def test_medevalkit_judge_without_a_judge_is_a_clear_error(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "a.jsonl"
    row = _rad_rows(shared_data)[0]
    path.write_text(json.dumps({"qid": row["qid"], "question": row["question"], "text": "x"}))
    code = main(
        [
            "score",
            str(path),
            "--benchmark",
            "vqa-rad",
            "--data-dir",
            str(shared_data),
            "--protocol",
            "medevalkit-judge",
        ]
    )
    assert code == 2
    assert "pass --judge URL_OR_ID" in capsys.readouterr().err


def test_score_help_names_each_protocols_upstream() -> None:
    from medlens.bench.protocols import PROTOCOLS, get_protocol
    from medlens.cli.score import PROTOCOL_SOURCES

    assert set(PROTOCOL_SOURCES) == set(PROTOCOLS.names())
    for name, source in PROTOCOL_SOURCES.items():
        description = get_protocol(name).description
        for word in source.split():
            if "@" in word:
                repository, commit = word.split("@")
                assert repository in description and commit in description, name
