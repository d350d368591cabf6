"""The shared core: registry lookups, the error family, and a fast, light CLI start."""

from __future__ import annotations

import subprocess
import sys

import pytest

from medlens.errors import MissingDependencyError, UnknownNameError, require
from medlens.registry import Registry


def test_registry_decorator_and_lazy_target() -> None:
    reg: Registry[object] = Registry("widget")

    @reg.register("Alpha")
    class Alpha:
        pass

    reg.register("json-dumps", "json:dumps")
    assert reg.get("alpha") is Alpha
    import json

    assert reg.get("JSON-DUMPS") is json.dumps
    assert reg.names() == ["alpha", "json-dumps"]


def test_registry_unknown_name_suggests() -> None:
    reg: Registry[int] = Registry("backend")
    reg.register("transformers", 1)
    reg.register("openai", 2)
    with pytest.raises(UnknownNameError) as info:
        reg.get("transformer")
    message = str(info.value)
    assert "Did you mean 'transformers'" in message
    assert "Available: openai, transformers" in message


def test_require_names_the_extra() -> None:
    with pytest.raises(MissingDependencyError, match=r"pip install 'medlens\[dicom\]'"):
        require("no_such_module_xyz", "dicom", "Reading DICOM")


def test_cli_import_is_light() -> None:
    code = (
        "import sys, medlens.cli.main as m; m.build_parser();"
        "heavy = [n for n in ('torch', 'transformers', 'pydicom', 'nibabel', 'fastapi', 'ray')"
        " if n in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
