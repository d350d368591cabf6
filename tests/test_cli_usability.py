"""The small things a new user meets first (issue 14, item 7), each through the real command
in a subprocess: the fitted prior, argument ranges, --help text, API keys, deid listings."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def medlens(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "medlens.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
        timeout=300,
    )


@pytest.fixture
def png(tmp_path: Path) -> Path:
    path = tmp_path / "chest.png"
    Image.fromarray((np.arange(64 * 64).reshape(64, 64) % 251).astype("uint8")).save(path)
    return path


def test_ask_model_prior_is_the_fitted_baseline(png: Path, tmp_path: Path) -> None:
    """The shipped VQA-RAD-train counts answer closed questions "no" (884 of 1,713 train
    answers), not the unfitted "yes 0.50"; the answer is labelled a baseline."""
    out = medlens("ask", str(png), "Is there a fracture?", "--model", "prior", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Answer: no" in out.stdout
    assert "Model: baseline:prior (baseline, prior backend)" in out.stdout
    record = json.loads(
        medlens(
            "ask", str(png), "Is there a fracture?", "--model", "prior", "--json", cwd=tmp_path
        ).stdout
    )
    assert record["model"] == "baseline:prior"
    assert record["confidence"]["value"] == pytest.approx(885 / 1715, abs=0.01)


@pytest.mark.parametrize("value", ["2", "-0.1", "high"])
def test_abstain_below_must_be_a_probability(png: Path, tmp_path: Path, value: str) -> None:
    for command in ("ask", "serve", "eval"):
        args = (
            [str(png), "Is it?"] if command == "ask" else (["vqa-rad"] if command == "eval" else [])
        )
        out = medlens(command, *args, "--model", "prior", "--abstain-below", value, cwd=tmp_path)
        assert out.returncode == 2, (command, out.stdout)
        assert "--abstain-below" in out.stderr and "Traceback" not in out.stderr


def test_help_has_no_rst_backticks_and_shows_defaults(tmp_path: Path) -> None:
    commands = ["ask", "eval", "calibrate", "serve", "report", "score", "deid", "demo", "doctor"]
    for command in commands:
        out = medlens(command, "--help", cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert "``" not in out.stdout, command
    serve = re.sub(r"\s+", " ", medlens("serve", "--help", cwd=tmp_path).stdout)
    for flag, default in [
        ("--host HOST", "127.0.0.1"),
        ("--port PORT", "8000"),
        ("--max-upload-mb MAX_UPLOAD_MB", "64.0"),
        ("--timeout-s TIMEOUT_S", "60.0"),
        ("--concurrency CONCURRENCY", "1"),
    ]:
        assert re.search(re.escape(flag) + r" [^-]*default: " + re.escape(default), serve), flag
    doctor = medlens("doctor", "--help", cwd=tmp_path).stdout
    assert "Hugging Face Hub" in doctor and "pip or apt-get" in doctor


def test_api_keys_are_listed_and_revoked(tmp_path: Path) -> None:
    keys = str(tmp_path / "keys.json")
    first = medlens("serve", "--api-key-file", keys, "--add-key", "alice", cwd=tmp_path)
    medlens("serve", "--api-key-file", keys, "--add-key", "bob", cwd=tmp_path)
    secret = first.stdout.strip().splitlines()[-1]
    listing = medlens("serve", "--api-key-file", keys, "--list-keys", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    assert "2 API key(s)" in listing.stdout and "alice" in listing.stdout
    assert "bob" in listing.stdout and secret not in listing.stdout
    revoked = medlens("serve", "--api-key-file", keys, "--revoke-key", "alice", cwd=tmp_path)
    assert revoked.returncode == 0 and "Revoked 1 API key(s)" in revoked.stdout
    from medlens.serve.auth import KeyStore

    store = KeyStore(Path(keys))
    assert store.names() == ["bob"] and store.verify(secret) is None
    again = medlens("serve", "--api-key-file", keys, "--revoke-key", "alice", cwd=tmp_path)
    assert again.returncode == 2 and "Keys: bob" in again.stderr


def test_deid_names_failed_inputs_on_the_terminal_not_in_the_audit(tmp_path: Path) -> None:
    tree = tmp_path / "in"
    (tree / "DOE^JANE").mkdir(parents=True)
    (tree / "DOE^JANE" / "scan.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00broken")
    out = medlens("deid", str(tree), str(tmp_path / "out"), "--no-progress", cwd=tmp_path)
    assert out.returncode == 1
    assert "DOE^JANE/scan.dcm [" in out.stderr  # the input's own path, for its owner
    audit = (tmp_path / "out" / "deid-audit.csv").read_text()
    assert "DOE" not in audit and "scan.dcm" not in audit
    (row,) = csv.DictReader(audit.splitlines())
    assert row["status"].startswith("skipped") and f"[{row['key']}]" in out.stderr


@pytest.mark.slow
def test_ask_with_a_transformers_model_prints_no_loading_bar(png: Path, tmp_path: Path) -> None:
    from medlens.testing.tiny import build_tiny_model

    build_tiny_model("qwen2_5_vl", tmp_path / "tiny-qwen")
    out = medlens(
        "ask", str(png), "Describe it.", "--model", "./tiny-qwen", "--device", "cpu",
        "--max-new-tokens", "2", cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "Loading weights" not in out.stderr and "it/s" not in out.stderr
    assert "(user model, transformers backend)" in out.stdout


@pytest.mark.slow
def test_ask_gives_closed_questions_a_confidence_by_default(png: Path, tmp_path: Path) -> None:
    """`medlens ask … --model <transformers model>` on a closed question scores its
    candidates (a parsed answer with a confidence); `--generate` opts out (issue 14, item 1)."""
    from medlens.testing.tiny import build_tiny_model

    build_tiny_model("qwen2_5_vl", tmp_path / "tiny-qwen")
    ask = ("ask", str(png), "Is there a fracture?", "--model", "./tiny-qwen", "--device", "cpu")
    scored = medlens(*ask, cwd=tmp_path)
    assert scored.returncode == 0, scored.stderr
    assert re.search(r"^Answer: (yes|no)$", scored.stdout, flags=re.MULTILINE), scored.stdout
    assert re.search(r"^Confidence: [01]\.\d\d \(candidates\)$", scored.stdout, flags=re.MULTILINE)
    generated = medlens(*ask, "--generate", "--max-new-tokens", "3", "--json", cwd=tmp_path)
    assert generated.returncode == 0, generated.stderr
    record = json.loads(generated.stdout)
    assert record["finish_reason"] != "scored"
    assert record["confidence"] is None or record["confidence"]["method"] != "candidates"


def test_a_reader_that_leaves_early_ends_the_command_quietly() -> None:
    """`medlens models | head -1`: the closed pipe is no traceback, as for Unix tools."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "medlens.cli.main", "models"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the command has written anything
    errors = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert "Traceback" not in errors and "BrokenPipe" not in errors
