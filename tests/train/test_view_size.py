"""Training rows show the views evaluation shows: both are capped at the size the model's
processor takes, so a model learns boxes in the frame it is later asked in."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from medlens.errors import ConfigError
from medlens.train.data import TrainData
from medlens.train.models import view_size_for
from medlens.train.run import check_view_size


def rows(side: int, kind: str = "grounding") -> list[dict[str, object]]:
    return [{"kind": kind, "images": [Image.new("L", (side, side))]}]


def test_the_view_size_of_a_fresh_config_and_of_a_saved_model(tiny_qwen: Path) -> None:
    assert view_size_for(None, "qwen2_5_vl:tiny") == 112
    assert view_size_for(None, "qwen2_5_vl:small") == 224
    assert view_size_for(str(tiny_qwen), None) == 112


def test_rows_rendered_larger_than_the_model_takes_are_refused(tiny_qwen: Path) -> None:
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_qwen)
    with pytest.raises(ConfigError, match=r"uncapped \(up to 512\) px, but tiny takes 112 px"):
        check_view_size(TrainData(rows(512), [], [], []), processor, "tiny")
    with pytest.raises(ConfigError, match="longest side 224 px"):
        check_view_size(TrainData(rows(224), [], [], [], view_size=224), processor, "tiny")
    check_view_size(TrainData(rows(112), [], [], [], view_size=112), processor, "tiny")
    check_view_size(TrainData(rows(64), [], [], []), processor, "tiny")  # nothing to cap
    check_view_size(TrainData(rows(512, "closed"), [], [], []), processor, "tiny")  # no boxes
