"""``medlens deid IN_DIR OUT_DIR`` on a tree of real and generated files, bad ones included."""

from __future__ import annotations

import argparse
import csv
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from medlens.cli import deid
from medlens.testing.phi import PHI, synthetic_image

pytestmark = pytest.mark.slow


def _huge_png(path: Path) -> None:
    """A PNG whose header claims 20000x20000 pixels (a decompression bomb's shape)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    deid.add_parser(parser.add_subparsers())
    args = parser.parse_args(["deid", *argv])
    return deid.run(args)


@pytest.fixture
def tree(tmp_path: Path, phi: PHI) -> Path:
    root = tmp_path / "in" / "Okonkwo_Margaret"
    root.mkdir(parents=True)
    shutil.copy(get_testdata_file("CT_small.dcm"), root / "ct_slice_1")  # no extension
    shutil.copy(get_testdata_file("rtstruct.dcm"), root / "struct.dcm")  # no pixel data
    image = synthetic_image(phi, np.random.default_rng(3), shape=(240, 320))
    Image.fromarray(image.pixels).save(root / "screen.png")
    Image.fromarray(image.pixels).convert("RGB").save(root / "photo.jpg", quality=95)
    (root / "broken.dcm").write_bytes(b"DICM is not enough")
    _huge_png(root / "bomb.png")
    (root / "notes.txt").write_text("not an image")
    return tmp_path / "in"


def test_tree_is_deidentified_with_audit_and_resume(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _run(str(tree), str(out), "--no-progress") == 1  # some files were skipped
    audit = out / "deid-audit.csv"
    rows = list(csv.DictReader(audit.open()))
    assert len(rows) == 7
    status = sorted(r["status"].split(":")[0] + ":" + r["kind"] for r in rows)
    assert status == [
        "ok:dicom",
        "ok:dicom",
        "ok:jpeg",
        "ok:png",
        "skipped:dicom",
        "skipped:png",
        "skipped:unknown",
    ]
    assert any("ImageTooLargeError" in r["status"] for r in rows)
    assert any(r["status"] == "ok: no pixel data" for r in rows)
    # No original name anywhere: not in output paths, not in the audit.
    text = audit.read_text()
    for word in ("Okonkwo", "ct_slice", "screen", "photo", "struct", "broken", "bomb"):
        assert word not in text
        assert not any(word in str(p) for p in out.rglob("*"))
    outputs = [out / r["output"] for r in rows if r["output"]]
    assert len(outputs) == 4 and all(p.exists() for p in outputs)
    ct = [pydicom.dcmread(p, force=True) for p in outputs if p.suffix == ".dcm"]
    assert all(ds.PatientIdentityRemoved == "YES" for ds in ct)
    assert int(next(r["regions"] for r in rows if r["kind"] == "png" and r["output"])) > 0
    # Resume: nothing is done twice, the audit keeps its rows.
    assert _run(str(tree), str(out), "--no-progress", "--resume") == 0
    assert len(list(csv.DictReader(audit.open()))) == 7


def test_options_and_json_audit(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    audit = tmp_path / "audit.json"
    code = _run(
        str(tree),
        str(out),
        "--no-progress",
        "--ocr",
        "never",
        "--audit",
        str(audit),
        "--policy-option",
        "retain-device-identity",
    )
    assert code == 1
    import json

    rows = json.loads(audit.read_text())
    assert len(rows) == 7 and all(int(r["regions"]) == 0 for r in rows)
    ds = pydicom.dcmread(
        out
        / next(
            r["output"]
            for r in rows
            if r["attributes_changed"] == 33 or r["kind"] == "dicom" and r["output"]
        ),
        force=True,
    )
    assert len(ds.DeidentificationMethodCodeSequence) == 2  # basic + device identity


@pytest.mark.data
def test_real_mr_series_folder(shared_data: Path, tmp_path: Path) -> None:
    source = shared_data / "dicom-series/studyforrest-func-1block/dicoms"
    subset = tmp_path / "in"
    subset.mkdir()
    for path in sorted(source.iterdir())[:5]:
        shutil.copy(path, subset / path.name)
    assert _run(str(subset), str(tmp_path / "out"), "--no-progress") == 0
    written = [pydicom.dcmread(p) for p in (tmp_path / "out").glob("*.dcm")]
    assert len(written) == 5
    assert len({ds.SeriesInstanceUID for ds in written}) == 1
    assert all(ds.PatientIdentityRemoved == "YES" for ds in written)


def test_inspect_review_boxes_workers_and_transfer_syntax(tmp_path: Path) -> None:
    """The peers' conveniences: an inspect TSV that writes nothing, before/after overlays,
    boxes per file, two workers, and compressed pixels kept when nothing was redacted."""
    import json
    import subprocess
    import sys

    root = tmp_path / "in"
    root.mkdir()
    shutil.copy(get_testdata_file("examples_rgb_color.dcm"), root / "doppler.dcm")
    shutil.copy(get_testdata_file("MR_small_RLE.dcm"), root / "rle.dcm")  # RLE-compressed MR
    out, review = tmp_path / "out", tmp_path / "review"
    medlens = str(Path(sys.executable).parent / "medlens")
    command = [medlens, "deid", str(root), "--inspect", "--no-progress"]
    command += ["--ocr", "always"]
    inspect = subprocess.run(command, capture_output=True, text=True, check=True)
    rows = [line.split("\t") for line in inspect.stdout.strip().splitlines()]
    assert rows[0] == ["path", "kind", "status", "lines", "to_redact", "kept", "reasons", "seconds"]
    by_path = {row[0]: row for row in rows[1:]}
    assert int(by_path["doppler.dcm"][4]) > 0 and not list(tmp_path.glob("out*"))
    code = _run(
        *(str(root), str(out), "--no-progress", "--ocr", "always", "--workers", "2"),
        *("--boxes", "--review", str(review)),
    )
    assert code == 0
    audit = list(csv.DictReader((out / "deid-audit.csv").open()))
    doppler = next(r for r in audit if int(r["regions"]) > 0)
    assert 0 < float(doppler["redacted_share"]) < 0.10 and "area" not in doppler["needs_review"]
    boxes = json.loads((out / (doppler["output"] + ".boxes.json")).read_text())
    assert {"box", "redacted", "reason", "confidence", "text_hash"} == set(boxes[0])
    assert all(len(b["text_hash"]) == 16 for b in boxes)
    assert len(list(review.glob("*.review.png"))) == 2
    overlay = np.asarray(Image.open(review / (Path(doppler["output"]).stem + ".review.png")))
    assert overlay.shape == (240, 2 * 320 + 8, 3)  # before | after
    after = pydicom.dcmread(out / doppler["output"]).pixel_array
    inside = next(b["box"] for b in boxes if not b["redacted"])  # a kept label: same both sides
    x = (inside[0] + inside[2]) // 2
    y = (inside[1] + 2 * inside[3]) // 3
    assert np.array_equal(overlay[y, x + 328], after[y, x])
    assert np.array_equal(overlay[y, x], overlay[y, x + 328])
    kept = next(r for r in audit if r is not doppler)
    original = pydicom.dcmread(get_testdata_file("MR_small_RLE.dcm"))
    written = pydicom.dcmread(out / kept["output"])
    assert written.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    assert written.PixelData == original.PixelData


def test_recipe_file_overrides_the_header_profile_and_blanks_device_regions(
    tmp_path: Path,
) -> None:
    from medlens.errors import ConfigError
    from medlens.privacy.recipe import load_recipe

    recipe = tmp_path / "recipe.toml"
    recipe.write_text(
        '[header]\n"StudyDescription" = "keep"\n"(0008,10xx)" = "remove"\n'
        '[[pixels]]\nname = "banner"\nmanufacturer = "ge*"\nboxes = [[0, 0, 64, 8]]\n'
    )
    loaded = load_recipe(recipe)
    assert loaded.header_action(0x00081030, "StudyDescription") == "K"
    assert loaded.header_action(0x00081010, "StationName") == "X"
    assert loaded.header_action(0x00100010, "PatientName") is None
    root = tmp_path / "in"
    root.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), root / "ct.dcm")  # Manufacturer GE MEDICAL
    out = tmp_path / "out"
    code = _run(str(root), str(out), "--no-progress", "--ocr", "always", "--recipe", str(recipe))
    assert code == 0
    row = next(csv.DictReader((out / "deid-audit.csv").open()))
    written = pydicom.dcmread(out / row["output"])
    original = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    assert written.StudyDescription == original.StudyDescription  # kept by the recipe
    assert "StationName" not in written
    assert int(row["regions"]) == 1
    assert (written.pixel_array[:8, :64] == written.pixel_array.min()).all()
    bad = tmp_path / "bad.toml"
    bad.write_text('[header]\n"PatientName" = "shred"\n')
    with pytest.raises(ConfigError, match="not one of remove, blank"):
        load_recipe(bad)
    bad.write_text("[[pixels]]\nboxes = [[10, 10, 5, 20]]\n")
    with pytest.raises(ConfigError, match="empty or negative"):
        load_recipe(bad)
