"""Training on the user's own rows file (``--data my_rows.jsonl``): the same layout
``medlens score`` reads, studies loaded and de-identified like any other, recorded in the
card by digest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medlens.errors import DataError
from medlens.train.data import DataSpec, build_train_data


def ct_with_phi(folder: Path) -> str:
    """pydicom's CT_small.dcm with a known patient name (it ships in the pydicom wheel)."""
    import pydicom
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientName = "Doe^Jonathan"
    ds.PatientID = "MRN-4471"
    path = folder / "ct.dcm"
    ds.save_as(path)
    return path.name


def write_rows(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    square = np.full((64, 64), 20, np.uint8)
    square[20:40, 6:26] = 230
    Image.fromarray(square).save(folder / "left.png")
    rows = [
        {"question": "Is this a CT scan?", "image": ct_with_phi(folder), "answer": "Yes"},
        {"id": "q2", "question": "Which side is the square on?", "image": "left.png",
         "answer": "left"},
        {"question": "Which side is the square on, left or right?", "image": "left.png",
         "answer": "Left", "kind": "closed"},
        {"question": "Locate the square.", "image": "left.png", "answer": "square",
         "kind": "grounding", "boxes": [{"label": "square", "box": [6, 20, 26, 40]}]},
    ]  # fmt: skip
    path = folder / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_rows_file_becomes_deidentified_training_rows(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "mine")
    data = build_train_data(DataSpec((str(path),), view_size=112))
    kinds = [row["kind"] for row in data.rows]
    assert kinds == ["closed", "open", "closed", "grounding"]
    completions = [row["completion"][0]["content"][0]["text"] for row in data.rows]
    assert completions[:3] == ["yes", "left", "left"]
    assert json.loads(completions[3]) == [{"label": "square", "box_2d": [6, 20, 26, 40]}]
    assert data.rows[2]["candidates"] == ["left", "right"]
    assert [row["id"] for row in data.rows][:2] == ["rows.jsonl/1", "rows.jsonl/q2"]
    assert all(row["deidentified"] for row in data.rows)
    plain = build_train_data(DataSpec((str(path),), deidentify=False, view_size=112))
    assert not any(row["deidentified"] for row in plain.rows)
    assert plain.card()["sources"][0]["pixels"]["deidentify"] is False
    (source,) = data.card()["sources"]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert source["split"] == "rows" and source["revision"] == f"sha256:{digest}"
    assert source["source"] == "file" and source["rows"] == 4
    assert source["pixels"]["deidentify"] is True and source["pixels"]["ocr"] == "auto"


def test_bad_rows_files_say_what_to_fix(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "Is it?", "image": "x.png"}) + "\n")
    with pytest.raises(DataError, match="needs 'question', 'image' and 'answer' columns"):
        build_train_data(DataSpec((str(bad),)))
    bad.write_text(json.dumps({"question": "Locate it.", "image": "x.png", "answer": "it",
                               "kind": "grounding"}) + "\n")  # fmt: skip
    with pytest.raises(DataError, match="row 1: a grounding row needs its gold 'boxes'"):
        build_train_data(DataSpec((str(bad),)))
    bad.write_text(json.dumps({"question": "Is it?", "image": "missing.png", "answer": "no"}))
    with pytest.raises(DataError, match=r"gave no training rows .*'unloadable': 1"):
        build_train_data(DataSpec((str(bad),)))


def test_medlens_train_sft_runs_on_a_rows_file(
    tiny_qwen: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from medlens.cli.main import main
    from medlens.train.card import load_card

    path = write_rows(tmp_path / "mine")
    out = tmp_path / "run"
    code = main(
        ["train", "sft", "--model", str(tiny_qwen), "--data", str(path), "--max-steps", "2",
         "--batch-size", "2", "--augment", "standard", "--no-progress", "--output", str(out)]
    )  # fmt: skip
    assert code == 0
    assert "2/2 [" not in capsys.readouterr().err  # --no-progress: no training bar
    card = load_card(out)
    assert card["steps"] == 2 and card["data"]["rows"] == 4
    assert card["hyperparameters"]["augment"] == "standard"
    assert card["data"]["sources"][0]["benchmark"] == str(path)
