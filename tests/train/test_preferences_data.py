"""Training rows and DPO pairs: same prompts as eval, leakage exclusions, pair builders."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medlens.backends.scripted import ScriptedBackend
from medlens.tasks import get_task
from medlens.train.data import DataSpec, build_train_data, row_request
from medlens.train.preferences import lesion_noised_pairs, noise_boxes, own_wrong_pairs


def test_rows_carry_the_eval_prompt_and_the_answer_the_parser_reads(
    synthetic_samples, synthetic_data
) -> None:
    from medlens import pipeline

    rows = {r["id"]: r for r in synthetic_data.rows}
    closed, box = rows["synthetic/0-closed"], rows["synthetic/0-box"]
    # The prompt is exactly the request eval builds (same template, image placeholder).
    prepared = pipeline.prepare(
        synthetic_samples[0].images[0], "Is the square on the left?", kind="closed"
    )
    texts = [p.text for p in prepared.request.messages[0].content if hasattr(p, "text")]
    assert [p["text"] for p in closed["prompt"][0]["content"] if p["type"] == "text"] == texts
    assert closed["completion"][0]["content"][0]["text"] == "yes"
    target = json.loads(box["completion"][0]["content"][0]["text"])
    assert target == [{"label": "square", "box_2d": [6, 20, 26, 40]}]
    assert box["image_size"] == [64, 64]
    assert synthetic_data.task_versions == sorted(
        get_task(k).prompt_id for k in ("closed", "open", "grounding")
    )
    # Rows turn back into the backend request they came from.
    request = row_request(closed)
    assert request.kind == "closed" and request.candidates == ("yes", "no")
    assert request.options.max_new_tokens == 32 and request.deidentified


def test_own_wrong_pairs_keep_only_wrong_answers(synthetic_data) -> None:
    backend = ScriptedBackend(answers=lambda r: "yes" if r.kind == "closed" else "left")
    pairs = own_wrong_pairs(synthetic_data, backend)
    # "yes" is wrong on the 4 right-hand images, "left" on their open questions; grounding
    # answers without a box are wrong on all 8.
    by_kind = {k: [p for p in pairs if p["id"].endswith(k)] for k in ("closed", "open", "box")}
    assert len(by_kind["closed"]) == 4 and len(by_kind["open"]) == 4
    assert len(by_kind["box"]) == 8
    pair = by_kind["closed"][0]
    assert pair["chosen"][0]["content"][0]["text"] == "no"
    assert pair["rejected"][0]["content"][0]["text"] == "yes"
    assert pair["source"] == "own-wrong"


def test_lesion_noised_pairs_ask_with_the_region_noised(synthetic_data) -> None:
    seen = []

    def answer(request):  # type: ignore[no-untyped-def]
        image = np.asarray(request.images[0].convert("L"), dtype=float)
        seen.append(image)
        return "no" if request.kind == "closed" else "right"

    pairs = lesion_noised_pairs(synthetic_data, ScriptedBackend(answers=answer))
    assert {p["source"] for p in pairs} == {"lesion-noised"}
    assert all(not p["id"].endswith("box") for p in pairs)  # grounding rows give no pair
    assert len(pairs) == 8  # the left-hand images, closed and open
    # The square (220) is gone from what the model saw: its region is noise around the mean.
    assert all(im[20:40].max() < 255 and abs(im[25:35, 10:20].mean() - 220) > 60 for im in seen[:1])


def test_noise_boxes_changes_only_the_boxes() -> None:
    from PIL import Image

    image = Image.fromarray(np.full((32, 32, 3), 100, dtype=np.uint8))
    noised = np.asarray(noise_boxes(image, [[4, 4, 12, 12]], seed=0)).astype(int)
    assert (noised[:4] == 100).all() and (noised[12:] == 100).all()
    assert noised[4:12, 4:12].std() > 0 or (noised[4:12, 4:12] == 100).all()


@pytest.mark.data
def test_vqa_rad_leakage_exclusions(shared_data) -> None:
    from medlens.bench.benchmarks import get_benchmark
    from medlens.bench.quality import image_key, question_key

    bench = get_benchmark("vqa-rad")
    test = bench.load("test", shared_data)
    spec = DataSpec(("vqa-rad",), data_dir=str(shared_data), kinds=("closed",), limit=None)
    from medlens.train.data import exclude_leakage

    train = bench.load("train", shared_data)
    kept, excluded = exclude_leakage(bench, train, test, test_images=False)
    leaked = {(image_key(s), question_key(s.question)) for s in test}
    assert not [t for t in kept if (image_key(t), question_key(t.question)) in leaked]
    assert excluded["test-leakage:questions"] >= 14  # the verbatim pairs, plus frame rewrites
    disjoint, excluded = exclude_leakage(bench, train, test, test_images=True)
    test_images = {image_key(s) for s in test}
    assert disjoint and not [t for t in disjoint if image_key(t) in test_images]
    assert excluded["test-images"] > 0
    data = build_train_data(
        DataSpec(("vqa-rad",), data_dir=str(shared_data), exclude_test_images=True, limit=3)
    )
    assert data.sources[0].excluded["test-images"] == excluded["test-images"]
    assert len(data) == 3 and spec.kinds == ("closed",)
    repeated = build_train_data(
        DataSpec(
            ("vqa-rad",),
            data_dir=str(shared_data),
            exclude_test_images=True,
            limit=3,
            repeat={"vqa-rad": 2},
        )
    )
    assert [r["id"] for r in repeated.rows] == [r["id"] for r in data.rows] * 2
    assert (repeated.sources[0].rows, repeated.sources[0].repeat) == (3, 2)
