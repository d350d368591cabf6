"""medlens-tiny, the demonstration model shipped in the package: it loads by name, is labelled
as what it is wherever it answers, and scores what its training card says it scores."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from medlens.hub import shipped_model

TINY = shipped_model("medlens-tiny")
assert TINY is not None
CARD_SUBSET = "slake-test-first-200"
"""The card's fixed subset (benchmarks/train_tiny.py, ship step): SLAKE test, release order."""


def card() -> dict:  # type: ignore[type-arg]
    return json.loads((TINY.folder / "training_card.json").read_text())  # type: ignore[no-any-return]


def test_the_shipped_weights_are_small_and_carry_their_card() -> None:
    files = {p.name: p.stat().st_size for p in TINY.folder.iterdir()}
    assert "model.safetensors" in files and "config.json" in files
    assert sum(files.values()) <= 15 * 2**20
    record = card()
    assert record["name"] == "medlens-tiny"
    assert record["export"]["dtype"] == "float16"
    assert record["base"] == "init:qwen2_5_vl:tiny"
    sources = {s["benchmark"]: s for s in record["data"]["sources"]}
    assert set(sources) == {"slake", "vqa-rad", "slake-grounding"}
    # image-disjoint VQA-RAD: no train row on a test image
    assert sources["vqa-rad"]["excluded"]["test-images"] > 0
    assert record["hyperparameters"]["sampler"] == "random"


def test_it_is_labelled_a_demonstration_model() -> None:
    from medlens.backends.base import DEMONSTRATION_LABEL, model_label, model_note

    assert model_label("medlens-tiny", "transformers") == DEMONSTRATION_LABEL
    assert model_note("medlens-tiny").startswith("medlens-tiny — a ~5M-parameter demonstration")
    assert "not a clinical model" in model_note("MedLens-Tiny")
    assert model_note("google/medgemma-4b-it") == ""


def test_it_reproduces_the_accuracy_its_card_records(shared_data: Path, tmp_path: Path) -> None:
    """`medlens eval slake --model medlens-tiny --limit 200` gives the card's figures."""
    from medlens.bench.report import summarize
    from medlens.bench.runner import evaluate
    from medlens.bench.spec import EvalSpec
    from medlens.bench.store import RunStore

    recorded = card()["evaluation"][CARD_SUBSET]
    assert recorded["model"] == "medlens-tiny"
    expected = recorded["runs"]["slake"]["model"]
    spec = EvalSpec(
        benchmarks=("slake",),
        model="medlens-tiny",
        limit=recorded["limit"],
        batch_size=16,
        data_dir=str(shared_data),
        protocols=("medlens",),
        baselines=False,
    )
    store = RunStore(tmp_path / "runs.sqlite")
    try:
        (outcome,) = evaluate(spec, store, progress=False)
        headline = summarize(store, outcome.run, ["medlens"]).headline["medlens"]
    finally:
        store.close()
    for metric in ("closed_accuracy", "open_f1", "overall"):
        want, got = expected["headline"][metric], headline[metric].to_dict()
        assert got["n"] == want["n"] > 0, metric
        assert got["value"] == pytest.approx(want["value"], abs=1e-9), metric
    # a model with signal: well above the prior baseline on SLAKE (closed 45.4 %, open F1 29.1 %)
    assert headline["open_f1"].value > 0.5


def test_ask_names_the_model_and_what_it_is(tmp_path: Path) -> None:
    from medlens.cli.demo import EXAMPLES, load_examples
    from medlens.cli.main import main

    example = next(e for e in load_examples() if e["kind"] == "open")
    import contextlib
    import io

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["ask", str(EXAMPLES / example["image"]), example["question"],
                     "--model", "medlens-tiny"]) == 0  # fmt: skip
    text = printed.getvalue()
    assert "Model: medlens-tiny (demonstration model, transformers backend)" in text
    assert "About the model: medlens-tiny — a ~5M-parameter demonstration model" in text


def test_serve_answers_with_it_and_says_what_it_is() -> None:
    """`medlens serve --model medlens-tiny` on a real server on loopback: the answer carries
    the model's name, its label and the sentence that says it is not a clinical model."""
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("fastapi")
    from medlens.cli.demo import EXAMPLES, load_examples
    from medlens.serve import ServeConfig, create_app
    from medlens.serve.live import serve_in_thread

    example = next(e for e in load_examples() if e["kind"] == "open")
    image = (EXAMPLES / example["image"]).read_bytes()
    with serve_in_thread(create_app(ServeConfig(model="medlens-tiny"))) as url:
        for _ in range(240):  # the model loads in the background; /readyz says when
            if httpx.get(f"{url}/readyz", timeout=10).status_code == 200:
                break
            time.sleep(0.25)
        models = httpx.get(f"{url}/v1/models", timeout=60).json()
        assert [m["id"] for m in models["data"]] == ["medlens-tiny"]
        reply = httpx.post(
            f"{url}/v1/analyze",
            files={"file": (example["image"], image)},
            data={"question": example["question"]},
            timeout=120,
        ).json()
    assert reply["model"] == "medlens-tiny"
    assert reply["model_label"] == "demonstration model"
    assert reply["model_note"].endswith("not a clinical model")
    assert reply["answer"]
