"""The public API: four names, lazily imported, and one string swaps the model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import medlens


def test_all_is_the_public_api() -> None:
    assert medlens.__all__ == ["ask", "deidentify", "evaluate", "load_study"]
    for name in medlens.__all__:
        assert callable(getattr(medlens, name)), name
        assert name in dir(medlens)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        medlens.nope  # noqa: B018


def test_importing_medlens_imports_nothing_heavy() -> None:
    code = (
        "import sys, medlens; medlens.__all__; "
        "print(sorted(m for m in ('torch', 'transformers', 'pydicom', 'medlens.pipeline', "
        "'medlens.bench') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.data
def test_one_string_swaps_the_model(shared_data: Path) -> None:
    image = shared_data / "vqa-rad" / "VQA_RAD Image Folder" / "synpic42202.jpg"
    study = medlens.load_study(image)
    clean = medlens.deidentify(study)
    assert clean.deidentified and not study.deidentified
    question = "Is there evidence of an aortic aneurysm?"
    prior = medlens.ask(clean, question, model="prior", kind="closed")
    assert prior.generation.model.startswith("baseline:prior") and prior.answer.kind == "closed"
    rand = medlens.ask(image, question, model="random", kind="closed")
    assert rand.generation.model == "baseline:random(seed=0)"
    assert rand.prepared.studies[0].deidentified  # ask de-identifies by default


@pytest.mark.data
def test_evaluate_runs_the_model_beside_the_baselines(shared_data: Path, tmp_path: Path) -> None:
    outcomes = medlens.evaluate(
        "vqa-rad",
        model="prior",
        store=tmp_path / "runs.sqlite",
        data_dir=str(shared_data / "vqa-rad"),
        limit=4,
        protocols=("medlens",),
    )
    assert [o.run.model for o in outcomes] == ["prior", "no-image", "random"]
    assert all(o.n_total == 4 and o.run.status == "complete" for o in outcomes)
