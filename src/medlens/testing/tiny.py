"""Tiny models of real VLM architectures, built offline for tests and smoke benchmarks.

This machine has no Hub access, yet the in-process backend must load MedGemma (Gemma 3),
Qwen2.5-VL / Lingshu, and LLaVA-Med (LLaVA) exactly as it would from a Hub id. So each family
here is the *real* model class from a config shrunk to a few hundred thousand parameters with
random weights, the *real* image processor and processor classes configured small, and a
byte-level BPE tokenizer trained locally (``tokenizers``) on a built-in medical word list plus
the family's own special and chat-template tokens. Everything is written with
``save_pretrained``, so ``AutoProcessor.from_pretrained(path)`` and
``AutoModelForImageTextToText.from_pretrained(path)`` take the same code path as for a Hub id.

The answers are noise; what is real is the architecture, the preprocessing, the chat template
and the special-token plumbing, which is where backends break.

>>> from medlens.testing.tiny import build_tiny_model  # doctest: +SKIP
>>> path = build_tiny_model("gemma3", "/tmp/tiny-gemma3")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medlens.errors import UnknownNameError, require

# A small corpus so that the BPE merges are medical words, not noise; each line is also a
# plausible answer so sampled text looks like words.
_CORPUS_TEXT = """
yes no left right upper lower middle lobe lung lungs heart liver kidney spleen brain bone
chest abdomen pelvis head neck spine rib ribs clavicle diaphragm trachea aorta colon bladder
pneumonia effusion pleural pneumothorax consolidation atelectasis edema cardiomegaly nodule
mass fracture hemorrhage infarct tumor lesion cyst calcification opacity normal abnormal
x-ray ct mri ultrasound axial coronal sagittal contrast t1 t2 flair dwi scan image slice
the a an of in on with without is are there any this what where which how many organ
finding findings impression no acute cardiopulmonary process size enlarged small large
benign malignant tissue cell cells pathology stain biopsy tumour gland vessel artery vein
answer question patient study view frontal lateral pa ap supine upright bilateral unilateral
mild moderate severe focal diffuse increased decreased density signal intensity shadow
0 1 2 3 4 5 6 7 8 9 10 a b c d option correct
"""
_CORPUS = _CORPUS_TEXT.split()


Overrides = Mapping[str, Mapping[str, Any]]
"""Sizes that replace the tiny ones: ``{"text": {...}, "vision": {...}, "config": {...},
"image_processor": {...}}`` (keys of the family's text/vision config, top-level config and
image processor), e.g. a published config.json for full-size throughput measurements."""


@dataclass(frozen=True)
class _Family:
    """One architecture as data: its special tokens and chat template, the transformers classes
    of its config and processor, the sizes of its text and vision towers, and which config
    fields name which special token. ``_build`` turns any of them into (config, processor)."""

    bos: str
    eos: str
    pad: str
    extra: dict[str, str]
    """Named model-specific special tokens (``tokenizer.<name>`` in transformers 5)."""
    other: tuple[str, ...]
    """Further special tokens of the chat template."""
    stop: tuple[str, ...]
    """Tokens that end an assistant turn (generation_config.eos_token_id)."""
    add_bos: bool
    """Whether the tokenizer prepends BOS (Gemma and Llama do, Qwen does not)."""
    chat_template: str
    config_class: str
    processor_class: str
    text: dict[str, Any]
    """The family's own text-config fields, beside the sizes every tiny tower shares."""
    vision: dict[str, Any]
    config_tokens: dict[str, str]
    """Config field → the special token whose id it holds."""
    config: dict[str, Any]
    """Further top-level config fields (``Overrides["config"]`` replaces them)."""
    processors: Callable[[Mapping[str, Any], Mapping[str, Any], Overrides], dict[str, Any]]
    """(vision config, top-level config, overrides) → the processor's image/video processors
    and other keyword arguments."""


_TEXT = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}
"""Sizes every tiny text tower shares (each family adds its own fields)."""


# --- Qwen2.5-VL (Qwen/Qwen2.5-VL-*-Instruct; also Lingshu, HuatuoGPT-Vision-Qwen) -------------

