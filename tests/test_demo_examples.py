"""The demo asks about real VQA-RAD/SLAKE test images shipped in the package and shows the
gold answer beside the model's."""

from __future__ import annotations

from pathlib import Path

from medlens.cli.demo import EXAMPLES, load_examples
from medlens.cli.main import main


def test_demo_shows_real_test_images_with_gold_answers(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    examples = load_examples()
    assert len(examples) == 8
    assert {e["kind"] for e in examples} == {"closed", "open"}
    for example in examples:
        image = EXAMPLES / example["image"]
        assert image.stat().st_size < 40_000  # shrunk: the package stays small
        assert ("CC0 1.0" in example["source"]) or ("CC BY 4.0" in example["source"])
    assert main(["demo", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    # the default model is medlens-tiny, labelled as the demonstration model it is
    assert "medlens demo — medlens-tiny — a ~5M-parameter demonstration model" in printed
    assert "not a clinical model" in printed
    assert "CC0 1.0" in printed and "CC BY 4.0" in printed
    for example in examples:
        assert f"[{example['image']}] {example['question']}" in printed
        assert f"gold: {example['answer']}" in printed
    page = (tmp_path / "report.html").read_text()
    assert "Real test images" in page and page.count("<tr><td><img") == len(examples)
    # every real example is scored like eval, under the medlens protocol
    assert printed.count("(medlens protocol)") == len(examples)
