"""Supervised fine-tuning on TRL's ``SFTTrainer`` (full or PEFT LoRA).

Rows come from ``medlens.train.data`` (prompt-completion, conversational, with images), so
TRL's vision collator computes the loss on the answer tokens only (``completion_only_loss``)
and the prompt is rendered by the model's own chat template exactly as the transformers
backend renders it at evaluation. TRL's documented limits for vision datasets hold: no
packing, no padding-free batches, no ``keep_end`` truncation; medlens sets none of them and
turns TRL's default gradient checkpointing off (small models on CPU gain nothing from it).

``loss="rows"`` averages the loss over each answer's tokens first and then over the rows,
instead of over every answer token of the batch (TRL's default, ``"tokens"``). With token
averaging a one-token "yes" weighs 1/25 of a grounding answer (a JSON box is ~25 tokens), so
a small model learns boxes and long open answers and answers yes/no from the question alone;
averaging per row gives each question the same weight, as a VQA classifier's loss does.

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
from medlens.train.data import DataSpec, TrainData, build_train_data
from medlens.train.models import LoraSpec
from medlens.train.run import Hyper, finish_run, start_run


LOSS_AVERAGES = ("tokens", "rows")


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
    loss: str = "tokens"
    """``tokens`` (TRL's mean over the batch's answer tokens) or ``rows`` (mean per answer,
    then over the batch)."""

    def __post_init__(self) -> None:
        if self.loss not in LOSS_AVERAGES:
            raise ConfigError(
                f"--loss must be one of {', '.join(LOSS_AVERAGES)}, not {self.loss!r}."
            )


def train_sft(spec: SFTSpec, *, progress: bool = True, data: TrainData | None = None) -> Path:
    """Train, save and card; returns the output folder. ``data`` skips building rows (tests
    and the benchmark build them once)."""
    if (spec.model is None) == (spec.init is None):
        raise ConfigError("Give either --model (a path or Hub id) or --init (a fresh model).")
    rows = data if data is not None else build_train_data(spec.data, progress=progress)
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
    trainer_class = _row_averaged(SFTTrainer) if spec.loss == "rows" else SFTTrainer
    trainer = trainer_class(
        model=ctx.model,
        args=config,
        train_dataset=rows.dataset(("prompt", "completion")),
        processing_class=ctx.processor,
    )
    return finish_run(ctx, trainer, spec.merge, spec_record(spec))


def _row_averaged(trainer: type[Any]) -> type[Any]:
    """``trainer`` with the loss averaged per answer, then over the batch. It runs TRL's own
    forward (``fused_lm_head``: each label's log-probability and the label mask, no logits)
    and logs TRL's token accuracy and entropy from it."""

    class RowAveraged(trainer):  # type: ignore[misc,valid-type]
        # a mean per micro-batch: Trainer divides it over the accumulation steps
        loss_is_scaled_for_ga = False

        def compute_loss(
            self,
            model: Any,
            inputs: dict[str, Any],
            return_outputs: bool = False,
            num_items_in_batch: Any = None,
        ) -> Any:
            inputs["use_cache"] = False
            outputs = model(**inputs, fused_lm_head=True)
            mask = outputs.label_mask
            tokens = mask.sum(dim=-1)
            per_row = -outputs.log_probs.sum(dim=-1) / tokens.clamp(min=1)
            answered = tokens > 0
            loss = per_row[answered].mean() if bool(answered.any()) else per_row.sum() * 0.0
            metrics = self._metrics["train" if model.training else "eval"]
            valid = mask.sum().clamp(min=1)
            metrics["mean_token_accuracy"].append(float(outputs.is_top1.sum() / valid))
            metrics["entropy"].append(float(outputs.entropy.detach().sum() / valid))
            return (loss, outputs) if return_outputs else loss

    return RowAveraged


def spec_record(spec: SFTSpec) -> dict[str, Any]:
    return {
        "method": "sft",
        "loss": spec.loss,
        "model": spec.model,
        "init": spec.init,
        "lora": None if spec.lora is None else spec.lora.to_dict(),
        "merge": spec.merge,
    }


__all__ = ["LOSS_AVERAGES", "SFTSpec", "train_sft"]
