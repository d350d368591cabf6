"""Serving at scale: ``UpstreamPool`` in front of real ``medlens serve`` processes on loopback
(the prior baseline: real HTTP servers that start in seconds). Requests spread over the
healthy upstreams, one that is down at start joins when it comes up, one killed mid-run costs
no answer, and ``medlens serve --model URL1,URL2`` fronts them for the official client."""

from __future__ import annotations

import base64
import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from medlens.backends.base import infer_backend_name, load_backend
from medlens.backends.openai import OpenAIBackend
from medlens.backends.pool import UpstreamPool, split_urls
from medlens.errors import BackendError, ConfigError, PrivacyError
from medlens.types import ImagePart, Message, Request, TextPart

pytest.importorskip("uvicorn")

Server = Callable[..., tuple[str, subprocess.Popen[bytes]]]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else proc.returncode
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not become ready")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """``server(*args, port=None) -> (url, process)``: a ``medlens serve --no-auth`` process."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str, port: int | None = None, wait: bool = True) -> tuple[str, Any]:
        port = port or _free_port()
        env = dict(os.environ, MEDLENS_HOME=str(tmp_path))
        command = [sys.executable, "-m", "medlens.cli.main", "serve", "--no-auth", *args]
        proc = subprocess.Popen(
            [*command, "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        if wait:
            _wait_ready(url, proc)
        return url, proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)


def _request(i: int, *, deidentified: bool = True, image: bool = True) -> Request:
    from PIL import Image

    question = "Is there a pleural effusion?" if i % 2 else "Which organ is shown?"
    parts: tuple[ImagePart | TextPart, ...] = (TextPart(question),)
    if image:
        parts = (ImagePart(Image.new("L", (32, 32), 10 * i)), *parts)
    return Request(
        id=f"q{i}",
        messages=(Message("user", parts),),
        kind="closed" if i % 2 else "open",
        question=question,
        deidentified=deidentified,
    )


def _until(condition: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_model_lists_choose_the_pool() -> None:
    assert infer_backend_name("http://a:8000/v1,http://b:8000/v1") == "openai-pool"
    assert infer_backend_name("http://a:8000/v1") == "openai"
    assert split_urls(" http://a/v1, http://b/v1 ,http://a/v1") == ["http://a/v1", "http://b/v1"]
    with pytest.raises(ConfigError, match="'gpu2:8000' is not one"):
        split_urls("http://gpu1:8000,gpu2:8000")


@pytest.mark.slow
def test_least_loaded_routing_joins_and_fails_over(server: Server) -> None:
    (a, _), (b, proc_b) = server("--model", "prior"), server("--model", "prior")
    late_port = _free_port()
    late = f"http://127.0.0.1:{late_port}"
    pool = load_backend(f"{a}/v1,{b}/v1,{late}/v1", health_interval_s=0.2, concurrency=2)
    try:
        assert isinstance(pool, UpstreamPool)
        assert (pool.name, pool.model_id) == ("openai-pool", "prior")
        assert [s.healthy for s in pool.status()] == [True, True, False]
        single = OpenAIBackend(f"{a}/v1")
        expected = [g.text for g in single.generate([_request(i) for i in range(16)])]
        single.close()
        answers = pool.generate([_request(i) for i in range(16)])
        assert [g.text for g in answers] == expected
        assert all(g.finish_reason != "error" and g.model == "prior" for g in answers)
        served = [s.answered for s in pool.status()]
        assert served[0] > 0 and served[1] > 0 and sum(served) == 16  # both upstreams used
        (own,) = pool.generate([_request(0, image=False)])  # the request's own error (400)
        assert own.finish_reason == "error" and "No image" in (own.error or "")
        assert [s.healthy for s in pool.status()][:2] == [True, True]

        server("--model", "prior", port=late_port)  # comes up: the health checks add it
        _until(lambda: pool.status()[2].healthy)
        pool.generate([_request(i) for i in range(12)])
        assert pool.status()[2].answered > 0

        proc_b.send_signal(signal.SIGKILL)  # dies mid-run: no answer is lost
        proc_b.wait()
        answers = pool.generate([_request(i) for i in range(16)])
        assert [g.text for g in answers] == expected
        assert all(g.finish_reason != "error" for g in answers)
        assert not pool.status()[1].healthy
        with pytest.raises(PrivacyError):
            pool.generate([_request(0, deidentified=False)])
    finally:
        pool.close()


@pytest.mark.slow
def test_no_healthy_upstream_is_a_backend_error(server: Server) -> None:
    dead = f"http://127.0.0.1:{_free_port()}/v1"
    with pytest.raises(BackendError, match="None of the upstream servers answered"):
        UpstreamPool(f"{dead},{dead.replace('/v1', '/x/v1')}")
    (a, proc) = server("--model", "prior")
    pool = UpstreamPool(f"{a}/v1,{dead}", health_interval_s=0.2)
    try:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        _until(lambda: not any(s.healthy for s in pool.status()))
        with pytest.raises(BackendError, match="No upstream server is healthy"):
            pool.generate([_request(0)])
    finally:
        pool.close()


def _chat_requests(url: str) -> float:
    """The chat completions an upstream answered, from its Prometheus ``/metrics``."""
    total = 0.0
    for line in httpx.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith("medlens_requests_total{") and "chat/completions" in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.mark.slow
def test_medlens_serve_fronts_several_upstreams(server: Server) -> None:
    from openai import OpenAI
    from PIL import Image

    (a, _), (b, _) = server("--model", "prior"), server("--model", "prior")
    front, _ = server("--model", f"{a}/v1,{b}/v1", "--served-model", "prior", "--concurrency", "4")
    buffer = io.BytesIO()
    Image.new("L", (64, 64), 90).save(buffer, format="PNG")
    image = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    client = OpenAI(base_url=f"{front}/v1", api_key="unused", max_retries=0)
    assert [m.id for m in client.models.list().data] == ["prior"]
    replies = set()
    for _ in range(6):
        reply = client.chat.completions.create(
            model="prior",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": image}},
                        {"type": "text", "text": "Is there a pleural effusion?"},
                    ],
                }
            ],
        )
        replies.add((reply.model, reply.choices[0].finish_reason, reply.choices[0].message.content))
    assert len(replies) == 1 and next(iter(replies))[:2] == ("prior", "stop")
    assert _chat_requests(a) > 0 and _chat_requests(b) > 0  # both replicas answered
    assert _chat_requests(a) + _chat_requests(b) == 6
