"""Tiny real-architecture models: they load through the Auto classes as a Hub snapshot does."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("transformers")

import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from medlens.errors import UnknownNameError
from medlens.testing.tiny import FAMILIES, build_tiny_model

CLASSES = {
    "qwen2_5_vl": ("Qwen2_5_VLForConditionalGeneration", "Qwen2_5_VLProcessor"),
    "gemma3": ("Gemma3ForConditionalGeneration", "Gemma3Processor"),
    "llava": ("LlavaForConditionalGeneration", "LlavaProcessor"),
}
CONVERSATION = [
    {
        "role": "user",
        "content": [{"type": "image"}, {"type": "text", "text": "is there a pleural effusion?"}],
    }
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {family: build_tiny_model(family, root / family) for family in FAMILIES}


def test_families_cover_the_architectures_medical_vlms_use() -> None:
    assert set(FAMILIES) == set(CLASSES)


@pytest.mark.parametrize("family", FAMILIES)
def test_snapshot_is_small_and_complete(built: dict[str, Path], family: str) -> None:
    path = built[family]
    names = {p.name for p in path.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json"} <= names
    assert "tokenizer.json" in names
    assert any("chat_template" in n for n in names)
    size = sum(p.stat().st_size for p in path.iterdir())
    assert size < 5_000_000


@pytest.mark.parametrize("family", FAMILIES)
def test_auto_classes_load_the_real_architecture(built: dict[str, Path], family: str) -> None:
    processor = AutoProcessor.from_pretrained(built[family])
    model = AutoModelForImageTextToText.from_pretrained(built[family])
    model_cls, processor_cls = CLASSES[family]
    assert type(model).__name__ == model_cls
    assert type(processor).__name__ == processor_cls
    assert sum(p.numel() for p in model.parameters()) < 1_000_000


@pytest.mark.parametrize("family", FAMILIES)
def test_image_placeholder_expands_to_the_tokens_the_model_expects(
    built: dict[str, Path], family: str
) -> None:
    processor = AutoProcessor.from_pretrained(built[family])
    model = AutoModelForImageTextToText.from_pretrained(built[family]).eval()
    prompt = processor.apply_chat_template(CONVERSATION, add_generation_prompt=True)
    image = Image.new("RGB", (80, 60), (200, 20, 20))
    enc = processor(text=[prompt], images=[[image]], return_tensors="pt")
    image_token = model.config.image_token_id
    n_image_tokens = int((enc["input_ids"] == image_token).sum())
    assert n_image_tokens > 1
    # The forward pass checks placeholders against vision features; a mismatch raises.
    with torch.inference_mode():
        logits = model(**enc).logits
    assert logits.shape[-1] == model.config.get_text_config().vocab_size
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("family", FAMILIES)
def test_special_tokens_stay_whole_and_words_round_trip(
    built: dict[str, Path], family: str
) -> None:
    tokenizer = AutoProcessor.from_pretrained(built[family]).tokenizer
    for token in tokenizer.all_special_tokens:
        assert len(tokenizer.encode(token, add_special_tokens=False)) == 1, token
    text = "small left pleural effusion, no pneumothorax"
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert len(ids) < len(text) / 2  # merges learnt from the medical corpus
    assert tokenizer.decode(ids) == text
    box = '[{"label": "Liver", "box_2d": [54, 106, 84, 137]}]'
    pieces = tokenizer.tokenize(box)
    digits = [p for p in pieces if any(c.isdigit() for c in p)]
    # every digit a token of its own (the 2 of box_2d, then the four numbers), as Qwen2 splits
    assert digits == list("25410684137")
    assert tokenizer.decode(tokenizer.encode(box, add_special_tokens=False)) == box


def test_seed_fixes_the_weights(tmp_path: Path) -> None:
    def weights(seed: int, name: str) -> torch.Tensor:
        path = build_tiny_model("llava", tmp_path / name, seed=seed)
        model = AutoModelForImageTextToText.from_pretrained(path)
        return model.get_input_embeddings().weight.detach().clone()

    a, b, c = weights(1, "a"), weights(1, "b"), weights(2, "c")
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_unknown_family_names_the_available_ones(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match="qwen2_5_vl"):
        build_tiny_model("gpt5", tmp_path)
