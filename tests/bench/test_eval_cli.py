"""``medlens eval`` and ``medlens report`` as a user types them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from medlens.bench.store import RunStore
from medlens.cli.main import main
from tests.bench.judge_server import JudgeServer


@pytest.mark.data
def test_eval_then_report(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "runs.sqlite"
    code = main(
        [
            "eval",
            "vqa-rad,slake",
            "--model",
            "prior",
            "--limit",
            "10",
            "--data-dir",
            str(shared_data),
            "--protocol",
            "medlens,llava-med",
            "--store",
            str(store),
            "--out",
            str(tmp_path / "report"),
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    db = RunStore(store)
    runs = db.runs()
    assert len(runs) == 6  # 2 benchmarks x (prior model, no-image, random)
    assert {(r.benchmark, r.model) for r in runs} == {
        (b, m) for b in ("vqa-rad", "slake") for m in ("prior", "no-image", "random")
    }
    for run in runs:  # the summary names every run, under each protocol, with its time
        assert len(re.findall(rf"^{run.benchmark}\s+{run.id}\s", out, flags=re.MULTILINE)) == 2
    assert "95% CI" in out and str(store) in out

    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert {r["benchmark"] for r in report["runs"]} == {"vqa-rad", "slake"}
    assert len(report["runs"]) == 6

    model = next(r for r in runs if r.role == "model" and r.benchmark == "slake")
    code = main(
        [
            "report",
            model.id[:7],
            "--store",
            str(store),
            "--protocol",
            "lmms-eval",
            "--out",
            str(tmp_path / "again"),
        ]
    )
    assert code == 0
    again = json.loads((tmp_path / "again" / "report.json").read_text())
    assert list(again["protocols"]) == ["lmms-eval"]
    assert [r["model"] for r in again["runs"]] == ["prior", "no-image", "random"]
    assert "lmms-eval" in db.get_run(model.id).protocols

    assert main(["report", "--list", "--store", str(store)]) == 0
    listing = capsys.readouterr().out
    assert all(r.id in listing for r in runs) and "10/10" in listing

    # Resuming a complete run does no work and changes nothing.
    before = {r.id: db.count(r.id) for r in runs}
    assert (
        main(
            [
                "eval",
                "vqa-rad,slake",
                "--model",
                "prior",
                "--limit",
                "10",
                "--data-dir",
                str(shared_data),
                "--store",
                str(store),
                "--resume",
                "--no-progress",
            ]
        )
        == 0
    )
    assert {r.id: db.count(r.id) for r in db.runs()} == before
    db.close()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["eval", "vqa-rd", "--model", "prior"],
            "Unknown benchmark 'vqa-rd'. Did you mean 'vqa-rad'",
        ),
        (["eval", "vqa-rad", "--model", "prior", "--protocol", "medlen"], "Did you mean 'medlens'"),
        (["eval", "vqa-rad", "--model", "prior", "--limit", "0"], "--limit must be 1 or more"),
        (["eval", "vqa-rad", "--model", "prior", "--resume", "0123abcd"], "Run '0123abcd' is not"),
        (["report"], "Name the run(s) to report"),
        (["report", "0123abcd"], "Run '0123abcd' is not"),
    ],
)
def test_user_errors_are_one_clear_line(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([*argv, "--store", str(tmp_path / "runs.sqlite")])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_help_lists_both_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "eval" in out and "report" in out


@pytest.mark.data
def test_sanity_flag_alone_runs_every_check(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["eval", "vqa-rad", "--model", "prior", "--limit", "6", "--sanity", "--no-baselines"]
    argv += ["--data-dir", str(shared_data), "--store", str(tmp_path / "r.db"), "--no-progress"]
    assert main(argv) == 0
    db = RunStore(tmp_path / "r.db")
    runs = db.runs()
    db.close()
    assert sorted((r.model, r.role) for r in runs) == [
        ("no-image", "baseline"),
        ("prior", "model"),
        ("sanity:blank", "sanity"),
        ("sanity:noise-image", "sanity"),
        ("sanity:swap", "sanity"),
    ]
    assert "sanity:swap" in capsys.readouterr().out


@pytest.mark.data
def test_the_prior_grounds_slake_labels_on_their_median_train_box(
    shared_data: Path, tmp_path: Path
) -> None:
    """The grounding floor that needs no image: each label's median train box. Scored under
    medlens (which read the parser's label, not the boxes, before medlens@2) as under every
    harness protocol; its hits are those of the median boxes computed here."""
    import statistics

    from PIL import Image

    from medlens.bench.benchmarks import get_benchmark
    from medlens.types import box_iou

    argv = ["eval", "slake-grounding", "--model", "prior", "--no-baselines", "--no-progress"]
    argv += ["--data-dir", str(shared_data), "--store", str(tmp_path / "r.db")]
    argv += ["--protocol", "medlens,llava-med-fixed"]
    assert main(argv) == 0
    db = RunStore(tmp_path / "r.db")
    (run,) = db.runs()
    results = db.results(run.id)
    db.close()
    hits = {r.sample_id for r in results if r.scores["medlens"]["outcome"] == "correct"}
    assert hits == {
        r.sample_id for r in results if r.scores["llava-med-fixed"]["outcome"] == "correct"
    }

    bench = get_benchmark("slake-grounding")
    fractions: dict[str, list[list[float]]] = {}
    for sample in bench.load("train", shared_data):
        width, height = Image.open(sample.images[0]).size
        for b in sample.metadata["boxes"]:
            x0, y0, x1, y1 = b["box"]
            fractions.setdefault(b["label"].lower(), []).append(
                [x0 / width, y0 / height, x1 / width, y1 / height]
            )
    expected = set()
    for sample in bench.load("test", shared_data):
        found = fractions.get(sample.metadata["label"].lower())
        if not found:
            continue
        width, height = Image.open(sample.images[0]).size
        median = [statistics.median(f[i] for f in found) for i in range(4)]
        box = (median[0] * width, median[1] * height, median[2] * width, median[3] * height)
        if box_iou(box, tuple(sample.metadata["boxes"][0]["box"])) >= 0.5:
            expected.add(sample.id)
    assert hits == expected and 0.15 < len(hits) / len(results) < 0.35


@pytest.mark.slow
@pytest.mark.data
def test_eval_tiny_model_with_sanity_and_shifts(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from medlens.testing.tiny import build_tiny_model

    model = build_tiny_model("qwen2_5_vl", tmp_path / "tiny-qwen")
    argv = ["eval", "vqa-rad", "--model", str(model), "--limit", "4", "--protocol", "medlens"]
    argv += ["--sanity", "blank,swap", "--shift", "blur:radius=2,typos:rate=0.5,seed=1"]
    argv += ["--data-dir", str(shared_data), "--store", str(tmp_path / "r.db")]
    argv += ["--out", str(tmp_path / "report"), "--no-progress", "--device", "cpu"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    db = RunStore(tmp_path / "r.db")
    runs = {r.model: r for r in db.runs()}
    assert set(runs) == {
        str(model),
        "prior",
        "no-image",
        "random",
        "sanity:blank",
        "sanity:swap",
        "shift:blur:radius=2",
        "shift:typos:rate=0.5,seed=1",
    }
    assert all(r.status == "complete" and db.count(r.id) == 4 for r in runs.values())
    # Each sibling's row shows its change from the model's overall score.
    for name in ("sanity:blank", "shift:blur:radius=2"):
        row = next(line for line in out.splitlines() if f" {name} " in line)
        assert re.search(r"\s[+-]\d+\.\d\s", row)
    sections = json.loads((tmp_path / "report" / "report.json").read_text())["sections"]
    model_run = runs[str(model)].id
    reliance = [r["run"] for r in sections["Image reliance"][model_run]["rows"]]
    assert reliance == [str(model), "no-image", "blank", "swap"]
    shifted = [r["shift"] for r in sections["Robustness"][model_run]["rows"]]
    assert shifted == ["blur:radius=2", "typos:rate=0.5,seed=1"]
    db.close()


def test_help_copy_of_the_sanity_checks_matches_the_runner() -> None:
    """``medlens eval --help`` names the default checks without importing the runner."""
    from medlens.bench.treatments import SANITY_CHECKS
    from medlens.cli.eval import SANITY

    assert SANITY == SANITY_CHECKS


@pytest.mark.slow
@pytest.mark.data
def test_eval_with_the_lmms_eval_harness_reproduces_its_prompts_and_generations(
    shared_data: Path, tmp_path: Path
) -> None:
    """``--harness lmms-eval``: the stored prompts are the message lists lmms-eval's SLAKE
    task builds (tests/tasks/golden/harness), and the answers are what a plain greedy
    ``generate`` loop fed those messages returns."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from medlens import pipeline
    from medlens.bench.benchmarks import get_benchmark
    from medlens.bench.treatments import item_of
    from medlens.testing.tiny import build_tiny_model

    golden_file = Path(__file__).parents[1] / "tasks" / "golden" / "harness"
    golden = json.loads((golden_file / "upstream_prompts.json").read_text())["lmms-eval"]
    expected = {c["id"]: c["messages"] for c in golden["cases"]}
    model = build_tiny_model("qwen2_5_vl", tmp_path / "tiny-qwen")
    argv = ["eval", "slake", "--model", str(model), "--harness", "lmms-eval", "--limit", "11"]
    argv += ["--no-baselines", "--data-dir", str(shared_data), "--store", str(tmp_path / "r.db")]
    argv += ["--no-progress", "--device", "cpu"]
    assert main(argv) == 0
    db = RunStore(tmp_path / "r.db")
    (run,) = db.runs()
    assert tuple(run.protocols) == ("lmms-eval",)
    assert run.config["prompt"]["preset"] == "lmms-eval"
    stored = {r.sample_id: r for r in db.results(run.id)}
    db.close()
    assert set(expected) <= set(stored)

    def render(messages: list[dict[str, object]]) -> str:
        return "\n\n".join(
            f"[{m['role']}] "
            + "\n".join("<image>" if p["type"] == "image" else p["text"] for p in m["content"])  # type: ignore[index, union-attr]
            for m in messages
        )

    for sample_id, messages in expected.items():
        assert stored[sample_id].prompt == render(messages)

    # A plain loop on the same images, fed lmms-eval's messages, answers the same.
    processor = AutoProcessor.from_pretrained(model)
    hf = AutoModelForImageTextToText.from_pretrained(model, torch_dtype=torch.float32)
    samples = {s.id: s for s in get_benchmark("slake").load("test", str(shared_data))[:11]}
    for sample_id, messages in expected.items():
        prepared = pipeline.prepare(
            item_of(samples[sample_id]).sources,
            samples[sample_id].question,
            kind=samples[sample_id].kind,
            prompt="lmms-eval",
            deidentify=False,
        )
        chat = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        inputs = processor(text=[chat], images=prepared.request.images, return_tensors="pt")
        with torch.inference_mode():
            out = hf.generate(**inputs, max_new_tokens=32, do_sample=False)
        text = processor.batch_decode(
            out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True
        )[0]
        assert stored[sample_id].raw == text, sample_id


@pytest.mark.data
def test_tables_say_what_n_marks_and_delta_mean_and_report_warns_on_mixed_samples(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The eval table of issue 14 (item 6): per-protocol n (llava-med scores fewer questions),
    the known-buggy protocols marked, Δ labelled with its sign, an IoU column; `report A B`
    of a 20- and a 50-question run says they are not comparable."""
    store = tmp_path / "runs.sqlite"
    common = ["--data-dir", str(shared_data), "--store", str(store), "--no-progress"]
    code = main(["eval", "vqa-rad", "--model", "prior", "--limit", "50", *common])
    out = capsys.readouterr().out
    assert code == 0
    header = out.splitlines()[0]
    assert re.search(r"\bIoU\b", header) and "Δ pts" in header
    rows = [line.split() for line in out.splitlines() if line.startswith("vqa-rad ")]
    first_release = next(r for r in rows if r[3] == "llava-med-ad758b6†")
    scored, stored = map(int, first_release[-2].split("/"))
    assert stored == 50 and scored < 50  # LLaVA-Med before PR #35 drops wrong closed answers
    assert next(r for r in rows if r[3] == "llava-med†")[-2] == "50/50"  # upstream now
    assert next(r for r in rows if r[3] == "llava-med-fixed")[-2] == "50/50"
    assert "†llava-med: reproduces known bugs" in out and "†medevalkit:" in out
    assert (
        "llava-med-ad758b6: reproduces known bugs of the published code, as the literature ran it; llava-med-fixed"
        in out
    )
    assert "Δ pts: this run's overall minus the model's" in out
    assert "n: questions the protocol scored / answers stored" in out

    main(["eval", "vqa-rad", "--model", "prior", "--limit", "20", "--no-baselines", *common])
    capsys.readouterr()
    db = RunStore(store)
    big, small = sorted((r for r in db.runs() if r.role == "model"), key=lambda r: -db.count(r.id))
    db.close()
    code = main(["report", big.id, small.id, "--store", str(store), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 0
    assert f"{big.id}: 50, {small.id}: 20; 20 in common" in err and "not comparable" in err


@pytest.mark.data
def test_eval_with_a_judge_scores_medevalkit_judge_and_records_the_judge(
    shared_data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    judge_server: JudgeServer,
) -> None:
    """``medlens eval --judge URL``: medevalkit-judge is scored beside the rule protocols
    through a real loopback judge, the run records who judged, and a resumed run asks the
    judge nothing it was asked before (verdicts cached in the run store)."""
    url = f"http://127.0.0.1:{judge_server.server_address[1]}/v1"
    store = tmp_path / "runs.sqlite"
    argv = ["eval", "vqa-rad", "--model", "prior", "--limit", "20", "--no-baselines"]
    argv += ["--protocol", "medevalkit", "--judge", url, "--data-dir", str(shared_data)]
    argv += ["--store", str(store), "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    db = RunStore(store)
    (run,) = db.runs()
    results = db.results(run.id)
    db.close()
    assert tuple(run.protocols) == ("medevalkit", "medevalkit-judge")
    judge = run.config["judge"]
    assert (judge["model"], judge["backend"], judge["endpoint"]) == ("judge-model", "openai", url)
    assert "get_compare_messages" in judge["prompt"]
    assert run.config["protocol_versions"]["medevalkit-judge"] == "9b12e3b-judge.1"
    judged = [r for r in results if "judge" in r.scores["medevalkit-judge"]["metrics"]]
    open_questions = [r for r in results if r.sample["answers"][0].lower() not in ("yes", "no")]
    assert len(judged) == len(open_questions) > 0
    assert len(judge_server.prompts) == len(
        {(r.sample["question"], r.raw.lower().strip()) for r in open_questions}
    )
    assert f"{run.id} medevalkit-judge verdicts by judge-model (openai at {url}" in out
    assert re.search(r"medevalkit-judge\s", out)

    asked = len(judge_server.prompts)
    assert main([*argv, "--resume"]) == 0
    assert len(judge_server.prompts) == asked
    report = tmp_path / "report"
    assert main(["report", run.id, "--store", str(store), "--out", str(report)]) == 0
    written = json.loads((report / "report.json").read_text())
    assert (
        "MedEvalKit with use_llm_judge" in written["protocols"]["medevalkit-judge"]["description"]
    )
    assert written["runs"][0]["config"]["judge"] == judge


@pytest.mark.data
def test_eval_with_a_judged_protocol_and_no_judge_fails_before_any_run(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "runs.sqlite"
    argv = ["eval", "vqa-rad", "--model", "prior", "--protocol", "medevalkit-judge"]
    assert main([*argv, "--data-dir", str(shared_data), "--store", str(store)]) == 2
    assert "pass --judge URL_OR_ID" in capsys.readouterr().err
    db = RunStore(store)
    assert db.runs() == []
    db.close()
