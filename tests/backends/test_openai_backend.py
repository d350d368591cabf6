"""The OpenAI-compatible backend against a real HTTP server on loopback.

The server below speaks the chat-completions wire format and answers deterministically from
the last text of the request: by default it echoes what it received (decoded image sizes,
texts, decoding parameters); words in the text make it misbehave (``FAIL429x2``,
``FAIL500``, ``BAD400``, ``SLEEP=0.2``, ``NOTJSON``) or return log-probabilities
(``LOGPROBS``, ``LETTERS``).
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from PIL import Image

from medlens.backends import load_backend
from medlens.backends.openai import OpenAIBackend
from medlens.errors import BackendError, ConfigError, MissingDependencyError, PrivacyError
from medlens.tasks import get_task
from medlens.types import GenerationOptions, Request, View

SERVED = "tiny-vlm"
ECHOED_PARAMS = ("max_tokens", "temperature", "top_p", "n", "seed", "stop", "logprobs",
                 "top_logprobs")  # fmt: skip


@dataclass
class ServerState:
    api_key: str | None = None
    hits: Counter[str] = field(default_factory=Counter)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)
    inflight: int = 0
    max_inflight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Handler(BaseHTTPRequestHandler):
    server: ChatServer

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    counted = False
    """Whether this request is counted in ``state.inflight`` (until its answer is sent)."""

    def _leave(self) -> None:
        """The request no longer in flight: called before its answer is written, so that a
        client which has its answer never sees its old slot still counted (counting until
        after the write made a client with 3 requests out meet 4 in flight on a busy CPU)."""
        if self.counted:
            self.counted = False
            with self.server.state.lock:
                self.server.state.inflight -= 1

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._leave()
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _authorised(self) -> bool:
        state = self.server.state
        auth = self.headers.get("Authorization")
        state.auth.append(auth)
        if state.api_key is not None and auth != f"Bearer {state.api_key}":
            error = {"message": "Incorrect API key provided", "type": "invalid_request_error"}
            self._send(401, {"error": error})
            return False
        return True

    def do_GET(self) -> None:
        if not self._authorised():
            return
        if self.path == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": SERVED, "object": "model"}]})
        else:
            self._send(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        if self.path != "/v1/chat/completions":
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        if not self._authorised():
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        state = self.server.state
        texts = [
            part["text"]
            for message in body["messages"]
            for part in (
                message["content"]
                if isinstance(message["content"], list)
                else [{"type": "text", "text": message["content"]}]
            )
            if part["type"] == "text"
        ]
        command = texts[-1]
        with state.lock:
            state.bodies.append(body)
            state.hits[command] += 1
            hits = state.hits[command]
            state.inflight += 1
            state.max_inflight = max(state.max_inflight, state.inflight)
            self.counted = True
        try:
            self._answer(body, texts, command, hits)
        finally:
            self._leave()

    def _answer(self, body: dict[str, Any], texts: list[str], command: str, hits: int) -> None:
        sleep = re.search(r"SLEEP=([\d.]+)", command)
        if sleep:
            time.sleep(float(sleep.group(1)))
        fail429 = re.search(r"FAIL429x(\d+)", command)
        if fail429 and hits <= int(fail429.group(1)):
            headers = {"retry-after-ms": "150"} if "MS" in command else {"Retry-After": "1"}
            self._send(429, {"error": {"message": "Rate limit reached"}}, headers)
            return
        if "FAIL500" in command:
            self._send(500, {"error": {"message": "engine crashed"}})
            return
        if "BAD400" in command:
            self._send(400, {"error": {"message": "context length exceeded"}})
            return
        if "NOTJSON" in command:
            self._send(200, b"<html>proxy error</html>")
            return
        logprobs = None
        if "LOGPROBS" in command:
            content = "Yes"
            alternatives = [("Yes", -0.2), (" yes", -2.0), ("No", -1.9), ("Maybe", -5.0)]
            logprobs = _logprobs([("Yes", -0.2, alternatives), (".", -0.01, [(".", -0.01)])])
        elif "LETTERS" in command:
            content = "B"
            alternatives = [("B", -0.1), ("A", -2.5), ("(C", -3.0), ("Ġd", -4.0), ("E", -6.0)]
            logprobs = _logprobs([("B", -0.1, alternatives)])
        else:
            content = json.dumps(
                {
                    "images": [_decode(m) for m in body["messages"] for m in _image_urls(m)],
                    "texts": texts,
                    "params": {k: body.get(k) for k in ECHOED_PARAMS},
                }
            )
        choices = [
            {
                "index": i,
                "message": {"role": "assistant", "content": content if i == 0 else f"sample {i}"},
                "finish_reason": "stop" if i == 0 else "length",
                "logprobs": logprobs if i == 0 else None,
            }
            for i in reversed(range(body.get("n", 1)))  # out of order on purpose
        ]
        # like vLLM: usage.prompt_tokens counts what the model read (here: a word per text
        # token, 100 per image)
        images = sum(len(_image_urls(m)) for m in body["messages"])
        usage = {"prompt_tokens": sum(len(t.split()) for t in texts) + 100 * images}
        self._send(200, {"id": "cmpl-1", "object": "chat.completion", "model": body["model"],
                         "choices": choices, "usage": usage})  # fmt: skip


def _logprobs(items: list[tuple[str, float, list[tuple[str, float]]]]) -> dict[str, Any]:
    return {
        "content": [
            {
                "token": token,
                "logprob": logprob,
                "top_logprobs": [{"token": t, "logprob": lp} for t, lp in top],
            }
            for token, logprob, top in items
        ]
    }


def _image_urls(message: dict[str, Any]) -> list[str]:
    content = message["content"]
    if not isinstance(content, list):
        return []
    return [p["image_url"]["url"] for p in content if p["type"] == "image_url"]


def _decode(url: str) -> list[Any]:
    prefix = "data:image/png;base64,"
    assert url.startswith(prefix)
    image = Image.open(io.BytesIO(base64.b64decode(url[len(prefix) :])))
    assert image.format == "PNG"
    return [image.width, image.height, image.mode, image.getpixel((0, 0))]


class ChatServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: ServerState) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.state = state


@dataclass
class Running:
    url: str
    state: ServerState


@pytest.fixture
def server() -> Iterator[Running]:
    state = ServerState()
    httpd = ChatServer(state)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    port = httpd.server_address[1]
    try:
        yield Running(f"http://127.0.0.1:{port}/v1", state)
    finally:
        httpd.shutdown()
        httpd.server_close()


def backend_for(server: Running, **options: Any) -> OpenAIBackend:
    options.setdefault("served_model", SERVED)
    options.setdefault("backoff_s", 0.001)
    return OpenAIBackend(server.url, **options)


def request(text: str, *, kind: str = "open", deidentified: bool = True, **build: Any) -> Request:
    views = build.pop("views", [View(Image.new("L", (40, 30), 7), "PA", ())])
    if kind == "choice":
        build.setdefault("candidates", ("Pneumonia", "Cardiomegaly", "Effusion", "Mass"))
    return get_task(kind).build(
        views, text, request_id=build.pop("request_id", text), deidentified=deidentified, **build
    )


def echo(generation_text: str) -> dict[str, Any]:
    return json.loads(generation_text)  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------------------


def test_sends_images_messages_and_decoding_options(server: Running) -> None:
    views = [View(Image.new("L", (40, 30), 7), "PA", ()), View(Image.new("RGB", (20, 10)), "", ())]
    prior = [View(Image.new("I;16", (16, 16), 300), "PA", ())]
    options = GenerationOptions(
        max_new_tokens=9, temperature=0.3, top_p=0.9, num_samples=2, seed=7, stop=("\n",)
    )
    req = request("What is shown?", views=views, prior_views=prior, options=options,
                  system_prompt="Be brief.")  # fmt: skip
    backend = backend_for(server)
    [gen] = backend.generate([req])
    backend.close()

    assert gen.finish_reason == "stop" and gen.error is None
    assert (gen.model, gen.backend, gen.request_id) == (SERVED, "openai", req.id)
    got = echo(gen.text)
    # Images arrive as PNG in order PRIOR, CURRENT; 16-bit grey is sent as RGB.
    assert [img[:3] for img in got["images"]] == [
        [16, 16, "RGB"],
        [40, 30, "L"],
        [20, 10, "RGB"],
    ]
    assert got["images"][1][3] == 7
    assert got["texts"][0] == "Be brief."
    assert "PRIOR: PA" in got["texts"] and "CURRENT: PA" in got["texts"]
    assert got["texts"][-1].startswith("What is shown?")
    assert got["params"] == {
        "max_tokens": 9,
        "temperature": 0.3,
        "top_p": 0.9,
        "n": 2,
        "seed": 7,
        "stop": ["\n"],
        "logprobs": True,
        "top_logprobs": 5,
    }
    assert gen.samples == ("sample 1",)  # choices sorted by index
    assert gen.prompt_tokens == sum(len(t.split()) for t in got["texts"]) + 300
    body = server.state.bodies[0]
    assert body["model"] == SERVED
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert gen.timings.total_s > 0


def test_served_model_is_discovered(server: Running) -> None:
    backend = OpenAIBackend(server.url)
    assert backend.model_id == SERVED
    assert load_backend(server.url, served_model="other").model_id == "other"
    assert isinstance(load_backend(server.url), OpenAIBackend)


def test_base_url_from_environment(server: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDLENS_OPENAI_BASE_URL", server.url.removesuffix("/v1"))
    backend = OpenAIBackend("my-model", backoff_s=0.001)
    assert backend.base_url == server.url
    [gen] = backend.generate([request("Which organ?")])
    assert gen.model == "my-model" and server.state.bodies[0]["model"] == "my-model"


def test_logprobs_give_tokens_and_candidate_probabilities(server: Running) -> None:
    req = request("Is it there? LOGPROBS", kind="closed")
    [gen] = backend_for(server).generate([req])
    assert server.state.bodies[0]["top_logprobs"] == 20  # candidates: ask for the most
    assert [t.token for t in gen.tokens] == ["Yes", "."]
    assert gen.tokens[0].top[:2] == (("Yes", -0.2), (" yes", -2.0))
    expected_yes = math.log(math.exp(-0.2) + math.exp(-2.0))
    assert gen.candidate_logprobs == pytest.approx({"yes": expected_yes, "no": -1.9})
    answer = get_task("closed").parse(gen, req)
    assert (answer.parsed, answer.text) == (True, "yes")


def test_choice_candidates_are_read_from_letter_tokens(server: Running) -> None:
    req = request("Which one? LETTERS", kind="choice")
    [gen] = backend_for(server).generate([req])
    assert gen.candidate_logprobs == pytest.approx(
        {"Cardiomegaly": -0.1, "Pneumonia": -2.5, "Effusion": -3.0, "Mass": -4.0}
    )
    assert get_task("choice").parse(gen, req).choice == "B"


def test_retries_on_429_honouring_retry_after_ms(server: Running) -> None:
    start = time.perf_counter()
    [gen] = backend_for(server, max_retries=3).generate([request("FAIL429x2 MS")])
    elapsed = time.perf_counter() - start
    assert gen.finish_reason == "stop" and gen.error is None
    assert (
        server.state.hits["FAIL429x2 MS\nAnswer the question using a single word or phrase."] == 3
    )
    assert elapsed >= 0.3  # two waits of 150 ms, not the 1 ms back-off


@pytest.mark.slow
def test_retry_after_in_seconds(server: Running) -> None:
    start = time.perf_counter()
    [gen] = backend_for(server, max_retries=1).generate([request("FAIL429x1")])
    assert gen.error is None
    assert time.perf_counter() - start >= 1.0


def test_server_errors_become_error_generations_in_order(server: Running) -> None:
    requests = [request("first"), request("FAIL500"), request("BAD400"), request("NOTJSON"),
                request("last")]  # fmt: skip
    gens = backend_for(server, max_retries=2).generate(requests)
    assert [g.request_id for g in gens] == [r.id for r in requests]
    assert [g.finish_reason for g in gens] == ["stop", "error", "error", "error", "stop"]
    assert gens[1].error == "HTTP 500: engine crashed (after 3 attempts)"
    assert gens[2].error == "HTTP 400: context length exceeded (after 1 attempt)"
    assert gens[3].error == "HTTP 200 with a body that is not JSON"
    hits = {k.split("\n")[0]: v for k, v in server.state.hits.items()}
    assert hits == {"first": 1, "FAIL500": 3, "BAD400": 1, "NOTJSON": 1, "last": 1}
    assert not get_task("open").parse(gens[1], requests[1]).parsed


def test_timeout_is_per_request(server: Running) -> None:
    start = time.perf_counter()
    gens = backend_for(server, timeout_s=0.2, max_retries=1).generate(
        [request("SLEEP=1"), request("quick")]
    )
    assert time.perf_counter() - start < 0.9
    assert gens[0].finish_reason == "error"
    assert gens[0].error == "timed out after 0.2 s (after 2 attempts)"
    assert gens[1].error is None


def test_concurrency_is_bounded(server: Running) -> None:
    requests = [request(f"SLEEP=0.15 #{i}") for i in range(12)]
    start = time.perf_counter()
    gens = backend_for(server, concurrency=3).generate(requests)
    elapsed = time.perf_counter() - start
    assert all(g.error is None for g in gens)
    assert server.state.max_inflight == 3
    assert elapsed >= 4 * 0.15


def test_refuses_identified_requests(server: Running) -> None:
    backend = backend_for(server)
    with pytest.raises(PrivacyError, match="De-identify first or pass --no-deid"):
        backend.generate([request("ok"), request("PHI?", deidentified=False)])
    assert server.state.bodies == []
    opted_out = backend_for(server, allow_identified=True)
    [gen] = opted_out.generate([request("PHI?", deidentified=False)])
    assert gen.error is None and len(server.state.bodies) == 1


def test_api_key_is_sent_and_401_raises(server: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    server.state.api_key = "sk-test"
    with pytest.raises(BackendError, match="MEDLENS_OPENAI_API_KEY"):
        backend_for(server, api_key="wrong").generate([request("hello")])
    monkeypatch.setenv("MEDLENS_OPENAI_API_KEY", "sk-test")
    [gen] = backend_for(server).generate([request("hello")])
    assert gen.error is None
    assert server.state.auth[-1] == "Bearer sk-test"
    monkeypatch.delenv("MEDLENS_OPENAI_API_KEY")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(BackendError, match="HTTP 401: Incorrect API key"):
        OpenAIBackend(server.url)  # model discovery needs the key too


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_server() -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    backend = OpenAIBackend(url, served_model=SERVED, max_retries=1, backoff_s=0.001)
    [gen] = backend.generate([request("hello")])
    assert gen.finish_reason == "error"
    assert gen.error == "connection failed (ConnectError) (after 2 attempts)"
    with pytest.raises(BackendError, match="Could not reach .* served_model="):
        OpenAIBackend(url)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"timeout_s": 0}, "out of range"),
        ({"concurrency": 0}, "out of range"),
        ({"base_url": "http://x/v1"}, "either as the model or as base_url"),
    ],
)
def test_bad_options(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        OpenAIBackend("http://127.0.0.1:1/v1", served_model="m", **options)


def test_bad_base_url() -> None:
    with pytest.raises(ConfigError, match="must start with http"):
        OpenAIBackend("model", base_url="localhost:8000")


def test_missing_httpx_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'medlens\[openai\]'"):
        OpenAIBackend("http://127.0.0.1:1/v1", served_model="m")
