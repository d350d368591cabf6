"""Evaluation under the trust options: pixels of publisher-de-identified releases kept as
published, calibration profiles at eval, sanity runs and robustness shifts as sibling runs,
and their report sections; on real VQA-RAD rows with scripted and tiny real models."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from medlens import pipeline
from medlens.backends.scripted import ScriptedBackend
from medlens.bench.benchmark import Benchmark, Sample
from medlens.bench.benchmarks import benchmark_names, get_benchmark
from medlens.bench.report import write_report
from medlens.bench.report.samples import write_samples
from medlens.bench.runner import EvalSpec, evaluate
from medlens.bench.spec import pixel_policy
from medlens.bench.store import RunStore
from medlens.cli.main import main
from medlens.errors import ConfigError
from medlens.privacy import DeidPolicy
from medlens.types import Request, View


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
    from medlens.bench.calibration import fit_items
    from medlens.bench.protocols import get_protocol
    from medlens.bench.treatments import item_of
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
    assert profile.fingerprint.task == "closed@3"
    store = RunStore(tmp_path / "runs.sqlite")
    raw_spec = _spec(shared_data, limit=16)
    (raw,) = evaluate(raw_spec, store, progress=False, backend_factory=_calibrated_backend)
    spec = _spec(
        shared_data,
        limit=16,
        calibration="vqa-closed",
        abstain_below=0.7,
        sanity=("no-image",),
        shifts=("blur:radius=2",),
    )
    cal, blind, blurred = evaluate(spec, store, progress=False, backend_factory=_calibrated_backend)
    # The model on blurred images is still the model the profile was fitted on; without
    # images (a baseline wrapping it) it is not, so its answers stay raw.
    for row in store.results(blurred.run.id):
        if row.sample["kind"] == "closed":
            assert row.answer["confidence"]["profile"] == "vqa-closed"
    assert not any(
        (r.answer["confidence"] or {}).get("calibrated") for r in store.results(blind.run.id)
    )

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

    # Per-sample outputs and the HTML report of the calibrated run (issue 14, items 2 and 5):
    # each answer's calibrated confidence and abstention as stored; the run's coverage,
    # abstentions and selective accuracy beside its scores.
    (path,) = write_samples(store, [store.get_run(cal.run.id)], tmp_path / "calibrated.jsonl")
    logged = {r["id"]: r for r in map(json.loads, path.read_text().splitlines())}
    calibrated = [
        r for r in store.results(cal.run.id) if (r.answer["confidence"] or {}).get("calibrated")
    ]
    for row in store.results(cal.run.id):
        assert logged[row.sample_id]["abstained"] is row.answer["abstained"]
        assert logged[row.sample_id]["calibrated"] is (row in calibrated)
    answered = [r for r in calibrated if not r.answer["abstained"]]
    right = sum(r.scores["medlens"]["outcome"] == "correct" for r in answered)
    page = write_report(store, [cal.run.id], tmp_path / "report", n_boot=50).html.read_text()
    coverage = (
        f"<td>{len(calibrated)}</td><td>{100 * len(answered) / len(calibrated):.1f}</td>"
        f"<td>{len(answered)}</td><td>{len(calibrated) - len(answered)}</td>"
        f"<td>{100 * right / len(answered):.1f}</td><td>medlens</td>"
    )
    assert coverage in page
    assert "<th class='l'>abstained</th>" in page  # the sample table's column
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
    from medlens.trust.calibration import CalibrationProfile

    _fit_profile(shared_data, "vqa-closed")
    profile = CalibrationProfile.load("vqa-closed")
    fingerprint = dataclasses.replace(profile.fingerprint, task="choice@2")
    dataclasses.replace(profile, name="choice-only", fingerprint=fingerprint).save()
    argv = ["eval", "vqa-rad", "--model", "prior", "--calibration", "choice-only"]
    argv += ["--data-dir", str(shared_data), "--limit", "4", "--store", str(tmp_path / "r.db")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "fitted on 'choice@2' questions, and none of the 4 vqa-rad samples" in err


# --------------------------------------------------------------------------------------------
# Sanity checks and shifts
# --------------------------------------------------------------------------------------------

SANITY_LIMIT = 12


def _pixels(image: object) -> bytes:
    return np.asarray(image).tobytes()


def _views(samples: list[Sample]) -> dict[str, View]:
    """Each sample's first view as the model sees it with its own, published image."""
    policy = DeidPolicy(ocr="never")
    return {
        s.id: pipeline.prepare(s.images, s.question, deidentify=policy).views[0] for s in samples
    }


