"""Kill-and-resume: ``medlens eval`` killed with SIGKILL mid-run, then ``--resume``, gives
every sample exactly once and the same results as a run that was never interrupted."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from medlens.bench.store import RunStore


def _eval(store: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "medlens.cli.main",
        "eval",
        *args,
        "--store",
        str(store),
        "--no-progress",
    ]


def _stored(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return int(con.execute("SELECT COUNT(*) FROM results").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return 0


def _kill_when(command: list[str], db: Path, rows: int, timeout: float = 240) -> int:
    """Start ``command``, SIGKILL it once ``db`` holds at least ``rows`` results."""
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while _stored(db) < rows:
        if proc.poll() is not None:
            raise AssertionError(f"eval ended before it could be killed: {proc.stderr.read()!r}")  # type: ignore[union-attr]
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("eval stored nothing in time")
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return _stored(db)


def _by_role(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    store = RunStore(db)
    out = {}
    for run in store.runs():
        rows = store.results(run.id)
        out[run.model] = [
            (r.sample_id, r.position, r.prompt, r.raw, r.answer["text"], r.scores) for r in rows
        ]
        assert store.get_run(run.id).status == "complete", run
    store.close()
    return out


def _check_resumed(args: list[str], tmp_path: Path, kill_at: int, total: int) -> None:
    killed_db, clean_db = tmp_path / "killed.sqlite", tmp_path / "clean.sqlite"
    at_kill = _kill_when(_eval(killed_db, *args), killed_db, kill_at)
    assert kill_at <= at_kill < total, "the run was not interrupted mid-way"
    listing = subprocess.run(
        [sys.executable, "-m", "medlens.cli.main", "report", "--list", "--store", str(killed_db)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert listing.returncode == 0, listing.stderr
    assert "killed" in listing.stdout and not re.search(r" running$", listing.stdout, re.MULTILINE)
    done = subprocess.run(
        _eval(killed_db, *args, "--resume"), capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    said = re.findall(
        r"^resumed run \w+ \(.*\): (\d+) of (\d+) answers were stored, (\d+)",
        done.stdout,
        re.MULTILINE,
    )
    assert said and sum(int(before) for before, _, _ in said) == at_kill, done.stdout
    assert all(int(b) + int(new) == int(n) for b, n, new in said), said
    clean = subprocess.run(_eval(clean_db, *args), capture_output=True, text=True, check=False)
    assert clean.returncode == 0, clean.stderr

    resumed, reference = _by_role(killed_db), _by_role(clean_db)
    assert set(resumed) == set(reference)
    for model, rows in resumed.items():
        ids = [r[0] for r in rows]
        assert len(ids) == len(set(ids)) == total // len(resumed), model  # each sample once
        assert rows == reference[model], model
    store = RunStore(killed_db)
    assert len({r.group_id for r in store.runs()}) == 1  # resumed into the same group
    store.close()


@pytest.mark.data
def test_kill_9_and_resume_prior_and_baselines(shared_data: Path, tmp_path: Path) -> None:
    limit = 80
    args = [
        "slake",
        "--model",
        "prior",
        "--limit",
        str(limit),
        "--batch-size",
        "1",
        "--data-dir",
        str(shared_data / "slake"),
        "--protocol",
        "medlens,llava-med",
    ]
    _check_resumed(args, tmp_path, kill_at=20, total=3 * limit)


@pytest.mark.slow
@pytest.mark.data
def test_kill_9_and_resume_tiny_model(shared_data: Path, tmp_path: Path) -> None:
    from medlens.testing.tiny import build_tiny_model

    model = build_tiny_model("qwen2_5_vl", tmp_path / "tiny-qwen")
    limit = 16
    args = [
        "vqa-rad",
        "--model",
        str(model),
        "--limit",
        str(limit),
        "--batch-size",
        "3",
        "--data-dir",
        str(shared_data / "vqa-rad"),
        "--protocol",
        "medlens",
        "--max-new-tokens",
        "8",
    ]
    _check_resumed(args, tmp_path, kill_at=4, total=4 * limit)
