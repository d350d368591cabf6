"""The model a run starts from: a path or Hub id, or a fresh model from a named config.

``--init qwen2_5_vl:tiny`` builds the real ``Qwen2_5_VLForConditionalGeneration`` class with
random weights from the sizes below and a byte-level BPE tokenizer trained on the run's own
training text, through the same builder the tests' tiny models use
(``medlens.testing.tiny.build_model``), so the saved folder is a standard Hugging Face snapshot
that every medlens backend loads. ``--lora r=16,alpha=32,targets=q_proj+v_proj`` wraps the model
in a PEFT LoRA adapter (Hu et al. 2021); without it all weights train.

A model loaded from a string gets float32 on CPU (TRL's documented default for a string model
id is the checkpoint's dtype, which is bfloat16 for most VLMs and slow or unsupported on CPU).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from medlens.errors import BackendError, ConfigError, UnknownNameError

INIT_CONFIGS: Mapping[str, Mapping[str, Any]] = {
    # ~5M parameters: text 256 wide x 4 layers, vision 128 wide x 4 layers, 112 px images
    # (16 image tokens after the 2x2 merge). medlens-tiny is this config.
    "qwen2_5_vl:tiny": {
        "family": "qwen2_5_vl",
        "vocab_size": 4096,
        "multiword": 24,
        "text": {
            "hidden_size": 256,
            "intermediate_size": 704,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "initializer_range": 0.02,
            "tie_word_embeddings": True,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": [8, 12, 12],
            },
        },
        "vision": {
            "depth": 4,
            "hidden_size": 128,
            "intermediate_size": 384,
            "num_heads": 4,
            "out_hidden_size": 256,
            "fullatt_block_indexes": [1, 3],
            "window_size": 56,
            "initializer_range": 0.02,
        },
        "image_processor": {"min_pixels": 56 * 56, "max_pixels": 112 * 112},
    },
    # ~30M parameters, 224 px (64 image tokens): for a machine with a GPU.
    "qwen2_5_vl:small": {
        "family": "qwen2_5_vl",
        "vocab_size": 4096,
        "multiword": 24,
        "text": {
            "hidden_size": 512,
            "intermediate_size": 1408,
            "num_hidden_layers": 8,
            "num_attention_heads": 8,
            "num_key_value_heads": 4,
            "initializer_range": 0.02,
            "tie_word_embeddings": True,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": [8, 12, 12],
            },
        },
        "vision": {
            "depth": 6,
            "hidden_size": 256,
            "intermediate_size": 768,
            "num_heads": 4,
            "out_hidden_size": 512,
            "fullatt_block_indexes": [2, 5],
            "window_size": 112,
            "initializer_range": 0.02,
        },
        "image_processor": {"min_pixels": 56 * 56, "max_pixels": 224 * 224},
    },
}
"""Named fresh-model configs for ``--init``; keys of the family's text/vision configs."""


@dataclass(frozen=True)
class LoraSpec:
    """``--lora r=16,alpha=32,dropout=0.05,targets=q_proj+k_proj+v_proj+o_proj``."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")

    @classmethod
    def parse(cls, text: str) -> LoraSpec:
        """The flag's ``key=value`` list; targets are joined by ``+`` (or ``;``)."""
        values: dict[str, Any] = {}
        for piece in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = piece.partition("=")
            if not sep or key not in {"r", "alpha", "dropout", "targets"}:
                raise ConfigError(
                    f"--lora '{piece}': expected key=value with key r, alpha, dropout or "
                    "targets, e.g. --lora r=16,alpha=32,targets=q_proj+v_proj"
                )
            try:
                if key == "targets":
                    values[key] = tuple(t for t in value.replace(";", "+").split("+") if t)
                elif key == "dropout":
                    values[key] = float(value)
                else:
                    values[key] = int(value)
            except ValueError as exc:
                raise ConfigError(f"--lora {key}={value!r} is not a number") from exc
        spec = cls(**values)
        if spec.r < 1 or not spec.targets:
            raise ConfigError("--lora needs r >= 1 and at least one target module")
        return spec

    def to_dict(self) -> dict[str, Any]:
        return {"r": self.r, "alpha": self.alpha, "dropout": self.dropout, "targets": self.targets}


def init_config(name: str) -> Mapping[str, Any]:
    """The named ``--init`` config, or an error that lists them."""
    if name not in INIT_CONFIGS:
        raise UnknownNameError(
            f"unknown --init config {name!r}; available: {', '.join(INIT_CONFIGS)}"
        )
    return INIT_CONFIGS[name]


