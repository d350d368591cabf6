"""Supervised fine-tuning on TRL's ``SFTTrainer`` (full or PEFT LoRA).

Rows come from ``medlens.train.data`` (prompt-completion, conversational, with images), so
TRL's vision collator computes the loss on the answer tokens only (``completion_only_loss``)
and the prompt is rendered by the model's own chat template exactly as the transformers
backend renders it at evaluation. TRL's documented limits for vision datasets hold: no
packing, no padding-free batches, no ``keep_end`` truncation; medlens sets none of them and
turns TRL's default gradient checkpointing off (small models on CPU gain nothing from it).

A run writes ``OUTPUT/checkpoint-*`` while it trains (``save_steps``, the last two kept) and
continues from the newest after a kill; at the end ``OUTPUT`` holds the model
(``save_pretrained``: full weights, or the LoRA adapter and, with ``merge``, ``OUTPUT/merged``)
with its processor and ``training_card.json`` / ``README.md`` (``medlens.train.card``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medlens.errors import ConfigError
from medlens.train.data import DataSpec, TrainData
from medlens.train.models import LoraSpec
from medlens.train.run import Hyper, build_rows, finish_run, start_run


@dataclass(frozen=True)
class SFTSpec:
    """What ``medlens train sft`` was asked to do."""

    data: DataSpec
    output: str
    model: str | None = None
    """A folder or Hub id to fine-tune; or ``init`` for a fresh model."""
    init: str | None = None
    lora: LoraSpec | None = None
    merge: bool = False
    """Also write the LoRA adapter merged into the base weights to ``OUTPUT/merged``."""
    hyper: Hyper = field(default_factory=Hyper)


def train_sft(spec: SFTSpec, *, progress: bool = True, data: TrainData | None = None) -> Path:
    """Train, save and card; returns the output folder. ``data`` skips building rows (tests
    and the benchmark build them once)."""
    if (spec.model is None) == (spec.init is None):
        raise ConfigError("Give either --model (a path or Hub id) or --init (a fresh model).")
    rows = (
        data
        if data is not None
        else build_rows(spec.data, spec.model, spec.init, progress=progress)
    )
    ctx = start_run("sft", spec.output, spec.model, spec.init, spec.lora, rows, spec.hyper)
    from trl import SFTConfig, SFTTrainer  # type: ignore[attr-defined]

    config = SFTConfig(
        **ctx.trainer_args(),
        completion_only_loss=True,
        packing=False,
        padding_free=False,
        max_length=spec.hyper.max_length,
        gradient_checkpointing=False,
        dataset_kwargs={"skip_prepare_dataset": True},
    )
    trainer = SFTTrainer(
        model=ctx.model,
        args=config,
        train_dataset=ctx.dataset(rows, ("prompt", "completion")),
        processing_class=ctx.processor,
    )
    return finish_run(ctx, trainer, spec.merge, spec_record(spec), progress=progress)


def spec_record(spec: SFTSpec) -> dict[str, Any]:
    return {
        "method": "sft",
        "model": spec.model,
        "init": spec.init,
        "lora": None if spec.lora is None else spec.lora.to_dict(),
        "merge": spec.merge,
    }


__all__ = ["SFTSpec", "train_sft"]