class Oracle:
    """A scripted VLM that answers right only when it sees a sample's real image with its
    question (the reference answer, confident), and otherwise says "No." (closed) or
    "unknown" (open) with little confidence: a model that reads the image."""

    def __init__(self, samples: list[Sample]) -> None:
        policy = DeidPolicy(ocr="never")
        self.truth = {}
        for s in samples:
            prepared = pipeline.prepare(s.images, s.question, deidentify=policy)
            self.truth[(prepared.request.question, _pixels(prepared.views[0].image))] = s.answer
        self.backend = ScriptedBackend("oracle-vlm", answers=self.answer, logprobs=self.logprobs)

    def known(self, request: Request) -> str | None:
        if not request.images:
            return None
        return self.truth.get((request.question, _pixels(request.images[0])))

    def answer(self, request: Request) -> str:
        return self.known(request) or ("No." if request.kind == "closed" else "unknown")

    def logprobs(self, request: Request) -> dict[str, float]:
        said = (self.known(request) or "no").strip().lower()
        sure = -0.05 if self.known(request) else -0.6
        return {"yes": sure if said == "yes" else -1.0, "no": sure if said == "no" else -1.0}


def _accuracy(store: RunStore, run_id: str) -> float:
    rows = store.results(run_id)
    return sum(r.scores["medlens"]["outcome"] == "correct" for r in rows) / len(rows)