_QWEN_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _qwen_processors(
    vision: Mapping[str, Any], config: Mapping[str, Any], over: Overrides
) -> dict[str, Any]:
    from transformers import Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    # 56x56..112x112 pixels: 4..16 patches of 28 px, i.e. 4..16 image tokens after the merge.
    pixels = {"min_pixels": 56 * 56, "max_pixels": 112 * 112, **over.get("image_processor", {})}
    return {
        "image_processor": Qwen2VLImageProcessor(**pixels),
        "video_processor": Qwen2VLVideoProcessor(**pixels),
    }


# --- Gemma 3 (google/gemma-3-*-it, google/medgemma-4b-it) -------------------------------------

_GEMMA_TEMPLATE = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}"
    "{% set first = messages[0]['content'] if messages[0]['content'] is string "
    "else messages[0]['content'][0]['text'] %}"
    "{% set first = first + '\n\n' %}{% set loop_messages = messages[1:] %}"
    "{% else %}{% set first = '' %}{% set loop_messages = messages %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "<start_of_turn>{{ role }}\n{{ first if loop.first else '' }}"
    "{% if message['content'] is string %}{{ message['content'] | trim }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<start_of_image>"
    "{% elif item['type'] == 'text' %}{{ item['text'] | trim }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def _gemma_processors(
    vision: Mapping[str, Any], config: Mapping[str, Any], over: Overrides
) -> dict[str, Any]:
    from transformers import Gemma3ImageProcessor

    side = vision["image_size"]
    image_processor = Gemma3ImageProcessor(
        size={"height": side, "width": side}, image_mean=[0.5] * 3, image_std=[0.5] * 3
    )
    return {"image_processor": image_processor, "image_seq_length": config["mm_tokens_per_image"]}


# --- LLaVA 1.5 (llava-hf/llava-1.5-*; LLaVA-Med v1.5 is this architecture) ------------------

_LLAVA_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}"
    "{{ message['content'] if message['content'] is string else message['content'][0]['text'] }}"
    "{{ ' ' }}{% else %}{{ message['role'].upper() + ': ' }}"
    "{% if message['content'] is string %}{{ message['content'] + ' ' }}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' ' }}{% endfor %}{% endif %}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


def _llava_processors(
    vision: Mapping[str, Any], config: Mapping[str, Any], over: Overrides
) -> dict[str, Any]:
    from transformers import CLIPImageProcessor

    side = vision["image_size"]
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": side}, crop_size={"height": side, "width": side}
    )
    return {
        "image_processor": image_processor,
        "patch_size": vision["patch_size"],
        "vision_feature_select_strategy": "default",
        "num_additional_image_tokens": 1,
    }


