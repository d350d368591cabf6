"""DESIGN.md's one-way imports, checked by import-linter on the real package."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_import_contract_holds() -> None:
    lint = shutil.which("lint-imports") or str(Path(__import__("sys").executable).parent / "lint-imports")
    out = subprocess.run([lint], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Contracts: 1 kept, 0 broken" in out.stdout
