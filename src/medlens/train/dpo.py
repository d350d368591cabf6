"""DPO on TRL's ``DPOTrainer`` with pairs built by ``medlens.train.preferences``.

Direct Preference Optimization (Rafailov et al. 2023) raises the likelihood margin of the
chosen over the rejected answer against a frozen reference (the starting model). The pairs are
built here, before training, by asking the starting model itself: its own wrong answers and,
MMedPO-style, its answers with the lesion region noised out (``preferences.BUILDERS``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medlens.errors import DataError, UnknownNameError
from medlens.train.data import DataSpec, TrainData
from medlens.train.models import LoraSpec
from medlens.train.run import Hyper, build_rows, finish_run, start_run


@dataclass(frozen=True)
class DPOSpec:
    data: DataSpec
    output: str
    model: str
    pairs: tuple[str, ...] = ("own-wrong", "lesion-noised")
    protocol: str = "medlens"
    """The scoring protocol that decides which of the model's answers are wrong."""
    beta: float = 0.1
    lora: LoraSpec | None = None
    merge: bool = False
    hyper: Hyper = field(default_factory=Hyper)


def build_pairs(
    spec: DPOSpec, data: TrainData, model: Any, processor: Any
) -> tuple[TrainData, dict[str, int]]:
    """Pairs from each builder of ``spec.pairs``, asked of ``model`` in-process."""
    from medlens.backends.transformers import TransformersBackend
    from medlens.train.preferences import BUILDERS

    unknown = [p for p in spec.pairs if p not in BUILDERS]
    if unknown:
        raise UnknownNameError(
            f"unknown pair builder(s) {', '.join(unknown)}; available: {', '.join(BUILDERS)}"
        )
    backend = TransformersBackend.from_model(
        model, processor, model_id=spec.model, batch_size=32, prefetch=False
    )
    rows: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for name in spec.pairs:
        made = BUILDERS[name](data, backend, protocol=spec.protocol)
        counts[name] = len(made)
        rows += made
    model.train()
    if not rows:
        raise DataError(
            f"No preference pairs: the model answered every one of the {len(data)} rows "
            f"correctly under '{spec.protocol}' (or gave no answer). Train on other rows."
        )
    return TrainData(rows, data.sources, data.recipes, data.task_versions), counts


def train_dpo(spec: DPOSpec, *, progress: bool = True, data: TrainData | None = None) -> Path:
    rows = data if data is not None else build_rows(spec.data, spec.model, None, progress=progress)
    ctx = start_run("dpo", spec.output, spec.model, None, None, rows, spec.hyper)
    pairs, counts = build_pairs(spec, rows, ctx.model, ctx.processor)
    from trl import DPOConfig, DPOTrainer  # type: ignore[attr-defined]

    from medlens.train.models import apply_lora

    ctx.model = apply_lora(ctx.model, spec.lora)
    ctx.lora = spec.lora
    ctx.data = pairs
    config = DPOConfig(
        **ctx.trainer_args(),
        beta=spec.beta,
        max_length=spec.hyper.max_length,
        gradient_checkpointing=False,
    )
    config.train_sampling_strategy = "random"
    trainer = DPOTrainer(
        model=ctx.model,
        args=config,
        train_dataset=ctx.dataset(pairs, ("prompt", "chosen", "rejected")),
        processing_class=ctx.processor,
    )
    record: dict[str, Any] = {
        "method": "dpo",
        "model": spec.model,
        "pairs": counts,
        "protocol": spec.protocol,
        "beta": spec.beta,
        "lora": None if spec.lora is None else spec.lora.to_dict(),
    }
    return finish_run(ctx, trainer, spec.merge, record, progress=progress)