_FAMILIES: dict[str, _Family] = {
    "qwen2_5_vl": _Family(
        bos="<|endoftext|>",
        eos="<|im_end|>",
        pad="<|endoftext|>",
        extra={
            "image_token": "<|image_pad|>",
            "video_token": "<|video_pad|>",
            "vision_bos_token": "<|vision_start|>",
            "vision_eos_token": "<|vision_end|>",
        },
        other=("<|im_start|>",),
        stop=("<|im_end|>", "<|endoftext|>"),
        add_bos=False,
        chat_template=_QWEN_TEMPLATE,
        config_class="Qwen2_5_VLConfig",
        processor_class="Qwen2_5_VLProcessor",
        text={
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": [2, 3, 3],
            },
        },
        vision={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": 64,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 56,
            "fullatt_block_indexes": [1],
        },
        config_tokens={
            "image_token_id": "<|image_pad|>",
            "video_token_id": "<|video_pad|>",
            "vision_start_token_id": "<|vision_start|>",
            "vision_end_token_id": "<|vision_end|>",
        },
        config={},
        processors=_qwen_processors,
    ),
    "gemma3": _Family(
        bos="<bos>",
        eos="<eos>",
        pad="<pad>",
        extra={
            "boi_token": "<start_of_image>",
            "eoi_token": "<end_of_image>",
            "image_token": "<image_soft_token>",
        },
        other=("<start_of_turn>", "<end_of_turn>"),
        stop=("<eos>", "<end_of_turn>"),
        add_bos=True,
        chat_template=_GEMMA_TEMPLATE,
        config_class="Gemma3Config",
        processor_class="Gemma3Processor",
        text={
            "head_dim": 16,
            "query_pre_attn_scalar": 16,
            "sliding_window": 64,
            "sliding_window_pattern": 2,
        },
        # SigLIP 32x32 px in 8 px patches = 4x4 patches, pooled 2x2 into 4 soft tokens.
        vision={
            "model_type": "siglip_vision_model",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        config_tokens={
            "boi_token_index": "<start_of_image>",
            "eoi_token_index": "<end_of_image>",
            "image_token_index": "<image_soft_token>",
        },
        config={"mm_tokens_per_image": 4},
        processors=_gemma_processors,
    ),
    "llava": _Family(
        bos="<s>",
        eos="</s>",
        pad="<pad>",
        extra={"image_token": "<image>"},
        other=(),
        stop=("</s>",),
        add_bos=True,
        chat_template=_LLAVA_TEMPLATE,
        config_class="LlavaConfig",
        processor_class="LlavaProcessor",
        text={"model_type": "llama"},
        # CLIP 32x32 px in 8 px patches = 16 patch tokens (+ CLS, dropped by "default").
        vision={
            "model_type": "clip_vision_model",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
            "projection_dim": 32,
        },
        config_tokens={"image_token_index": "<image>"},
        config={"vision_feature_select_strategy": "default", "vision_feature_layer": -2},
        processors=_llava_processors,
    ),
}


def _build(family: _Family, tok: Any, over: Overrides) -> tuple[Any, Any]:
    """(model config, processor) of ``family`` around the tokenizer ``tok``: the one driver
    behind every architecture."""
    import transformers

    ids = tok.convert_tokens_to_ids
    text = {
        "vocab_size": len(tok),
        "initializer_range": _INIT,
        **_TEXT,
        **family.text,
        "max_position_embeddings": 2048,
        "bos_token_id": ids(family.bos),
        "eos_token_id": ids(family.eos),
        "pad_token_id": ids(family.pad),
        **over.get("text", {}),
    }
    vision = {**family.vision, **over.get("vision", {})}
    fields = {**family.config, **over.get("config", {})}
    tokens = {name: ids(token) for name, token in family.config_tokens.items()}
    config = getattr(transformers, family.config_class)(
        text_config=text, vision_config=vision, **tokens, **fields
    )
    processor = getattr(transformers, family.processor_class)(
        tokenizer=tok,
        chat_template=family.chat_template,
        **family.processors(vision, fields, over),
    )
    return config, processor


FAMILIES: tuple[str, ...] = tuple(_FAMILIES)
"""Architectures ``build_tiny_model`` knows: Qwen2.5-VL, Gemma 3 (MedGemma), LLaVA (LLaVA-Med)."""

_VOCAB = 768
_INIT = 0.2
"""Weight std: ten times the usual, so that random logits have clear winners and greedy
decoding is not decided by float rounding (batch-size invariance tests rely on it)."""


def _template_pieces(family: _Family) -> list[str]:
    """The text the chat template writes around a conversation, split at its special tokens
    (a tokenizer trained on a corpus should also know the template's own words)."""
    import re

    import jinja2

    rendered = jinja2.Template(family.chat_template).render(
        messages=[{"role": "user", "content": [{"type": "text", "text": ""}]}],
        add_generation_prompt=True,
        bos_token=family.bos,
        eos_token=family.eos,
    )
    specials = sorted({family.bos, family.eos, *family.other, *family.extra.values()}, key=len)
    pattern = "|".join(re.escape(t) for t in reversed(specials))
    return [piece for piece in re.split(pattern, rendered) if piece.strip()]