def init_overrides(config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``build_model`` overrides of an ``--init`` config (its text/vision sizes and image
    processor), shared by the model and by the view size its rows are rendered at."""
    return {k: config[k] for k in ("text", "vision", "image_processor") if k in config}


def init_model(name: str, texts: Iterable[str], *, seed: int = 0) -> tuple[Any, Any]:
    """A fresh ``(model, processor)`` of the named config, tokenizer trained on ``texts``."""
    from medlens.testing.tiny import build_model

    config = init_config(name)
    model, processor = build_model(
        str(config["family"]),
        overrides=init_overrides(config),
        seed=seed,
        corpus=list(texts),
        vocab_size=int(config["vocab_size"]),
        multiword=int(config.get("multiword", 0)),
    )
    return model.train(), processor


def view_size_for(model: str | None, init: str | None, revision: str | None = None) -> int | None:
    """The longest side rows are rendered at for this model: the one the transformers backend
    renders its views at (``processor_view_size``), so that a model learns boxes in the
    coordinates of the images it is evaluated on."""
    from medlens.backends.transformers import processor_view_size

    if init is not None:
        from medlens.testing.tiny import image_processor

        config = init_config(init)
        return processor_view_size(image_processor(str(config["family"]), init_overrides(config)))
    if model is None:
        return None
    from transformers import AutoImageProcessor

    from medlens.hub import resolve_model

    source, local_only = resolve_model(model, revision)
    try:
        found = AutoImageProcessor.from_pretrained(  # type: ignore[no-untyped-call]
            source, revision=revision, local_files_only=local_only
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BackendError(f"could not load the image processor of {model!r}: {exc}") from exc
    return processor_view_size(found)


def load_model(
    model_id: str, *, revision: str | None = None, weights: str | None = None
) -> tuple[Any, Any]:
    """``(model, processor)`` from a folder, Hub id or shipped name (``medlens-tiny``), float32
    weights on CPU, checked to be a vision-language model (a processor that takes images).
    ``weights`` (a checkpoint folder) takes the model's weights from there instead, through
    ``from_pretrained``: Trainer's own resume loads ``model.safetensors`` with
    ``load_state_dict(strict=False)``, but transformers 5 saves Qwen2.5-VL under its legacy
    key names (``model.layers.*``, not ``model.language_model.layers.*``), so nothing matched
    and a resumed run silently went on from the starting weights (medlens-tiny's 6-epoch run:
    loss 1.6 before the kill, 6.5 after); ``from_pretrained`` maps the names."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from medlens.hub import resolve_model

    source, local_only = resolve_model(model_id, revision)  # medlens-tiny, folders, Hub ids
    try:
        processor = AutoProcessor.from_pretrained(  # type: ignore[no-untyped-call]
            source, revision=revision, local_files_only=local_only
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BackendError(f"could not load the processor of {model_id!r}: {exc}") from exc
    check_processor(processor, model_id)
    try:
        model = AutoModelForImageTextToText.from_pretrained(
            weights or source,
            revision=None if weights else revision,
            dtype=torch.float32,
            local_files_only=local_only or weights is not None,
        )
    except (OSError, ValueError, KeyError, TypeError, ImportError) as exc:
        raise BackendError(
            f"could not load {model_id!r} as an image-text-to-text model: {exc}"
        ) from exc
    return model, processor


def check_processor(processor: Any, model_id: str) -> None:
    """A training run needs a processor that takes images; say so before any step runs."""
    if not hasattr(processor, "image_processor") or not hasattr(processor, "tokenizer"):
        raise ConfigError(
            f"{model_id!r} has a {type(processor).__name__}, which takes no images, so it is "
            "not a vision-language model; medlens train needs an image-text-to-text model "
            "(e.g. Qwen2.5-VL, Gemma 3, LLaVA) or --init qwen2_5_vl:tiny."
        )


def apply_lora(model: Any, lora: LoraSpec | None) -> Any:
    """The model wrapped in a LoRA adapter, or unchanged for full fine-tuning."""
    if lora is None:
        return model
    from medlens.errors import require

    peft = require("peft", "train", "LoRA fine-tuning")
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = [t for t in lora.targets if t not in names]
    if missing:
        raise ConfigError(
            f"--lora targets {', '.join(missing)} are not module names of this model; "
            f"linear layers it has include: {', '.join(sorted(_linear_names(model))[:12])}"
        )
    config = peft.LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.targets),
        task_type="CAUSAL_LM",
    )
    return peft.get_peft_model(model, config)


def _linear_names(model: Any) -> set[str]:
    import torch

    return {
        n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)
    }


def count_parameters(model: Any) -> tuple[int, int]:
    """(all, trainable) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return int(total), int(trainable)
