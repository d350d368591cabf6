"""GRPO on TRL's ``GRPOTrainer`` with rewards that are medlens's own scoring rules.

Group Relative Policy Optimization (Shao et al. 2024, DeepSeekMath) samples
``num_generations`` completions per prompt and pushes up those scoring above their group's
mean; Med-R1 (Lai et al. 2025) applies it to medical VQA with accuracy + format rewards. Here
the accuracy reward *is* a named scoring protocol's rule (``medlens.train.rewards``), and the
prompts are the evaluation prompts (``medlens.train.data``), so the reward measures exactly
what ``medlens eval`` will. Generation runs through transformers' ``generate`` in-process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medlens.errors import ConfigError
from medlens.train.data import DataSpec, TrainData
from medlens.train.models import LoraSpec
from medlens.train.rewards import make_rewards
from medlens.train.run import Hyper, build_rows, finish_run, start_run

REWARD_COLUMNS = ("prompt", "id", "kind", "answers", "candidates", "boxes", "image_size")


@dataclass(frozen=True)
class GRPOSpec:
    data: DataSpec
    output: str
    model: str
    rewards: tuple[str, ...] = ("accuracy",)
    reward_weights: tuple[float, ...] = ()
    num_generations: int = 4
    max_completion_length: int = 32
    temperature: float = 1.0
    beta: float = 0.0
    """KL weight to the reference model (0: none, TRL's default since DAPO/Dr. GRPO)."""
    lora: LoraSpec | None = None
    merge: bool = False
    hyper: Hyper = field(default_factory=Hyper)


def train_grpo(spec: GRPOSpec, *, progress: bool = True, data: TrainData | None = None) -> Path:
    rewards = make_rewards(spec.rewards)
    if spec.reward_weights and len(spec.reward_weights) != len(rewards):
        raise ConfigError(
            f"{len(spec.reward_weights)} --reward-weights for {len(rewards)} rewards; give one "
            "weight per reward."
        )
    if spec.num_generations < 2:
        raise ConfigError("GRPO compares completions within a group: --generations must be >= 2.")
    if (spec.hyper.batch_size * spec.hyper.grad_accum) % spec.num_generations:
        raise ConfigError(
            f"--batch-size x --grad-accum ({spec.hyper.batch_size * spec.hyper.grad_accum}) must "
            f"be a multiple of --generations ({spec.num_generations}): each prompt's group is "
            "generated in one batch."
        )
    rows = data if data is not None else build_rows(spec.data, spec.model, None, progress=progress)
    ctx = start_run("grpo", spec.output, spec.model, None, spec.lora, rows, spec.hyper)
    from trl import GRPOConfig, GRPOTrainer  # type: ignore[attr-defined]

    config = GRPOConfig(
        **ctx.trainer_args(),
        num_generations=spec.num_generations,
        max_completion_length=spec.max_completion_length,
        temperature=spec.temperature,
        beta=spec.beta,
        reward_weights=list(spec.reward_weights) or None,
        gradient_checkpointing=False,
        log_completions=False,
    )
    config.train_sampling_strategy = "random"
    trainer = GRPOTrainer(
        model=ctx.model,
        reward_funcs=rewards,  # type: ignore[arg-type]
        args=config,
        train_dataset=ctx.dataset(rows, REWARD_COLUMNS),
        processing_class=ctx.processor,
    )
    record: dict[str, Any] = {
        "method": "grpo",
        "model": spec.model,
        "rewards": list(spec.rewards),
        "reward_weights": list(spec.reward_weights),
        "num_generations": spec.num_generations,
        "max_completion_length": spec.max_completion_length,
        "temperature": spec.temperature,
        "beta": spec.beta,
        "lora": None if spec.lora is None else spec.lora.to_dict(),
    }
    return finish_run(ctx, trainer, spec.merge, record, progress=progress)