def _train_tokenizer(
    family: _Family,
    corpus: Iterable[str] | None = None,
    vocab_size: int = _VOCAB,
    multiword: int = 0,
) -> Any:
    """A byte-level BPE (GPT-2 style, as Qwen and LLaVA-Llama-3 use) trained on ``corpus``
    (default: the built-in medical word list ``_CORPUS``) and the chat template's own text.

    ``multiword`` > 0 lets merges cross spaces, up to tokens of that many characters
    (SuperBPE, Liu et al. 2025): a prompt's fixed instructions become a few tokens, which
    cuts the sequence a small model trained on CPU pays for.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = list(
        dict.fromkeys([family.pad, family.bos, family.eos, *family.other, *family.extra.values()])
    )
    bpe = Tokenizer(models.BPE())
    # Each digit is a token of its own, as Qwen2's pre-tokenizer (\p{N}) and Gemma's do: a
    # box such as [54, 106, 84, 137] is then written digit by digit instead of in pieces
    # that straddle numbers ("[5", "4, 10", "6, 8"), which a small model cannot learn.
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=not multiword),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
        max_token_length=multiword or None,
    )
    if corpus is None:
        lines = [" ".join(_CORPUS[i : i + 12]) for i in range(0, len(_CORPUS), 12)] * 4
        bpe.train_from_iterator(lines, trainer=trainer)
    else:
        lines = list(corpus)
        lines += _template_pieces(family) * max(1, len(lines) // 4)
        bpe.train_from_iterator(lines, trainer=trainer)
    if family.add_bos:
        bos = (family.bos, bpe.token_to_id(family.bos))
        bpe.post_processor = processors.TemplateProcessing(
            single=f"{family.bos} $A", pair=f"{family.bos} $A {family.bos} $B", special_tokens=[bos]
        )
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=bpe,
        bos_token=family.bos,
        eos_token=family.eos,
        pad_token=family.pad,
        extra_special_tokens=family.extra,
        padding_side="left",
    )


def image_processor(family: str, overrides: Overrides | None = None) -> Any:
    """The image processor ``build_model(family, overrides=...)`` gives its model: a fresh
    model's view size is known before its tokenizer is trained on the rows."""
    spec = _FAMILIES[family]
    over = overrides or {}
    vision = {**spec.vision, **over.get("vision", {})}
    fields = {**spec.config, **over.get("config", {})}
    return spec.processors(vision, fields, over)["image_processor"]


def build_model(
    family: str,
    *,
    overrides: Overrides | None = None,
    seed: int = 0,
    dtype: Any = None,
    corpus: Iterable[str] | None = None,
    vocab_size: int = _VOCAB,
    multiword: int = 0,
) -> tuple[Any, Any]:
    """``(model, processor)`` of ``family`` in memory, random weights fixed by ``seed``.

    Tiny by default; ``overrides`` gives real sizes (the embedding keeps the configured
    vocabulary size). The tokenizer is a ``vocab_size`` BPE trained on ``corpus`` (default:
    the built-in word list), e.g. on the training text of a model trained from scratch;
    ``multiword`` lets its merges cross spaces (``_train_tokenizer``).
    """
    if family not in _FAMILIES:
        raise UnknownNameError(
            f"unknown tiny model family {family!r}; available: {', '.join(FAMILIES)}"
        )
    require("transformers", "hf", "Building tiny models")
    import torch
    from transformers import AutoModelForImageTextToText, GenerationConfig

    spec = _FAMILIES[family]
    tok = _train_tokenizer(spec, corpus, vocab_size, multiword)
    config, processor = _build(spec, tok, overrides or {})
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config, dtype=dtype)  # type: ignore[no-untyped-call]
    stop = [tok.convert_tokens_to_ids(t) for t in spec.stop]
    model.generation_config = GenerationConfig(  # type: ignore[no-untyped-call]
        bos_token_id=tok.bos_token_id,
        eos_token_id=stop if len(stop) > 1 else stop[0],
        pad_token_id=tok.pad_token_id,
    )
    return model.eval(), processor


def build_tiny_model(family: str, path: str | Path, *, seed: int = 0) -> Path:
    """Write a tiny random-weight model of ``family`` (one of ``FAMILIES``) to ``path``.

    The folder holds config, safetensors weights, generation config, tokenizer, image
    processor and chat template, as a Hub snapshot does. ``seed`` fixes the weights.
    """
    model, processor = build_model(family, seed=seed)
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
