"""End to end on real VQA-RAD: `medlens calibrate` with the prior baseline and a tiny
Qwen2.5-VL, the profile saved, re-loaded and applied by `pipeline.ask` and `medlens ask`.

De-identification is turned off (``--no-deid``): VQA-RAD is a public, already de-identified
release, and these tests are about calibration.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medlens.cli.main import main
from medlens.errors import CalibrationError
from medlens.trust.calibration import CalibrationProfile


def _calibrate(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code = main(["calibrate", "--no-deid", "--json", *args])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)  # type: ignore[no-any-return]


@pytest.mark.slow
@pytest.mark.data
def test_prior_baseline_profile_on_vqa_rad(
    shared_data: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    summary = _calibrate(
        capsys,
        *("--benchmark", "vqa-rad", "--model", "prior", "--name", "rad-prior"),
        *("--data-dir", str(shared_data), "--score-candidates", "--limit", "200"),
        *("--evaluate", "test", "--out", str(tmp_path / "plots")),
        *("--target-risk", "0.4"),  # a coin-flip baseline answers ~0 % at 5 %: refused
    )
    profile = CalibrationProfile.load("rad-prior")
    fit = profile.fit_stats
    assert (fit["benchmark"], fit["split"], fit["leakage_excluded"]) == (
        "vqa-rad",
        "train",
        "images",
    )
    assert fit["questions"] == 200 and fit["n"] == 200  # the prior always answers yes/no
    assert profile.fingerprint.model == "baseline:prior"
    assert profile.confidence_method == "candidates"
    assert profile.threshold is not None and profile.threshold.target_risk == 0.4
    assert fit["coverage"] >= 0.05
    # Temperature scaling minimises NLL on the fit split, so NLL cannot get worse there.
    assert fit["after"]["nll"] <= fit["before"]["nll"] + 1e-9
    ev = summary["evaluation"]
    assert ev["split"] == "test" and ev["raw"]["n"] == 200
    assert ev["raw"]["counts"]["correct"] + ev["raw"]["counts"]["wrong"] == 200
    assert ev["abstention"]["threshold"] == pytest.approx(profile.threshold)
    assert {p.name for p in (tmp_path / "plots").iterdir()} == {
        "calibration.json",
        "reliability.png",
        "risk_coverage.png",
    }


@pytest.mark.data
def test_calibration_rows_never_share_an_image_with_test(shared_data: Path) -> None:
    from medlens.bench.benchmarks import get_benchmark
    from medlens.bench.calibration import calibration_samples

    bench = get_benchmark("vqa-rad")
    args = argparse.Namespace(
        data_dir=str(shared_data), kind="closed", limit=None, leakage="images"
    )
    chosen, prior_rows = calibration_samples(bench, "train", args)
    test_images = {s.images[0] for s in bench.load("test", str(shared_data))}
    assert len(chosen) > 500
    assert not {s.images[0] for s in chosen} & test_images
    # The prior baseline is fitted on train rows other than the calibration questions.
    assert not {s.id for s in chosen} & {s.id for s in prior_rows}


@pytest.mark.data
def test_same_split_for_fit_and_evaluation_is_refused(
    shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["calibrate", "--benchmark", "slake", "--model", "prior", "--name", "x"]
        + ["--data-dir", str(shared_data), "--split", "validation", "--evaluate", "validation"]
    )
    assert code == 2
    assert "same split ('validation')" in capsys.readouterr().err


@pytest.mark.data
def test_slake_uses_its_validation_split(
    shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = _calibrate(
        capsys,
        *("--benchmark", "slake", "--model", "prior", "--name", "slake-prior"),
        *("--data-dir", str(shared_data), "--limit", "80", "--method", "histogram"),
        *("--min-coverage", "0"),
    )
    fit = summary["profile"]["fit"]
    assert fit["split"] == "validation" and "leakage_excluded" not in fit
    assert summary["profile"]["method"] == "histogram"


@pytest.fixture(scope="module")
def tiny_qwen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    from medlens.testing.tiny import build_tiny_model

    return build_tiny_model("qwen2_5_vl", tmp_path_factory.mktemp("tiny") / "qwen")


@pytest.mark.slow
@pytest.mark.data
def test_tiny_model_profile_applies_in_ask(
    shared_data: Path, tiny_qwen: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = _calibrate(
        capsys,
        *("--benchmark", "vqa-rad", "--model", str(tiny_qwen), "--name", "rad-tiny"),
        *("--data-dir", str(shared_data), "--score-candidates", "--limit", "40"),
        *("--device", "cpu", "--evaluate", "test"),
        *("--min-coverage", "0"),  # random weights: any threshold is kept, for the test
    )
    profile = CalibrationProfile.load("rad-tiny")
    assert profile.fingerprint.model == summary["profile"]["fingerprint"]["model"]
    assert profile.fit_stats["n"] == 40
    ev = summary["evaluation"]
    assert ev["raw"]["n"] == ev["calibrated"]["n_scored"] == 40  # scoring mode always answers
    assert ev["calibrated"]["nll"] <= ev["raw"]["nll"] + 0.05

    image = str(shared_data / "vqa-rad" / "VQA_RAD Image Folder" / "synpic42202.jpg")
    question = "Is there evidence of an aortic aneurysm?"
    code = main(
        ["ask", image, question, "--model", str(tiny_qwen), "--device", "cpu", "--no-deid"]
        + ["--kind", "closed", "--score-candidates", "--calibration", "rad-tiny", "--json"]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    record = json.loads(out.out)
    confidence = record["confidence"]
    assert confidence["calibrated"] and confidence["profile"] == "rad-tiny"
    assert sum(confidence["candidates"].values()) == pytest.approx(1.0)
    below = confidence["value"] < profile.threshold
    assert record["abstained"] == below
    if below:
        assert "target risk 5%" in record["abstain_reason"]
        assert record["answer"] == "abstain"

    # Other decoding settings than the profile's: refused, saying what differs.
    code = main(
        ["ask", image, question, "--model", str(tiny_qwen), "--device", "cpu", "--no-deid"]
        + ["--kind", "closed", "--calibration", "rad-tiny", "--generate"]
    )
    assert code == 2
    assert "score_candidates=False here vs True in the profile" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.data
def test_pipeline_ask_abstains_below_the_profile_threshold(
    shared_data: Path, tiny_qwen: Path
) -> None:
    """The same profile through the library: forcing the threshold above any confidence makes
    every answer an abstention with a reason; a profile for another model is an error."""
    from dataclasses import replace

    from medlens import pipeline
    from medlens.backends.base import load_backend
    from medlens.types import GenerationOptions

    backend = load_backend(str(tiny_qwen), device="cpu")
    image = str(shared_data / "vqa-rad" / "VQA_RAD Image Folder" / "synpic42202.jpg")
    options = GenerationOptions(score_candidates=True)
    try:
        first = pipeline.ask(
            image,
            "Is the heart enlarged?",
            backend=backend,
            kind="closed",
            options=options,
            deidentify=False,
        )
        assert first.answer.confidence is not None
        fp = pipeline.fingerprint_of(first.prepared, first.generation)
        from medlens.trust.calibration import FitItem, fit_profile
        from medlens.types import Confidence

        rng = np.random.default_rng(0)
        items = [
            FitItem(
                Confidence(
                    float(p), "candidates", candidate_probs={"yes": float(p), "no": 1 - float(p)}
                ),
                bool(rng.uniform() < p),
                None,
            )
            for p in rng.uniform(0.5, 1.0, 50)
        ]
        profile = fit_profile("forced", items, fingerprint=fp, target_risk=0.05, min_coverage=0.0)
        strict = replace(profile, threshold_value=1.01)
        result = pipeline.ask(
            image,
            "Is the heart enlarged?",
            backend=backend,
            kind="closed",
            options=options,
            deidentify=False,
            calibration=strict,
        )
        assert result.answer.abstained and "below threshold 1.01 (target risk 5%)" in str(
            result.answer.abstain_reason
        )
        assert result.to_json()["answer"] == "abstain"
        other = replace(profile, fingerprint=replace(fp, model="another-model"))
        with pytest.raises(CalibrationError, match="model '.*' here vs 'another-model'"):
            pipeline.ask(
                image,
                "Is the heart enlarged?",
                backend=backend,
                kind="closed",
                options=options,
                deidentify=False,
                calibration=other,
            )
    finally:
        backend.close()


@pytest.mark.slow
@pytest.mark.data
def test_the_issue_command_refuses_a_useless_profile_and_eval_shows_coverage(
    shared_data: Path, tmp_path: Path
) -> None:
    """`medlens calibrate --benchmark slake --model prior --target-risk 0.05` (issue 14, item
    2): refused, in the time of a weightless baseline (SLAKE keeps its pixels as published,
    no OCR); kept on request, the profile is strict JSON and `eval --calibration` prints its
    coverage, abstentions and selective accuracy."""
    import os
    import subprocess
    import sys
    import time

    env = {**os.environ, "MEDLENS_DATA": str(shared_data)}

    def medlens(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "medlens.cli.main", *args],
            capture_output=True, text=True, check=False, env=env, cwd=tmp_path, timeout=900,
        )  # fmt: skip

    start = time.monotonic()
    refused = medlens("calibrate", "--benchmark", "slake", "--model", "prior", "--target-risk",
                      "0.05", "--name", "slake-prior", "--no-progress")  # fmt: skip
    took = time.monotonic() - start
    assert refused.returncode == 2, refused.stdout
    assert "would answer 0.0% of the 422 calibration questions" in refused.stderr
    assert "it is useless" in refused.stderr and "Traceback" not in refused.stderr
    assert not (Path(os.environ["MEDLENS_HOME"]) / "profiles" / "slake-prior.json").exists()
    assert took < 300, took  # 13 min 54 s with OCR on every image
    kept = medlens("calibrate", "--benchmark", "slake", "--model", "prior", "--target-risk",
                   "0.05", "--name", "slake-prior", "--min-coverage", "0", "--json")  # fmt: skip
    assert kept.returncode == 0, kept.stderr
    summary = json.loads(kept.stdout, parse_constant=lambda token: pytest.fail(token))
    assert summary["profile"]["fit"]["coverage"] == 0.0
    assert summary["profile"]["fit"]["risk"] is None  # NaN written as null
    path = Path(summary["path"])
    json.loads(path.read_text(), parse_constant=lambda token: pytest.fail(token))
    table = medlens("eval", "slake", "--model", "prior", "--calibration", "slake-prior",
                    "--limit", "30", "--no-baselines", "--no-progress")  # fmt: skip
    assert table.returncode == 0, table.stderr
    line = next(x for x in table.stdout.splitlines() if "calibrated by slake-prior" in x)
    assert "coverage 0.0 %" in line and "abstained" in line and "selective accuracy" in line
    assert "WARNING: the profile answers almost nothing" in line
