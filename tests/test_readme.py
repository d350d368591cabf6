"""The README a new user reads first: its links stay inside the repository (issue 14, item 7)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_readme_links_and_paths_resolve_inside_the_repository() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)", text)  # [label](target)
    assert targets, "the README links its layout"
    for target in targets:
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path = (REPO / target).resolve()
        assert path.is_relative_to(REPO), f"{target} points outside the repository"
        assert path.exists(), f"{target} does not exist"
    outside = re.findall(r"`(\.\./[^`]*)`", text)
    assert not outside, f"paths outside the repository: {outside}"


@pytest.mark.slow
def test_the_python_snippet_prints_an_answer_and_its_confidence(tmp_path: Path) -> None:
    """The README's snippet, run as written with a tiny Gemma 3 (MedGemma's architecture) in
    place of the Hub model and a generated CT series in place of ``ct_series/``: it prints
    the answer, a confidence and its method, never ``None None`` (issue 14, item 1)."""
    from medlens.testing.studies import write_ct_series
    from medlens.testing.tiny import build_tiny_model

    text = (REPO / "README.md").read_text(encoding="utf-8")
    (snippet,) = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert '"google/medgemma-4b-it"' in snippet and '"ct_series/"' in snippet
    model = build_tiny_model("gemma3", tmp_path / "google" / "medgemma-tiny")
    series = write_ct_series(tmp_path / "ct_series")
    code = snippet.replace('"google/medgemma-4b-it"', repr(str(model))).replace(
        '"ct_series/"', repr(str(series))
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=600
    )
    assert out.returncode == 0, out.stderr
    assert re.fullmatch(r"(yes|no) [01]\.\d\d candidates\n", out.stdout), out.stdout
