"""The HTTP API over real HTTP: a uvicorn server on loopback, httpx as the client.

Each 4xx/5xx path is checked with its status, OpenAI error JSON and message."""

from __future__ import annotations

import base64
import io
import logging
import math
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from medlens.serve.auth import KeyStore
from tests.serve.conftest import BOX, png_bytes, slow_backend


def error_of(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == status and error["type"]
    return str(error["message"])


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def chat_body(image: bytes, question: str = "Is there a nodule?", **extra: object) -> dict:
    content = [
        {"type": "text", "text": question},
        {"type": "image_url", "image_url": {"url": data_url(image)}},
    ]
    return {"model": "scripted", "messages": [{"role": "user", "content": content}], **extra}


# ------------------------------------------------------------------------- operations


def test_health_ready_models_metrics_and_openapi(serve: Callable[..., str]) -> None:
    url = serve()
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{url}/readyz").json() == {"status": "ready", "model": "scripted"}
    models = httpx.get(f"{url}/v1/models").json()
    assert models["object"] == "list" and [m["id"] for m in models["data"]] == ["scripted"]
    schema = httpx.get(f"{url}/openapi.json").json()
    for path in ("/v1/chat/completions", "/v1/analyze", "/v1/models", "/v1/render"):
        assert path in schema["paths"]
    analyze_body = schema["paths"]["/v1/analyze"]["post"]["requestBody"]["content"]
    assert "file" in analyze_body["multipart/form-data"]["schema"]["properties"]
    metrics = httpx.get(f"{url}/metrics").text
    assert 'medlens_requests_total{route="/v1/models",status="200"} 1.0' in metrics
    assert "medlens_ready 1.0" in metrics


def test_readyz_is_503_while_the_model_cannot_load(serve: Callable[..., str]) -> None:
    url = serve(backend=None, model="no-such-model", backend_name="no-such-backend")
    message = error_of(httpx.get(f"{url}/readyz"), 503)
    assert "failed to load" in message and "no-such-backend" in message


def test_unknown_path_is_openai_error_json(serve: Callable[..., str]) -> None:
    assert "/v1" in error_of(httpx.get(f"{serve()}/v2/nothing"), 404)


# ------------------------------------------------------------------------- auth and limits


def test_api_keys_401_without_or_with_a_wrong_key(
    serve: Callable[..., str], tmp_path: Path
) -> None:
    store = KeyStore(tmp_path / "keys.json")
    key = store.add("reader")
    assert key not in (tmp_path / "keys.json").read_text()  # stored hashed only
    url = serve(api_key_file=tmp_path / "keys.json")
    assert "API key" in error_of(httpx.get(f"{url}/v1/models"), 401)
    wrong = {"Authorization": "Bearer " + key[:-2] + "xx"}
    assert "invalid API key" in error_of(httpx.get(f"{url}/v1/models", headers=wrong), 401)
    ok = httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"})
    assert ok.status_code == 200
    assert httpx.get(f"{url}/healthz").status_code == 200  # probes stay open


def test_rate_limit_429_with_retry_after(serve: Callable[..., str]) -> None:
    url = serve(rate_limit_rpm=2)
    assert [httpx.get(f"{url}/v1/models").status_code for _ in range(2)] == [200, 200]
    response = httpx.get(f"{url}/v1/models")
    assert "Rate limit" in error_of(response, 429)
    assert int(response.headers["retry-after"]) >= 1


def test_upload_over_the_size_limit_is_413_before_reading(
    serve: Callable[..., str], png: bytes
) -> None:
    url = serve(max_upload_bytes=10_000)
    response = httpx.post(
        f"{url}/v1/analyze",
        files={"file": ("x.png", b"\0" * (3 << 20))},
        data={"question": "Is there a nodule?"},
    )
    assert "--max-upload-mb" in error_of(response, 413)


def test_chunked_body_over_the_limit_is_413(serve: Callable[..., str]) -> None:
    url = serve(max_upload_bytes=1000)

    def chunks():  # no Content-Length: the limit must hold while streaming
        for _ in range(40):
            yield b"x" * 65536

    response = httpx.post(
        f"{url}/v1/chat/completions", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "larger than this server accepts" in error_of(response, 413)


def test_image_over_the_pixel_limit_is_413(serve: Callable[..., str], png: bytes) -> None:
    url = serve(max_pixels=1000)
    response = httpx.post(
        f"{url}/v1/analyze", files={"file": ("x.png", png)}, data={"question": "Is it normal?"}
    )
    assert "pixels" in error_of(response, 413)


def test_queue_full_is_503_fast_and_timeout_is_504(serve: Callable[..., str], png: bytes) -> None:
    url = serve(backend=slow_backend(1.5), max_concurrency=1, queue_size=0, timeout_s=0.5)
    body = chat_body(png)
    results: list[httpx.Response] = []
    first = threading.Thread(
        target=lambda: results.append(
            httpx.post(f"{url}/v1/chat/completions", json=body, timeout=10)
        )
    )
    first.start()
    import time

    time.sleep(0.2)  # the first request holds the only slot
    started = time.monotonic()
    busy = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=10)
    assert time.monotonic() - started < 0.4
    assert "busy" in error_of(busy, 503) and int(busy.headers["retry-after"]) >= 1
    first.join()
    assert "time-out" in error_of(results[0], 504)


# ------------------------------------------------------------------------- bad requests


def test_analyze_4xx_messages(serve: Callable[..., str], png: bytes) -> None:
    url = serve()
    no_file = httpx.post(f"{url}/v1/analyze", data={"question": "q"}, files={"x": ("a", b"1")})
    assert "'file'" in error_of(no_file, 400)
    no_question = httpx.post(f"{url}/v1/analyze", files={"file": ("x.png", png)})
    assert "question" in error_of(no_question, 400)
    bad_kind = httpx.post(
        f"{url}/v1/analyze", files={"file": ("x.png", png)}, data={"question": "q", "kind": "x"}
    )
    assert "Unknown kind" in error_of(bad_kind, 400)
    not_image = httpx.post(
        f"{url}/v1/analyze", files={"file": ("notes.txt", b"hello " * 100)}, data={"question": "q"}
    )
    assert "format" in error_of(not_image, 415)
    bad_zip = httpx.post(
        f"{url}/v1/analyze",
        files={"file": ("s.zip", b"PK\x03\x04broken")},
        data={"question": "q"},
    )
    assert "zip" in error_of(bad_zip, 400)


def test_chat_4xx_messages(serve: Callable[..., str], png: bytes) -> None:
    url = serve()
    post = lambda body: httpx.post(f"{url}/v1/chat/completions", json=body)
    assert "does not exist" in error_of(post(chat_body(png) | {"model": "gpt-4o"}), 404)
    remote = chat_body(png)
    remote["messages"][0]["content"][1]["image_url"]["url"] = "https://example.org/x.png"
    assert "data URLs" in error_of(post(remote), 400)
    text_only = {"messages": [{"role": "user", "content": "Is there a nodule?"}]}
    assert "No image" in error_of(post(text_only), 400)
    assert "messages" in error_of(post({"model": "scripted"}), 400)
    assert "temperature" in error_of(post(chat_body(png, temperature=9)), 400)


# ------------------------------------------------------------------------- answers


def test_chat_completion_answers_with_structured_extension(
    serve: Callable[..., str], png: bytes
) -> None:
    url = serve()
    response = httpx.post(f"{url}/v1/chat/completions", json=chat_body(png), timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion" and body["model"] == "scripted"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "yes"}
    assert body["medlens"]["kind"] == "closed" and body["medlens"]["answer"] == "yes"
    assert body["medlens"]["deidentification"]  # the study went through privacy


def test_chat_streaming_is_server_sent_events(serve: Callable[..., str], png: bytes) -> None:
    url = serve()
    body = chat_body(png, "Where is the nodule?", kind="grounding", stream=True)
    body["stream_options"] = {"include_usage": True}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=30) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    import json

    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "nodule"
    finals = [c for c in chunks if c["choices"] and c["choices"][0].get("finish_reason")]
    assert finals[0]["medlens"]["boxes"][0]["x0"] == BOX[0]
    assert "usage" in chunks[-1]


def test_openai_client_library_if_installed(serve: Callable[..., str], png: bytes) -> None:
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{serve()}/v1", api_key="unused")
    completion = client.chat.completions.create(**chat_body(png))
    assert completion.choices[0].message.content == "yes"


def test_analyze_grounding_returns_box_views_and_deid(
    serve: Callable[..., str], png: bytes
) -> None:
    url = serve()
    response = httpx.post(
        f"{url}/v1/analyze",
        files={"file": ("patient-name.png", png)},
        data={"question": "Where is the nodule?", "kind": "grounding"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["kind"] == "grounding" and body["answer"] == "nodule" and not body["abstained"]
    box = body["boxes"][0]
    assert (box["x0"], box["y0"], box["x1"], box["y1"]) == BOX and box["label"] == "nodule"
    view = body["views"][0]
    assert view["image"].startswith("data:image/png;base64,") and view["width"] > 0
    assert body["deidentification"] and body["study"]["deidentified"] is True
    assert response.headers["x-request-id"] == body["id"]


def test_analyze_confidence_and_abstention(serve: Callable[..., str], png: bytes) -> None:
    form = {"question": "Is there a nodule?", "kind": "closed"}
    answered = httpx.post(
        f"{serve()}/v1/analyze", files={"file": ("x.png", png)}, data=form, timeout=30
    ).json()
    confidence = answered["confidence"]
    assert answered["answer"] == "yes" and answered["abstained"] is False
    assert confidence["value"] == pytest.approx(1 / (1 + math.exp(-2.3)), abs=1e-3)
    assert confidence["method"] == "candidates" and confidence["calibrated"] is False
    withheld = httpx.post(
        f"{serve(abstain_threshold=0.95)}/v1/analyze",
        files={"file": ("x.png", png)},
        data=form,
        timeout=30,
    ).json()
    assert withheld["abstained"] is True and withheld["answer"] is None
    assert "below threshold 0.95" in withheld["abstain_reason"]


def test_analyze_zip_of_dicom_series_with_prior_leaves_no_files(
    serve: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pydicom")
    from medlens.testing.studies import write_ct_series

    series = write_ct_series(tmp_path / "ct", slices=6, size=64)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(Path(series).iterdir()):
            archive.write(path, f"DOE_JOHN/{path.name}")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    url = serve()
    response = httpx.post(
        f"{url}/v1/analyze",
        files={"file": ("DOE_JOHN.zip", buffer.getvalue()), "prior": ("p.png", png_bytes())},
        data={"question": "Is there a nodule?"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["study"]["modality"] == "CT" and body["study"]["has_prior"] is True
    assert list(scratch.iterdir()) == []  # extracted series removed after the request


def test_render_windows_ct_slices(serve: Callable[..., str], tmp_path: Path) -> None:
    pytest.importorskip("nibabel")
    from medlens.testing.studies import write_ct_nifti

    data = Path(write_ct_nifti(tmp_path / "ct.nii.gz", slices=5, size=32)).read_bytes()
    url = serve()
    stacks = {
        w: httpx.post(
            f"{url}/v1/render", files={"file": ("v", data)}, data={"window": w, "modality": "CT"}
        ).json()
        for w in ("lung", "bone")
    }
    lung, bone = stacks["lung"], stacks["bone"]
    assert lung["modality"] == "CT" and lung["num_slices"] == 5 and len(lung["slices"]) == 5
    assert "lung" in lung["windows"] and lung["window"] == "lung"
    assert lung["slices"][2] != bone["slices"][2]  # the window changes the pixels


def test_logs_carry_ids_and_sizes_not_content(
    serve: Callable[..., str], png: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    url = serve()
    question = "Is there a nodule near Jane Doe's clip?"
    with caplog.at_level(logging.DEBUG):
        response = httpx.post(f"{url}/v1/chat/completions", json=chat_body(png, question))
    assert response.status_code == 200
    text = caplog.text
    assert f"id={response.headers['x-request-id']}" in text and "in=" in text
    assert (
        "Jane" not in text
        and "nodule" not in text
        and base64.b64encode(png)[:40].decode() not in text
    )


def test_cors_is_off_by_default_and_on_for_configured_origins(serve: Callable[..., str]) -> None:
    preflight = {"Origin": "https://pacs.example", "Access-Control-Request-Method": "POST"}
    off = httpx.options(f"{serve()}/v1/analyze", headers=preflight)
    assert "access-control-allow-origin" not in off.headers
    on = httpx.options(
        f"{serve(cors_origins=('https://pacs.example',))}/v1/analyze", headers=preflight
    )
    assert on.headers["access-control-allow-origin"] == "https://pacs.example"


@pytest.mark.slow
def test_model_names_and_prompt_tokens_with_the_openai_client(
    serve: Callable[..., str], png: bytes, tmp_path: Path
) -> None:
    """A model served from a folder answers to its path, the folder's name and its alias,
    and ``usage.prompt_tokens`` counts the prompt the model read (text and image tokens)."""
    openai = pytest.importorskip("openai")
    pytest.importorskip("transformers")
    from medlens.backends.transformers import TransformersBackend
    from medlens.testing.tiny import build_tiny_model

    path = str(build_tiny_model("qwen2_5_vl", tmp_path / "models" / "tiny-qwen"))
    backend = TransformersBackend(path, device="cpu")
    url = serve(backend=backend, model=path, served_model_name="tiny")
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    usages = []
    for name in (path, "tiny-qwen", "tiny"):
        body = chat_body(png) | {"model": name, "max_tokens": 3}
        completion = client.chat.completions.create(**body)
        assert completion.model == "tiny"
        usages.append(completion.usage)
    prompt = usages[0].prompt_tokens
    assert prompt > 20 and all(u.prompt_tokens == prompt for u in usages)  # image tokens too
    assert all(u.total_tokens == u.prompt_tokens + u.completion_tokens for u in usages)
    with pytest.raises(openai.NotFoundError, match="Available: tiny, "):
        client.chat.completions.create(**(chat_body(png) | {"model": "gpt-4o"}))
    # "answer format: automatic" (no kind): the closed question is guessed and its candidates
    # scored, so the answer has a confidence (issue 14, item 1)
    analyzed = httpx.post(
        f"{url}/v1/analyze",
        files={"file": ("study.png", png)},
        data={"question": "Is there a nodule?"},
        timeout=60,
    ).json()
    assert analyzed["kind"] == "closed" and analyzed["answer"] in {"yes", "no"}
    assert analyzed["confidence"]["method"] == "candidates"
    assert sum(analyzed["confidence"]["candidates"].values()) == pytest.approx(1.0)
    body = chat_body(png) | {"model": "tiny"}
    chat = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60).json()
    assert chat["medlens"]["confidence"]["method"] == "candidates"
    backend.close()
