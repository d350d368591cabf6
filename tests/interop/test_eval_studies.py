"""``medlens eval --studies FILE``: a list of studies from a real Orthanc (and a local path),
each with a question and gold, through the pipeline (de-identified before the model), stored
as a normal run that resumes and reports; a study the PACS lacks is one failed row, a PACS
that cannot be reached stops the run (resumable) instead of failing every row."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

pytest.importorskip("dicomweb_client")
pydicom = pytest.importorskip("pydicom")

from medlens.backends.scripted import ScriptedBackend
from medlens.bench.runner import EvalSpec, evaluate
from medlens.bench.store import RunStore
from medlens.cli.main import main
from medlens.errors import DataError, PacsError
from medlens.testing.studies import FAKE_PATIENT, write_ct_series, write_xray_dicom
from medlens.types import Request

from .conftest import Orthanc, free_port, stow_folder

QUESTION = "Is there a nodule?"


def write_list(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def study_list(pacs: Orthanc, tmp_path: Path) -> tuple[Path, list[str]]:
    """Two CT studies on the PACS (with and without a nodule), one missing from it, one
    local X-ray beside the list."""
    uids = [
        stow_folder(pacs, write_ct_series(tmp_path / f"ct{i}", slices=4, size=32, lesion=i == 0))[0]
        for i in range(2)
    ]
    (tmp_path / "local").mkdir()
    write_xray_dicom(tmp_path / "local" / "dx.dcm", size=64)
    rows = [
        {"qid": "a", "study": pacs.study(uids[0]), "question": QUESTION, "answer": "yes",
         "answer_type": "CLOSED"},
        {"qid": "b", "study": pacs.study(uids[1]), "question": QUESTION, "answer": "no",
         "answer_type": "CLOSED"},
        {"qid": "c", "study": pacs.study("1.2.3.4.5"), "question": QUESTION, "answer": "yes",
         "answer_type": "CLOSED"},
        {"qid": "d", "study": "local/dx.dcm", "question": "What organ is shown?",
         "answer": "lung", "answer_type": "OPEN"},
    ]  # fmt: skip
    return write_list(tmp_path / "cases.csv", rows), uids


def scripted(seen: list[Request], fail_after: int | None = None) -> ScriptedBackend:
    def reply(request: Request) -> str:
        if fail_after is not None and len(seen) >= fail_after:
            raise KeyboardInterrupt  # Ctrl-C while the model answers
        seen.append(request)
        return "yes" if request.kind == "closed" else "lung"

    return ScriptedBackend(answers=reply)


def test_a_list_from_the_pacs_is_a_resumable_deidentified_run(
    study_list: tuple[Path, list[str]], tmp_path: Path
) -> None:
    cases, uids = study_list
    store = RunStore(tmp_path / "runs.sqlite")
    spec = EvalSpec((), model="scripted", studies=str(cases), batch_size=1, baselines=False,
                    protocols=("medlens",))  # fmt: skip
    seen: list[Request] = []
    with pytest.raises(KeyboardInterrupt):  # stopped after the first answer
        evaluate(spec, store, progress=False, backend_factory=lambda: scripted(seen, 1))
    (run,) = store.runs()
    assert run.benchmark.startswith("studies-") and store.done_ids(run.id) == {"a"}
    (outcome,) = evaluate(spec, store, resume=True, progress=False,
                          backend_factory=lambda: scripted(seen))  # fmt: skip
    assert outcome.run.id == run.id and outcome.n_new == 2  # b and d answered, c failed
    assert all(r.deidentified for r in seen) and len(seen) == 3  # a, then b and d
    rows = {r.sample_id: r for r in store.results(run.id)}
    assert set(rows) == {"a", "b", "c", "d"}
    assert rows["c"].error == "study could not be loaded (PacsError)"
    outcomes = {k: r.scores["medlens"]["outcome"] for k, r in rows.items()}
    assert outcomes == {"a": "correct", "b": "wrong", "c": "unparseable", "d": "correct"}
    assert outcome.run.config["benchmark_source"] == "local"
    assert outcome.run.config["pixel_policy"]["ocr"] == "auto"  # not a published release
    store.close()
    # nothing identifying in the store: no patient, no source UID, no list file name
    data = (tmp_path / "runs.sqlite").read_bytes()
    for secret in (FAKE_PATIENT["PatientName"], FAKE_PATIENT["PatientID"], *uids, "cases.csv"):
        assert secret.encode() not in data, secret
    # the command line: the same list resumes the same run, and its report is written
    code = main(["eval", "--studies", str(cases), "--model", "random", "--no-baselines",
                 "--protocol", "medlens", "--store", str(tmp_path / "cli.sqlite"),
                 "--out", str(tmp_path / "report"), "--no-progress"])  # fmt: skip
    assert code == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    (reported,) = report["runs"]
    assert reported["benchmark"] == run.benchmark and reported["n_results"] == 4
    assert reported["n_errors"] == 1 and "medlens" in reported["protocol_summaries"]


def test_a_list_without_gold_is_answered_not_scored(pacs: Orthanc, tmp_path: Path) -> None:
    (uid,) = stow_folder(pacs, write_ct_series(tmp_path / "ct", slices=4, size=32))
    cases = tmp_path / "cases.jsonl"
    cases.write_text(json.dumps({"study": pacs.study(uid), "question": QUESTION}) + "\n")
    store = RunStore(tmp_path / "runs.sqlite")
    spec = EvalSpec((), model="scripted", studies=str(cases), baselines=False)
    (outcome,) = evaluate(spec, store, progress=False, backend_factory=lambda: scripted([]))
    assert outcome.run.protocols == () and store.count(outcome.run.id) == 1
    (row,) = store.results(outcome.run.id)
    assert row.sample_id == "row-1" and row.raw == "yes" and row.scores == {}
    store.close()
    # with the baselines a list can have: random (the model here); the train prior has no
    # train split to be fitted on, so prior and the model-less no-image are left out
    code = main(["eval", "--studies", str(cases), "--model", "random", "--store",
                 str(tmp_path / "cli.sqlite"), "--out", str(tmp_path / "report"),
                 "--no-progress"])  # fmt: skip
    assert code == 0
    (reported,) = json.loads((tmp_path / "report" / "report.json").read_text())["runs"]
    assert reported["n_results"] == 1 and reported["protocol_summaries"] == {}
    assert set(reported["config"]["baselines_left_out"]) == {"prior", "no-image"}


def test_a_pacs_that_cannot_be_reached_stops_the_run(tmp_path: Path) -> None:
    down = f"dicomweb://127.0.0.1:{free_port()}/dicom-web/studies/1.2.3"
    cases = write_list(tmp_path / "cases.csv", [{"study": down, "question": QUESTION,
                                                  "answer": "yes"}])  # fmt: skip
    store = RunStore(tmp_path / "runs.sqlite")
    spec = EvalSpec((), model="scripted", studies=str(cases), baselines=False)
    with pytest.raises(PacsError, match="cannot reach"):
        evaluate(spec, store, progress=False, backend_factory=lambda: scripted([]))
    (run,) = store.runs()
    assert store.count(run.id) == 0  # nothing recorded as failed: --resume retries it
    store.close()


def test_list_faults_are_one_clear_error(tmp_path: Path) -> None:
    gold_on_some = write_list(tmp_path / "some.csv", [
        {"study": "dicomweb://h:1/dicom-web/studies/1", "question": QUESTION, "answer": "yes"},
        {"study": "dicomweb://h:1/dicom-web/studies/2", "question": QUESTION, "answer": ""},
    ])  # fmt: skip
    with pytest.raises(DataError, match="1 of 2 rows have no gold answer"):
        evaluate(EvalSpec((), model="random", studies=str(gold_on_some)), RunStore(":memory:"))
    missing = write_list(tmp_path / "missing.csv", [{"study": "nowhere/ct", "question": "q"}])
    with pytest.raises(DataError, match="relative to the list's folder"):
        evaluate(EvalSpec((), model="random", studies=str(missing)), RunStore(":memory:"))
    with pytest.raises(DataError, match="does not exist"):
        EvalSpec((), model="random", studies=str(tmp_path / "absent.csv"))
