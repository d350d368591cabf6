"""Stored runs report the protocol versions and the prompt preset that made them (issues 15
and 19): an earlier version's scores are shown under ``name@version``, never as the current
rule; re-scoring under the current version keeps them; every report and eval table names the
prompt preset behind the generations and says when a protocol comes from another harness."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from medlens.bench.protocols import PROTOCOLS, get_protocol, rescore
from medlens.bench.protocols.versions import EARLIER, as_scored, describe, scored_key, split_key
from medlens.bench.store import RunStore, answer_from_json, sample_from_json
from medlens.cli.common import HARNESSES
from medlens.cli.main import main
from medlens.tasks.presets import PRESETS

FIXTURE = Path(__file__).parent / "fixtures" / "stored-run"
MODEL_RUN = "a7df97f77c"


@pytest.fixture
def stored_run(tmp_path: Path) -> Path:
    """The run of ``test_stored_run_report``: scored under llava-med ad758b6, lmms-eval
    65ef07d and medevalkit 016723d, with medlens's templates of before the presets."""
    store = tmp_path / "runs.sqlite"
    store.write_bytes(gzip.decompress((FIXTURE / "runs.sqlite.gz").read_bytes()))
    return store


def test_earlier_versions_are_earlier_and_name_current_protocols() -> None:
    for (name, version), earlier in EARLIER.items():
        assert name in PROTOCOLS and version != get_protocol(name).version
        assert earlier.now is None or earlier.now in PROTOCOLS
    assert scored_key("llava-med", "ad758b6") == "llava-med@ad758b6"
    assert scored_key("llava-med", get_protocol("llava-med").version) == "llava-med"
    assert scored_key("llava-med", None) == "llava-med"
    assert split_key("llava-med@ad758b6") == ("llava-med", "ad758b6")
    assert as_scored("llava-med@ad758b6").name == "llava-med-ad758b6"
    assert as_scored("medevalkit@016723d").name == "medevalkit"  # no current twin
    version, text = describe("medlens@0")
    assert version == "0" and "no description" in text and "--protocol medlens" in text


def test_each_harness_protocol_names_its_own_prompt_preset() -> None:
    for preset, protocol in HARNESSES.values():
        assert get_protocol(protocol).harness_prompt == preset
    assert {p().harness_prompt for p in map(PROTOCOLS.get, PROTOCOLS.names())} <= set(PRESETS)


def test_a_stored_run_reports_the_versions_and_prompt_it_was_made_with(
    stored_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    assert main(["report", MODEL_RUN, "--store", str(stored_run), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    protocols = report["protocols"]
    assert "llava-med" not in protocols  # today's llava-med (b9a98a7) did not score this run
    assert protocols["llava-med@ad758b6"]["version"] == "ad758b6"
    assert "now the protocol llava-med-ad758b6" in protocols["llava-med@ad758b6"]["description"]
    assert protocols["medevalkit@016723d"]["version"] == "016723d"
    assert "medlens" not in protocols  # medlens@1 scored it (grounding fixed in medlens@2)
    assert protocols["medlens@1"]["version"] == "1"
    assert "every grounding answer" in protocols["medlens@1"]["description"]
    run = report["runs"][0]
    assert run["protocol_summaries"]["llava-med@ad758b6"]["version"] == "ad758b6"

    # The stored first-release scores are what llava-med-ad758b6 gives today.
    db = RunStore(stored_run)
    results = db.results(MODEL_RUN)
    db.close()
    samples = [sample_from_json(r.sample) for r in results]
    _, summary = rescore(
        "llava-med-ad758b6", samples, [answer_from_json(r.answer).raw for r in results]
    )
    stored = run["results"]["llava-med@ad758b6"]["closed_accuracy"]
    assert stored["value"] == summary.headline["closed_accuracy"].value
    assert stored["n"] == summary.headline["closed_accuracy"].n == 2  # one wrong answer left out

    assert run["prompt"]["label"] == "medlens@1"  # made before presets: closed@1 templates
    assert "'axial 1/1' included" in run["prompt"]["description"]
    (note,) = run["prompt_notes"]
    assert "llava-med@ad758b6" in note and "lmms-eval@65ef07d" in note and "medlens," not in note
    assert f"{MODEL_RUN}: generations from prompt preset medlens@1" in printed
    html = (out / "report.html").read_text()
    assert "llava-med@ad758b6" in html and "<h3>Prompts</h3>" in html


def test_rescoring_under_the_current_version_keeps_the_earlier_scores(
    stored_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["report", MODEL_RUN, "--store", str(stored_run), "--no-baselines"]
    assert main([*argv, "--protocol", "llava-med", "--out", str(tmp_path / "a")]) == 0
    printed = capsys.readouterr().out
    assert "scores under llava-med apply their harness's rules" in printed
    (run,) = json.loads((tmp_path / "a" / "report.json").read_text())["runs"]
    current = run["results"]["llava-med"]["closed_accuracy"]
    assert run["protocol_summaries"]["llava-med"]["version"] == "b9a98a7"
    assert current["n"] == 3  # PR #35 counts the wrong closed answer

    db = RunStore(stored_run)
    info = db.get_run(MODEL_RUN)
    db.close()
    assert info.config["protocol_versions"]["llava-med"] == "b9a98a7"
    assert info.config["protocol_versions"]["llava-med@ad758b6"] == "ad758b6"
    assert main([*argv, "--out", str(tmp_path / "b")]) == 0  # every stored protocol
    (both,) = json.loads((tmp_path / "b" / "report.json").read_text())["runs"]
    assert both["results"]["llava-med"]["closed_accuracy"] == current
    assert both["results"]["llava-med@ad758b6"]["closed_accuracy"]["n"] == 2


@pytest.mark.data
def test_the_eval_table_names_the_prompt_preset_and_other_harness_rules(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--limit", "4", "--no-baselines", "--no-progress", "--data-dir", str(shared_data)]
    common += ["--store", str(tmp_path / "runs.sqlite")]
    assert main(["eval", "vqa-rad", "--model", "prior", "--protocol", "lmms-eval", *common]) == 0
    out = capsys.readouterr().out
    assert "prompt: medlens@2" in out
    assert "generations from prompt preset medlens@2; scores under lmms-eval apply" in out
    assert main(["eval", "vqa-rad", "--model", "prior", "--harness", "lmms-eval", *common]) == 0
    out = capsys.readouterr().out
    assert "prompt: lmms-eval@2" in out and "apply their harness's rules" not in out
