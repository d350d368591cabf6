"""The wired pipeline: load → de-identify → recipe → task → backend → parse → confidence."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medlens import pipeline
from medlens.backends.scripted import ScriptedBackend
from medlens.errors import PrivacyError, StudyError
from medlens.testing.studies import write_ct_series
from medlens.types import Generation


@pytest.fixture(scope="module")
def ct_series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ct_series(tmp_path_factory.mktemp("ct") / "series", slices=12, size=64)


@pytest.fixture()
def png(tmp_path: Path) -> Path:
    path = tmp_path / "xray.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 48), dtype=np.uint8)).save(path)
    return path


def test_ask_deidentifies_and_parses(ct_series: Path) -> None:
    backend = ScriptedBackend(
        answers=lambda request: "Yes, there is a nodule.",
        logprobs=lambda request: {"yes": -0.2, "no": -1.8},
    )
    result = pipeline.ask(ct_series, "Is there a nodule?", backend=backend)
    (request,) = backend.requests
    assert request.deidentified
    assert request.kind == "closed" and request.candidates == ("yes", "no")
    assert request.images, "the model must receive the recipe's images"
    study = result.prepared.studies[0]
    assert study.deidentified and study.audit
    assert all("DEMO" not in str(h.get("PatientName", "")) for h in study.headers)
    answer = result.answer
    assert answer.parsed and answer.text == "yes"
    assert answer.confidence is not None
    assert answer.confidence.value == pytest.approx(1 / (1 + np.exp(-1.6)), abs=1e-6)
    record = result.to_json()
    json.dumps(record, default=str)
    assert record["answer"] == "yes" and record["studies"][0]["modality"] == "CT"


def test_question_phi_is_scrubbed_before_the_model(png: Path) -> None:
    backend = ScriptedBackend(answers=lambda request: "no")
    question = "Does John Smith (MRN 12345678) have a fracture? Seen on 03/14/2021."
    pipeline.ask(png, question, backend=backend, kind="closed")
    sent = backend.requests[0]
    texts = " ".join(p.text for m in sent.messages for p in m.content if hasattr(p, "text"))
    for secret in ("John", "Smith", "12345678", "03/14/2021"):
        assert secret not in texts and secret not in sent.question


def test_no_deid_keeps_study_and_remote_backend_refuses(png: Path) -> None:
    from medlens.backends.openai import OpenAIBackend

    remote = OpenAIBackend("http://127.0.0.1:9/v1", served_model="m", max_retries=0)
    with pytest.raises(PrivacyError, match="de-identif"):
        pipeline.ask(png, "Is there a fracture?", backend=remote, deidentify=False)
    local = ScriptedBackend(answers=lambda request: "yes")
    result = pipeline.ask(png, "Is there a fracture?", backend=local, deidentify=False)
    assert not result.prepared.studies[0].deidentified
    assert result.answer.text == "yes"


def test_abstains_below_threshold(png: Path) -> None:
    backend = ScriptedBackend(
        answers=lambda request: "yes", logprobs=lambda request: {"yes": -0.6, "no": -0.8}
    )
    result = pipeline.ask(png, "Is it normal?", backend=backend, abstain_threshold=0.9)
    assert result.answer.abstained
    assert "below" in (result.answer.abstain_reason or "")
    assert result.to_json()["answer"] == "abstain"


def test_run_batches_caches_and_reports_bad_items(png: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.dcm"
    broken.write_text("not a dicom file")
    items = [
        pipeline.Item(id=f"q{i}", sources=(str(png),), question=f"Is there finding {i}?")
        for i in range(5)
    ]
    items.insert(2, pipeline.Item(id="bad", sources=(str(broken),), question="Is it?"))

    class DictCache:
        def __init__(self) -> None:
            self.store: dict[str, Generation] = {}

        def get(self, key: str) -> Generation | None:
            return self.store.get(key)

        def put(self, key: str, generation: Generation) -> None:
            self.store[key] = generation

    cache = DictCache()
    errors: list[tuple[str, Exception]] = []
    backend = ScriptedBackend(answers=lambda r: "yes" if r.id in {"q0", "q3"} else "no")
    first = list(
        pipeline.run(
            items,
            backend,
            batch_size=2,
            cache=cache,
            on_error=lambda i, e: errors.append((i.id, e)),
        )
    )
    assert [r.request.id for r in first] == ["q0", "q1", "q2", "q3", "q4"]
    assert [r.answer.text for r in first] == ["yes", "no", "no", "yes", "no"]
    assert [e[0] for e in errors] == ["bad"] and isinstance(errors[0][1], StudyError)
    assert len(cache.store) == 5 and len(backend.requests) == 5
    again = list(
        pipeline.run(items[:2], backend, batch_size=4, cache=cache, on_error=lambda i, e: None)
    )
    assert all(r.cached for r in again) and len(backend.requests) == 5
    assert [r.answer.text for r in again] == ["yes", "no"]


def test_request_key_ignores_ids_but_not_pixels(png: Path, tmp_path: Path) -> None:
    backend = ScriptedBackend(answers=lambda r: "yes")
    a = pipeline.prepare(png, "Is there a fracture?", request_id="a").request
    b = pipeline.prepare(png, "Is there a fracture?", request_id="b").request
    other = tmp_path / "other.png"
    Image.fromarray(np.zeros((64, 48), dtype=np.uint8)).save(other)
    c = pipeline.prepare(other, "Is there a fracture?", request_id="a").request
    assert pipeline.request_key(a, backend) == pipeline.request_key(b, backend)
    assert pipeline.request_key(a, backend) != pipeline.request_key(c, backend)


def test_prior_study_views_come_first(ct_series: Path, png: Path) -> None:
    from medlens.study import load_pair

    backend = ScriptedBackend(answers=lambda r: "Yes")
    study = load_pair(png, png)
    result = pipeline.ask(study, "Is it unchanged compared with the prior?", backend=backend)
    texts = [p.text for p in backend.requests[0].messages[-1].content if hasattr(p, "text")]
    joined = " ".join(texts)
    assert joined.index("PRIOR") < joined.index("CURRENT")
    assert len(backend.requests[0].images) == 2
    assert result.prepared.studies[0].prior is not None
    assert result.prepared.studies[0].prior.deidentified


def _medlens(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "medlens.cli.main", *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=cwd,
    )


def test_cli_ask_json_and_clear_errors(png: Path, tmp_path: Path) -> None:
    out = _medlens(
        "ask", str(png), "Is there a fracture?", "--model", "random", "--json", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert record["answer"] in {"yes", "no"} and record["backend"] == "random"
    assert record["studies"][0]["deidentified"] is True
    # The plain answer says what de-identification did to the pixels (medlens issue 12).
    out = _medlens("ask", str(png), "Is there a fracture?", "--model", "random", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    shown = [line for line in out.stdout.splitlines() if line.startswith("De-identification: ")]
    assert len(shown) == 1 and "% of the image redacted" in shown[0], out.stdout
    bad = tmp_path / "notes.dcm"
    bad.write_text("hello")
    out = _medlens("ask", str(bad), "Is there a fracture?", "--model", "prior", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.startswith("medlens ask: error:") and "Traceback" not in out.stderr
    out = _medlens(
        "ask", str(png), "Is it?", "--model", "prior", "--backend", "transformer", cwd=tmp_path
    )
    assert out.returncode == 2 and "Did you mean 'transformers'" in out.stderr


def test_demo_writes_page_with_model_images(tmp_path: Path) -> None:
    out = _medlens("demo", "--out", str(tmp_path / "demo"), "--model", "prior", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "BASELINE 'prior'" in out.stdout and "not a VLM" in out.stdout
    page = (tmp_path / "demo" / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 4
    assert "Is there a nodule in the lungs?" in page
    assert "DEMO^PATIENT" not in page