@pytest.mark.data
def test_sanity_checks_and_shifts_run_beside_the_model(shared_data: Path, tmp_path: Path) -> None:
    from medlens.bench.protocols import get_protocol
    from medlens.bench.report import write_report
    from medlens.trust.probes import make_probe, make_question_shift

    samples = get_benchmark("vqa-rad").load("test", shared_data / "vqa-rad")[:SANITY_LIMIT]
    oracle = Oracle(samples)
    loads: list[int] = []

    def make() -> ScriptedBackend:
        loads.append(1)
        return oracle.backend

    store = RunStore(tmp_path / "runs.sqlite")
    spec = _spec(
        shared_data,
        limit=SANITY_LIMIT,
        sanity=("blank", "noise-image", "swap", "no-image"),
        shifts=("blur:radius=2", "typos:rate=0.2"),
    )
    outcomes = evaluate(spec, store, progress=False, backend_factory=make)
    names = [(o.run.model, o.run.role) for o in outcomes]
    assert names == [
        ("scripted-vlm", "model"),
        ("no-image", "baseline"),
        ("sanity:blank", "sanity"),
        ("sanity:noise-image", "sanity"),
        ("sanity:swap", "sanity"),
        ("shift:blur:radius=2", "shift"),
        ("shift:typos:rate=0.2", "shift"),
    ]
    assert len({o.run.group_id for o in outcomes}) == 1 and len(loads) == 1
    assert outcomes[2].run.config["treatment"] == {"role": "sanity", "spec": "blank"}
    assert all(o.n_new == SANITY_LIMIT and o.run.status == "complete" for o in outcomes)

    # What the model saw, run by run (each run asked the one scripted backend in turn; a
    # request identical to an earlier one is served from the cache and not asked again).
    asked = iter(oracle.backend.requests)
    seen = {o.run.model: [next(asked) for _ in range(o.n_new - o.n_cached)] for o in outcomes}
    assert next(asked, None) is None
    clean, blind, blank, noise, swap, blur = (
        seen[n]
        for n in (
            "scripted-vlm",
            "no-image",
            "sanity:blank",
            "sanity:noise-image",
            "sanity:swap",
            "shift:blur:radius=2",
        )
    )
    views = _views(samples)
    own = {_pixels(v.image) for v in views.values()}
    for sample, c, n, b, x, sw, bl in zip(samples, clean, blind, blank, noise, swap, blur):
        assert c.id == n.id == b.id == x.id == sw.id == bl.id == sample.id
        view = views[sample.id]
        assert _pixels(c.images[0]) == _pixels(view.image)
        assert not n.images and n.question == c.question
        assert b.images[0].size == view.image.size and not np.asarray(b.images[0]).any()
        assert _pixels(x.images[0]) == _pixels(make_probe("noise-image")(view).image)
        assert _pixels(sw.images[0]) != _pixels(view.image)  # never its own image...
        assert _pixels(sw.images[0]) in own  # ...but another question's
        assert _pixels(bl.images[0]) == _pixels(make_probe("blur:radius=2")(view).image)
    assert all(len(seen[o.run.model]) == SANITY_LIMIT for o in outcomes[:-1])
    shift = make_question_shift("typos:rate=0.2")
    misread = [shift(s.question) != s.question for s in samples]
    assert 0 < sum(misread) < SANITY_LIMIT
    # Questions the typos missed are the clean requests again: served from the cache.
    typos = {r.id: r.question for r in seen["shift:typos:rate=0.2"]}
    assert list(typos) == [s.id for s, m in zip(samples, misread) if m]
    assert all(typos[s.id] == shift(s.question) for s, m in zip(samples, misread) if m)

    # Scored against the untouched samples: the oracle is right only on real images.
    medlens = get_protocol("medlens")
    guessed = [
        medlens.score(s, "No." if s.kind == "closed" else "unknown").outcome == "correct"
        for s in samples
    ]
    fallback = sum(guessed) / len(samples)
    accuracy = {o.run.model: _accuracy(store, o.run.id) for o in outcomes}
    assert accuracy["scripted-vlm"] == 1.0
    assert accuracy["sanity:blank"] == accuracy["sanity:noise-image"] == pytest.approx(fallback)
    assert accuracy["no-image"] == accuracy["shift:blur:radius=2"] == pytest.approx(fallback)
    assert accuracy["shift:typos:rate=0.2"] == pytest.approx(
        sum(g if m else 1 for g, m in zip(guessed, misread)) / len(samples)
    )
    for outcome in outcomes[1:]:
        stored = store.results(outcome.run.id)
        assert [r.sample["question"] for r in stored] == [s.question for s in samples]

    # The report: image reliance beside the prior, robustness against the clean run.
    files = write_report(store, [outcomes[0].run.id], tmp_path / "report", n_boot=50)
    sections = json.loads(files.json.read_text())["sections"]
    reliance = sections["Image reliance"][outcomes[0].run.id]
    rows = {r["run"]: r for r in reliance["rows"]}
    assert list(rows) == ["scripted-vlm", "no-image", "blank", "noise-image", "swap"]
    assert rows["blank"]["image_reliance"] == pytest.approx(1.0 - fallback)
    assert rows["swap"]["accuracy"] == pytest.approx(accuracy["sanity:swap"])
    robust = sections["Robustness"][outcomes[0].run.id]
    shifted = {r["shift"]: r for r in robust["rows"]}
    assert list(shifted) == ["blur:radius=2", "typos:rate=0.2"]
    assert shifted["blur:radius=2"]["delta_accuracy"] == pytest.approx(fallback - 1.0)
    assert robust["clean"]["accuracy"] == 1.0
    assert all(np.isfinite(r["ece"]) and np.isfinite(r["auroc"]) for r in robust["rows"])
    page = files.html.read_text()
    assert "sanity:swap" in page and "Robustness" in page and "drop (points)" in page

    # Resuming the finished group runs nothing again.
    n_asked = len(oracle.backend.requests)
    again = evaluate(spec, store, resume=True, progress=False, backend_factory=make)
    assert [o.run.id for o in again] == [o.run.id for o in outcomes]
    assert sum(o.n_new for o in again) == 0 and len(oracle.backend.requests) == n_asked
    store.close()


@pytest.mark.data
def test_swap_is_a_seeded_derangement_of_distinct_images(shared_data: Path) -> None:
    from medlens.bench.treatments import swap_images

    samples = get_benchmark("vqa-rad").load("test", shared_data / "vqa-rad")
    swapped = swap_images(samples, seed=0)

    def content(source: str | bytes) -> bytes:
        return Path(source).read_bytes() if isinstance(source, str) else source

    assert set(swapped) == {s.id for s in samples}
    assert all(content(swapped[s.id][0]) != content(s.images[0]) for s in samples)
    # Questions on one image see one other image; every image is shown to someone.
    by_image: dict[str, set[str | bytes]] = {}
    for s in samples:
        by_image.setdefault(str(s.images[0]), set()).add(swapped[s.id][0])
    assert all(len(shown) == 1 for shown in by_image.values())
    assert {v[0] for v in swapped.values()} == {s.images[0] for s in samples}
    assert swap_images(samples, seed=0) == swapped
    assert swap_images(samples, seed=1) != swapped
    one_image = [s for s in samples if s.images == samples[0].images]
    with pytest.raises(ConfigError, match="raise --limit"):
        swap_images(one_image)


