"""Evaluation under the trust options: pixels of publisher-de-identified releases kept as
published, calibration profiles at eval, sanity runs and robustness shifts as sibling runs,
and their report sections; on real VQA-RAD rows with scripted and tiny real models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medlens import pipeline
from medlens.backends.scripted import ScriptedBackend
from medlens.bench.benchmark import Benchmark
from medlens.bench.benchmarks import benchmark_names, get_benchmark
from medlens.bench.runner import EvalSpec, evaluate, pixel_policy
from medlens.bench.store import RunStore
from medlens.cli.main import main
from medlens.errors import ConfigError
from medlens.privacy import DeidPolicy
from medlens.types import Request


def _yes(request: Request) -> str:
    return "Yes." if request.kind == "closed" else "brain"


def _spec(shared_data: Path, **kw: object) -> EvalSpec:
    options: dict[str, object] = {
        "model": "scripted-vlm",
        "backend": "scripted",
        "limit": 6,
        "data_dir": str(shared_data / "vqa-rad"),
        "protocols": ("medlens",),
        "baselines": False,
    }
    options.update(kw)
    return EvalSpec(("vqa-rad",), **options)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Pixels of publisher-de-identified releases
# --------------------------------------------------------------------------------------------


def test_every_shipped_benchmark_is_a_publisher_deidentified_release() -> None:
    assert Benchmark.deidentified_release is False  # a new benchmark must opt in
    assert set(benchmark_names()) >= {"vqa-rad", "slake", "pathvqa", "pmc-vqa", "iu-xray"}
    for name in benchmark_names():
        assert get_benchmark(name).deidentified_release is True, name


def test_pixel_policy_follows_the_release_unless_overridden() -> None:
    vqa_rad = get_benchmark("vqa-rad")

    class InHouse(Benchmark):
        name = "in-house"

    policy, record = pixel_policy(EvalSpec(("vqa-rad",), model="prior"), vqa_rad)
    assert isinstance(policy, DeidPolicy) and policy.ocr == "never"
    assert record == {
        "deidentify": True,
        "ocr": "never",
        "ocr_source": "benchmark",
        "pixels": "unchanged: publisher-de-identified release",
    }
    policy, record = pixel_policy(EvalSpec(("x",), model="prior"), InHouse())
    assert isinstance(policy, DeidPolicy) and policy.ocr == "auto"
    assert record["ocr_source"] == "benchmark" and "OCR" in record["pixels"]
    policy, record = pixel_policy(EvalSpec(("x",), model="prior", deid_ocr="always"), vqa_rad)
    assert isinstance(policy, DeidPolicy) and policy.ocr == "always"
    assert record["ocr_source"] == "--deid-ocr"
    policy, record = pixel_policy(EvalSpec(("x",), model="prior", deidentify=False), vqa_rad)
    assert policy is False and record["deidentify"] is False
    with pytest.raises(ConfigError, match="--no-deid"):
        EvalSpec(("x",), model="prior", deidentify=False, deid_ocr="auto")
    with pytest.raises(ConfigError, match="--deid-ocr must be one of"):
        EvalSpec(("x",), model="prior", deid_ocr="sometimes")


@pytest.mark.data
def test_vqa_rad_pixels_reach_the_model_as_published(shared_data: Path, tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    seen: list[ScriptedBackend] = []

    def make() -> ScriptedBackend:
        seen.append(ScriptedBackend("scripted-vlm", answers=_yes))
        return seen[-1]

    (outcome,) = evaluate(_spec(shared_data), store, progress=False, backend_factory=make)
    samples = get_benchmark("vqa-rad").load("test", shared_data / "vqa-rad")[:6]
    for sample, request in zip(samples, seen[0].requests):
        published = pipeline.prepare(sample.images, sample.question, deidentify=False)
        assert np.array_equal(np.asarray(request.images[0]), np.asarray(published.views[0].image))
        assert request.deidentified
    for row in store.results(outcome.run.id):
        (pixels,) = [r for r in row.answer["deidentification"] if r["action"] == "pixel-redaction"]
        assert pixels["searched"] is False and pixels["reason"] == "ocr=never"
    assert outcome.run.config["pixel_policy"]["ocr"] == "never"

    # --deid-ocr always: the same images are searched by tesseract and their text blacked out.
    spec = _spec(shared_data, limit=2, deid_ocr="always")
    (ocr,) = evaluate(spec, store, progress=False, backend_factory=make)
    for sample, request in zip(samples, seen[1].requests):
        published = pipeline.prepare(sample.images, sample.question, deidentify=False)
        assert not np.array_equal(
            np.asarray(request.images[0]), np.asarray(published.views[0].image)
        )
    assert ocr.run.config["pixel_policy"]["ocr_source"] == "--deid-ocr"
    store.close()


def test_deid_ocr_and_no_deid_together_are_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["eval", "vqa-rad", "--model", "prior", "--no-deid", "--deid-ocr", "never"]
    code = main([*argv, "--store", str(tmp_path / "runs.sqlite")])
    err = capsys.readouterr().err
    assert code == 2 and "--no-deid" in err and len(err.strip().splitlines()) == 1


@pytest.mark.data
def test_eval_prints_and_reports_the_pixel_policy(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["eval", "vqa-rad", "--model", "prior", "--limit", "4", "--no-progress"]
    argv += ["--data-dir", str(shared_data), "--store", str(tmp_path / "runs.sqlite")]
    assert main([*argv, "--out", str(tmp_path / "report")]) == 0
    out = capsys.readouterr().out
    assert "vqa-rad: pixels unchanged: publisher-de-identified release" in out
    html = (tmp_path / "report" / "report.html").read_text()
    assert "pixels unchanged: publisher-de-identified release" in html
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert {r["config"]["pixel_policy"]["ocr"] for r in report["runs"]} == {"never"}


# --------------------------------------------------------------------------------------------
# Calibration at eval
# --------------------------------------------------------------------------------------------


def _logprobs(request: Request) -> dict[str, float]:
    """Yes/no log-probabilities that vary with the question, so confidences spread."""
    spread = (sum(map(ord, request.question)) % 9) / 4
    return {"yes": -0.05 - spread, "no": -1.2}


def _calibrated_backend(model: str = "scripted-vlm") -> ScriptedBackend:
    return ScriptedBackend(model, answers=_yes, logprobs=_logprobs)


def _fit_profile(shared_data: Path, name: str, model: str = "scripted-vlm") -> object:
    """A temperature-scaling profile fitted, as ``medlens calibrate`` does, on closed
    VQA-RAD train questions answered by the scripted model."""
    from medlens.bench.protocols import get_protocol
    from medlens.bench.runner import item_of
    from medlens.cli.calibrate import fit_items
    from medlens.trust.calibration import fit_profile

    bench = get_benchmark("vqa-rad")
    train = [s for s in bench.load("train", shared_data / "vqa-rad") if s.kind == "closed"][:40]
    by_id = {s.id: s for s in train}
    results = [
        (r, by_id[r.request.id])
        for r in pipeline.run(
            [item_of(s) for s in train],
            _calibrated_backend(model),
            deidentify=DeidPolicy(ocr="never"),
        )
    ]
    items, _ = fit_items(results, get_protocol("medlens"))
    fingerprint = pipeline.fingerprint_of(results[0][0].prepared, results[0][0].generation)
    profile = fit_profile(name, items, fingerprint=fingerprint, method="temperature")
    profile.save()
    return profile


@pytest.mark.data
def test_calibration_profile_calibrates_the_model_answers_of_its_task(
    shared_data: Path, tmp_path: Path
) -> None:
    from medlens.trust.calibration import CalibrationProfile

    _fit_profile(shared_data, "vqa-closed")
    profile = CalibrationProfile.load("vqa-closed")
    assert profile.fingerprint.task == "closed@1"
    store = RunStore(tmp_path / "runs.sqlite")
    raw_spec = _spec(shared_data, limit=16)
    (raw,) = evaluate(raw_spec, store, progress=False, backend_factory=_calibrated_backend)
    spec = _spec(shared_data, limit=16, calibration="vqa-closed", abstain_below=0.7)
    (cal,) = evaluate(spec, store, progress=False, backend_factory=_calibrated_backend)

    assert cal.run.config["calibration"] == "vqa-closed"
    assert cal.run.config["abstain_below"] == 0.7
    raw_rows = {r.sample_id: r for r in store.results(raw.run.id)}
    kinds = set()
    for row in store.results(cal.run.id):
        confidence = row.answer["confidence"]
        before = raw_rows[row.sample_id].answer["confidence"]
        kinds.add(row.sample["kind"])
        if row.sample["kind"] == "closed":
            assert confidence["calibrated"] and confidence["profile"] == "vqa-closed"
            assert confidence["value"] != pytest.approx(before["value"])
        else:  # open questions: the profile was not fitted on them
            assert confidence is None or not confidence["calibrated"]
        value = confidence["value"] if confidence else None
        assert row.answer["abstained"] == (value is not None and value < 0.7)
    assert kinds == {"closed", "open"}
    assert any(r.answer["abstained"] for r in store.results(cal.run.id))
    assert any(not r.answer["abstained"] for r in store.results(cal.run.id))
    store.close()


@pytest.mark.data
def test_calibration_fingerprint_mismatch_fails_before_any_sample(
    shared_data: Path, tmp_path: Path
) -> None:
    from medlens.errors import CalibrationError

    _fit_profile(shared_data, "other-model", model="another-vlm")
    store = RunStore(tmp_path / "runs.sqlite")
    made: list[ScriptedBackend] = []

    def make() -> ScriptedBackend:
        made.append(_calibrated_backend())
        return made[-1]

    spec = _spec(shared_data, calibration="other-model")
    with pytest.raises(CalibrationError, match="model 'scripted-vlm' here vs 'another-vlm'"):
        evaluate(spec, store, progress=False, backend_factory=make)
    assert made[0].requests == []  # the model answered nothing
    assert all(store.count(r.id) == 0 for r in store.runs())

    with pytest.raises(CalibrationError, match="No calibration profile"):
        evaluate(_spec(shared_data, calibration="nope"), store, progress=False)
    store.close()


@pytest.mark.data
def test_calibration_profile_for_questions_the_benchmark_lacks(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import dataclasses

    from medlens.trust.calibration import CalibrationProfile

    _fit_profile(shared_data, "vqa-closed")
    profile = CalibrationProfile.load("vqa-closed")
    fingerprint = dataclasses.replace(profile.fingerprint, task="choice@1")
    dataclasses.replace(profile, name="choice-only", fingerprint=fingerprint).save()
    argv = ["eval", "vqa-rad", "--model", "prior", "--calibration", "choice-only"]
    argv += ["--data-dir", str(shared_data), "--limit", "4", "--store", str(tmp_path / "r.db")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "fitted on 'choice@1' questions, and none of the 4 vqa-rad samples" in err
