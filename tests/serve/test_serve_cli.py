"""``medlens serve`` as a user runs it: a subprocess on a loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from medlens.cli.main import main


def medlens(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, MEDLENS_HOME=str(home))
    command = [sys.executable, "-m", "medlens.cli.main", *args]
    return subprocess.run(
        command, check=False, env=env, capture_output=True, text=True, timeout=120
    )


def test_add_key_prints_it_once_and_the_server_requires_it(tmp_path: Path) -> None:
    created = medlens("serve", "--add-key", "reader", home=tmp_path)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("ml-") and key not in (tmp_path / "serve" / "api_keys.json").read_text()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, MEDLENS_HOME=str(tmp_path))
    command = [sys.executable, "-m", "medlens.cli.main", "serve", "--model", "prior"]
    server = subprocess.Popen([*command, "--port", str(port)], env=env, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert httpx.get(f"{url}/v1/models").status_code == 401
        models = httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"})
        assert models.json()["data"][0]["id"] == "prior"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_refusals_say_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--model", "prior"]) == 2
    assert "--add-key" in capsys.readouterr().err  # no keys yet
    assert main(["serve", "--model", "prior", "--no-auth", "--host", "0.0.0.0"]) == 2
    assert "without API keys" in capsys.readouterr().err
    assert main(["serve"]) == 2
    assert "--model" in capsys.readouterr().err


def test_help_does_not_import_the_server_stack() -> None:
    code = "import sys, medlens.cli.main as m; m.build_parser(); print('fastapi' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