def test_probe_names_are_checked_before_any_run() -> None:
    from medlens.bench.treatments import split_probe_list
    from medlens.errors import UnknownNameError

    assert split_probe_list("blur:radius=2,typos:rate=0.1,seed=1,paraphrase") == (
        "blur:radius=2",
        "typos:rate=0.1,seed=1",
        "paraphrase",
    )
    spec = EvalSpec(
        ("vqa-rad",),
        model="prior",
        sanity=("swap", "blank", "blank"),
        shifts=("jpeg:quality=10", "gaussian-noise:sigma=0.1", "typos:seed=1,rate=0.05"),
    )
    assert spec.sanity == ("swap", "blank")
    assert spec.shifts == ("jpeg:quality=10", "gaussian-noise:sigma=0.1", "typos:rate=0.05,seed=1")
    with pytest.raises(UnknownNameError, match="Did you mean 'noise-image'"):
        EvalSpec(("vqa-rad",), model="prior", sanity=("noise",))
    with pytest.raises(UnknownNameError, match="Unknown --shift 'blank'"):
        EvalSpec(("vqa-rad",), model="prior", shifts=("blank",))
    with pytest.raises(ConfigError, match="'blur' takes radius, not sigma"):
        EvalSpec(("vqa-rad",), model="prior", shifts=("blur:sigma=2",))


# --------------------------------------------------------------------------------------------
# Pairs (MediConfusion layout, built from real VQA-RAD images)
# --------------------------------------------------------------------------------------------


@pytest.mark.data
def test_pair_scores_in_the_report(shared_data: Path, tmp_path: Path) -> None:
    import shutil

    from medlens.bench.report import write_report

    root = tmp_path / "MediConfusion"
    (root / "images").mkdir(parents=True)
    source = sorted((shared_data / "vqa-rad" / "VQA_RAD Image Folder").glob("*.jpg"))[:6]
    for image in source:
        shutil.copy(image, root / "images" / image.name)
    pairs = [
        {
            "id": str(i),
            "question": "Which finding does this image show?",
            "option_A": "Effusion",
            "option_B": "Pneumothorax",
            "im_1": source[2 * i].name,
            "im_2": source[2 * i + 1].name,
            "answer_1": "A",
            "answer_2": "B",
        }
        for i in range(3)
    ]
    (root / "dataset.json").write_text(json.dumps(pairs))
    # Reads the images of pairs 0 and 1 (right on both sides), guesses "A" on pair 2.
    known = get_benchmark("mediconfusion").load("test", root)[:4]
    views = _views(known)
    seen = {_pixels(views[s.id].image): "AB"[s.metadata["side"] - 1] for s in known}

    def answer(request: Request) -> str:
        return seen.get(_pixels(request.images[0]), "A") if request.images else "A"

    store = RunStore(tmp_path / "runs.sqlite")
    spec = EvalSpec(
        ("mediconfusion",),
        model="scripted-vlm",
        backend="scripted",
        data_dir=str(root),
        protocols=("medlens",),
        baselines=False,
        sanity=("no-image",),
    )
    model, blind = evaluate(
        spec, store, progress=False, backend_factory=lambda: ScriptedBackend(answers=answer)
    )
    files = write_report(store, [model.run.id], tmp_path / "report", n_boot=50)
    numbers = json.loads(files.json.read_text())["sections"]["Pairs"]
    assert numbers[model.run.id] == {"pairs": 3, "set_accuracy": 2 / 3, "confusion": 1 / 3}
    assert numbers[blind.run.id] == {"pairs": 3, "set_accuracy": 0.0, "confusion": 1.0}
    assert "set accuracy %" in files.html.read_text()
    store.close()


@pytest.mark.data
def test_no_image_runs_once_when_asked_as_baseline_and_sanity_check(
    shared_data: Path, tmp_path: Path
) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    spec = _spec(shared_data, model="prior", backend=None, limit=4, baselines=True)
    spec = dataclasses.replace(spec, sanity=("no-image", "blank"))
    runs = [(o.run.model, o.run.role) for o in evaluate(spec, store, progress=False)]
    assert runs == [
        ("prior", "model"),
        ("no-image", "baseline"),
        ("random", "baseline"),
        ("sanity:blank", "sanity"),
    ]
    store.close()
