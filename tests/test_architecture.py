"""DESIGN.md's one-way imports, checked by import-linter on the real package, and no import
circles."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_import_contract_holds() -> None:
    lint = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    out = subprocess.run([lint], check=False, cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    # The data-flow contract, and the inner ones of bench, bench.report and serve.
    assert "Contracts: 5 kept, 0 broken" in out.stdout


def test_no_module_imports_a_module_that_imports_it() -> None:
    """No import circle, directly or through other modules, lazy imports included (a package
    importing its own submodules is not a circle)."""
    import grimp

    graph = grimp.build_graph("medlens")
    circles = [
        (module, imported)
        for module in sorted(graph.modules)
        for imported in sorted(graph.find_modules_directly_imported_by(module))
        if not imported.startswith(f"{module}.")
        and not module.startswith(f"{imported}.")
        and graph.chain_exists(importer=imported, imported=module)
    ]
    assert circles == []


def test_package_is_mypy_strict_clean() -> None:
    """DESIGN.md: the package is typed and mypy-clean under the strict settings of pyproject."""
    mypy = Path(sys.executable).parent / "mypy"
    out = subprocess.run(
        [str(mypy), "--no-incremental", "src/medlens"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-1000:]


def test_code_is_ruff_clean_and_formatted() -> None:
    ruff = str(Path(sys.executable).parent / "ruff")
    paths = ["src", "tests", "benchmarks"]
    for args in (["check", *paths], ["format", "--check", *paths]):
        out = subprocess.run([ruff, *args], cwd=REPO, capture_output=True, text=True, check=False)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-1000:]
