"""benchmarks/throughput.py runs end to end on a tiny model on CPU and prints its figures."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "throughput.py"
FIGURES = (
    "plain_requests_per_s",
    "plain_tokens_per_s",
    "medlens_requests_per_s",
    "medlens_tokens_per_s",
    "speedup",
    "top5_logprobs_tokens_per_s",
    "chosen_logprobs_tokens_per_s",
    "plain_score_requests_per_s",
    "medlens_score_requests_per_s",
    "score_speedup",
    "decode_step_ms_batch1",
    "copy_bandwidth_GBps",
    "roofline_step_ms",
    "peak_memory_GiB",
    "greedy_identical_requests",
    "greedy_token_agreement",
)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["qwen2_5_vl_3b", "gemma3_4b"])
def test_tiny_cpu_run_prints_figures_and_agrees_exactly(model: str, tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        str(SCRIPT),
        "--tiny",
        "--device",
        "cpu",
        "--model",
        model,
        "--requests",
        "12",
        "--baseline-requests",
        "6",
        "--batch-size",
        "4",
        "--new-tokens",
        "6",
        "--image-size",
        "64",
        "--json",
        str(tmp_path / "f.json"),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    printed = dict(re.findall(r"^(\w+): (\S+)$", done.stdout, flags=re.MULTILINE))
    for key in FIGURES:
        assert key in printed, key
        assert float(printed[key]) > 0, key
    for key in ("top5_logprobs_cost", "chosen_logprobs_cost"):  # a ratio - 1: any sign
        assert math.isfinite(float(printed[key])), key
    assert printed["model"] == f"{model}-tiny" and printed["dtype"] == "float32"
    assert float(printed["greedy_identical_requests"]) == 1.0
    assert float(printed["greedy_token_agreement"]) == 1.0
    assert (tmp_path / "f.json").exists()
