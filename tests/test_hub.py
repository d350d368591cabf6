"""Offline and typo errors come in seconds, with what to pass instead (issue 14, item 3).

The Hub is made unreachable deterministically (``HF_ENDPOINT`` pointing at a closed loopback
port), so these tests mean the same with or without network on the machine running them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from medlens import hub
from medlens.errors import BackendError

SECONDS = 20.0  # the issue measured 25 s to 3 min; anything without retries is far below


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def offline_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "MEDLENS_DATA"))}
    env.pop("TRANSFORMERS_OFFLINE", None)
    env.pop("HTTPS_PROXY", None)
    env.pop("https_proxy", None)
    env["HF_ENDPOINT"] = f"http://127.0.0.1:{closed_port()}"
    env["HF_HOME"] = str(tmp_path / "hf-home")  # an empty cache
    return env


@pytest.fixture
def fresh_check(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    hub.unreachable_reason.cache_clear()
    yield
    hub.unreachable_reason.cache_clear()


def medlens(
    env: dict[str, str], *args: str, cwd: Path
) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "medlens.cli.main", *args],
        check=False,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done, time.monotonic() - start


def ct_small() -> str:
    from pydicom.data import get_testdata_file

    return str(get_testdata_file("CT_small.dcm"))


@pytest.mark.slow
def test_eval_without_data_dir_offline_says_what_to_pass(
    offline_env: dict[str, str], tmp_path: Path
) -> None:
    done, took = medlens(offline_env, "eval", "vqa-rad", "--model", "prior", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert took < SECONDS
    message = done.stderr
    assert "Traceback" not in message and "Retrying" not in message
    assert "Hugging Face Hub is not reachable" in message
    assert "--data-dir" in message and "MEDLENS_DATA" in message
    assert "data_RAD/testset.json" in message  # which folder --data-dir must point at


@pytest.mark.slow
def test_eval_in_offline_mode_without_cache_fails_at_once(
    offline_env: dict[str, str], tmp_path: Path
) -> None:
    env = offline_env | {"HF_HUB_OFFLINE": "1"}
    done, took = medlens(env, "eval", "vqa-rad", "--model", "prior", cwd=tmp_path)
    assert done.returncode == 2 and took < SECONDS, done.stderr
    assert "Traceback" not in done.stderr and "--data-dir" in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("foo/bar", "the Hugging Face Hub is not reachable"),
        ("./tiny-qwen", "No model folder at './tiny-qwen'"),
        ("not an id", "neither a folder here nor a valid Hugging Face id"),
    ],
)
def test_ask_with_an_unloadable_model_name_fails_in_seconds(
    offline_env: dict[str, str], tmp_path: Path, model: str, expected: str
) -> None:
    done, took = medlens(
        offline_env, "ask", ct_small(), "Is there a fracture?", "--model", model, cwd=tmp_path
    )
    assert done.returncode == 2, done.stderr
    assert took < SECONDS
    assert expected in done.stderr
    assert "Retrying" not in done.stderr and "Repo id must" not in done.stderr
    assert "--model prior" in done.stderr  # what to pass instead


def test_path_like_names_are_never_hub_ids() -> None:
    for name in ("./x", "../x", "/x", "~/x", "a/b/c", "x/", "C:\\models\\x"):
        assert hub.looks_like_path(name), name
    for name in ("google/medgemma-4b-it", "Qwen/Qwen2.5-VL-7B-Instruct", "gpt2"):
        assert not hub.looks_like_path(name), name


def test_a_listening_endpoint_is_reachable_and_a_closed_one_is_not(
    fresh_check: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        assert hub.unreachable_reason() is None
    hub.unreachable_reason.cache_clear()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    reason = hub.unreachable_reason()
    assert reason is not None and "cannot connect to 127.0.0.1" in reason
    hub.unreachable_reason.cache_clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub.unreachable_reason() == "offline mode is on (HF_HUB_OFFLINE)"


@pytest.mark.slow
def test_a_cached_hub_model_loads_while_the_hub_is_unreachable(
    fresh_check: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A model in the Hugging Face cache layout (models--org--name/snapshots/sha) is used
    without touching the network, as offline users expect."""
    from medlens.backends.transformers import TransformersBackend
    from medlens.testing.tiny import build_tiny_model

    cache = tmp_path / "hub"
    repo = cache / "models--medlens--tiny-qwen"
    build_tiny_model("qwen2_5_vl", repo / "snapshots" / ("0" * 40))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    assert hub.resolve_model("medlens/tiny-qwen") == ("medlens/tiny-qwen", True)
    backend = TransformersBackend("medlens/tiny-qwen", device="cpu")
    try:
        assert backend.model_id == "medlens/tiny-qwen"
    finally:
        backend.close()
    with pytest.raises(BackendError, match="not in the local Hugging Face cache"):
        hub.resolve_model("medlens/absent")
