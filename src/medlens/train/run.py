"""What SFT, GRPO and DPO runs share: hyperparameters, the starting model, resuming after a
kill, the progress bar, saving the Hugging Face folder and writing the training card."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from medlens.errors import ConfigError
from medlens.train.augment import Augmenter, check_augment
from medlens.train.card import git_commit, write_card
from medlens.train.data import DataSpec, TrainData, build_train_data
from medlens.train.models import (
    LoraSpec,
    apply_lora,
    count_parameters,
    init_model,
    load_model,
    view_size_for,
)

INIT_FOLDER = "init"
"""Where a fresh model (``--init``) is saved before its first step: its tokenizer was trained
on this run's text, so a resumed run must reload exactly it (and a LoRA adapter names it)."""
SESSIONS_FILE = "sessions.json"
SAMPLERS = ("random", "group_by_length")


@dataclass(frozen=True)
class Hyper:
    """Optimisation settings shared by every method (TrainingArguments names)."""

    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 8
    grad_accum: int = 1
    learning_rate: float = 2e-4
    scheduler: str = "cosine"
    warmup: float = 0.03
    """Ratio of the steps (below 1) or a number of steps."""
    weight_decay: float = 0.0
    seed: int = 0
    save_steps: int = 200
    logging_steps: int = 10
    max_length: int | None = None
    threads: int | None = None
    """torch intra-op threads (None: torch's default); shared machines keep it at 2."""
    sampler: str = "random"
    """``random`` or ``group_by_length``. Length grouping (transformers sorts each run of 50
    batches by length) saves padding but feeds a small model dozens of same-kind batches in a
    row (every grounding box, then every yes/no): at lr 2e-3 medlens-tiny collapsed to one
    answer distribution for every input that way, so shuffling is the default."""
    augment: str = "none"
    """``medlens.train.augment`` mode: images redrawn each time a row is shown."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Method-specific settings recorded in the card (GRPO generations, DPO beta, ...)."""

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.grad_accum < 1:
            raise ConfigError("--batch-size and --grad-accum must be 1 or more.")
        if self.learning_rate <= 0:
            raise ConfigError(f"--lr must be positive, not {self.learning_rate}.")
        if self.sampler not in SAMPLERS:
            raise ConfigError(
                f"--sampler must be one of {', '.join(SAMPLERS)}, not {self.sampler!r}."
            )
        check_augment(self.augment)
        if self.max_steps is None and self.epochs <= 0:
            raise ConfigError(f"--epochs must be positive, not {self.epochs}.")


def check_view_size(data: TrainData, processor: Any, base: str) -> None:
    """Grounding rows must show the views evaluation shows: the backend caps those at the
    size the model takes (``processor_view_size``), and a model trained on other sizes
    learns boxes in a frame it is never asked in."""
    from medlens.backends.transformers import processor_view_size

    takes = processor_view_size(processor.image_processor)
    if data.view_size == takes:
        return
    grounding = (row for row in data.rows if row.get("kind") == "grounding")
    sides = [max(im.size) for row in grounding for im in row.get("images", ())]
    if data.view_size is None and (takes is None or max(sides, default=0) <= takes):
        return  # no view was large enough for the cap to change it
    shown = data.view_size or f"uncapped (up to {max(sides, default=0)})"
    raise ConfigError(
        f"The grounding rows' views have longest side {shown} px, but {base} takes "
        f"{takes or 'images of any size'}{' px' if takes else ''}, so evaluation would "
        "show it other views. Build the rows with DataSpec(view_size="
        "medlens.train.models.view_size_for(model, init)), as medlens train does."
    )


@dataclass
class RunContext:
    method: str
    output: Path
    model: Any
    processor: Any
    base: str
    """The model id/path, or ``init:<config>`` for a fresh model."""
    data: TrainData
    hyper: Hyper
    lora: LoraSpec | None
    resume: str | None
    started: float
    parameters: tuple[int, int]
    commit: str | None
    """The medlens commit when the run started (the card records it)."""

    def dataset(self, rows: Any, columns: tuple[str, ...]) -> Any:
        """``rows`` (train rows or preference pairs) as the trainer's dataset, augmented as
        ``--augment`` asks."""
        augment = Augmenter(self.hyper.augment, self.hyper.seed)
        return rows.dataset(columns, augment if augment.active else None)

    def trainer_args(self) -> dict[str, Any]:
        """Keyword arguments every TRL config takes (they subclass TrainingArguments)."""
        h = self.hyper
        return {
            "output_dir": str(self.output),
            "num_train_epochs": h.epochs,
            "max_steps": h.max_steps if h.max_steps is not None else -1,
            "per_device_train_batch_size": h.batch_size,
            "gradient_accumulation_steps": h.grad_accum,
            "learning_rate": h.learning_rate,
            "lr_scheduler_type": h.scheduler,
            "warmup_steps": h.warmup,
            "weight_decay": h.weight_decay,
            "seed": h.seed,
            "data_seed": h.seed,
            "save_strategy": "steps",
            "save_steps": h.save_steps,
            "save_total_limit": 2,
            "logging_steps": h.logging_steps,
            "report_to": "none",
            "remove_unused_columns": False,
            "dataloader_num_workers": 0,
            "train_sampling_strategy": h.sampler,
            "bf16": False,
            "fp16": False,
        }


def build_rows(data: DataSpec, model: str | None, init: str | None, *, progress: bool) -> TrainData:
    """The run's rows, their views rendered at the size the model takes."""
    return build_train_data(replace(data, view_size=view_size_for(model, init)), progress=progress)


def start_run(
    method: str,
    output: str | os.PathLike[str],
    model_id: str | None,
    init: str | None,
    lora: LoraSpec | None,
    data: TrainData,
    hyper: Hyper,
) -> RunContext:
    """Load (or create) the starting model and find the checkpoint to resume from."""
    import torch
    from transformers import set_seed

    if hyper.threads:
        torch.set_num_threads(hyper.threads)
    set_seed(hyper.seed)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    resume = last_checkpoint(out)
    # A full fine-tune resumes from the checkpoint's weights, loaded instead of the starting
    # ones (never both: that would double the peak memory of a large model); a LoRA run
    # loads its base and Trainer restores the adapter.
    weights = resume if resume is not None and lora is None else None
    if init is not None:
        base = f"init:{init}"
        folder = out / INIT_FOLDER
        if (folder / "config.json").exists():
            model, processor = load_model(str(folder), weights=weights)
        else:
            model, processor = init_model(init, data.texts(), seed=hyper.seed)
            model.save_pretrained(folder)
            processor.save_pretrained(folder)
    else:
        assert model_id is not None
        base = model_id
        model, processor = load_model(model_id, weights=weights)
    check_view_size(data, processor, base)
    model = apply_lora(model, lora)
    return RunContext(
        method=method,
        output=out,
        model=model,
        processor=processor,
        base=base,
        data=data,
        hyper=hyper,
        lora=lora,
        resume=resume,
        started=time.time(),
        parameters=count_parameters(model),
        commit=git_commit(),
    )


def last_checkpoint(output: Path) -> str | None:
    """The newest complete ``checkpoint-N`` folder (with its trainer state), or None."""
    found = []
    for path in output.glob("checkpoint-*"):
        step = path.name.removeprefix("checkpoint-")
        if step.isdigit() and (path / "trainer_state.json").exists():
            found.append((int(step), path))
    return str(max(found)[1]) if found else None


def finish_run(
    ctx: RunContext, trainer: Any, merge: bool, spec: dict[str, Any], *, progress: bool = True
) -> Path:
    """Train (resuming if a checkpoint exists), save the folder and write the card; with
    ``progress`` False (``--no-progress``) no progress bar is drawn."""
    from transformers.trainer_callback import ProgressCallback

    if trainer.pop_callback(ProgressCallback) is not None and progress:
        trainer.add_callback(_progress_callback())
    result = trainer.train(resume_from_checkpoint=ctx.resume)
    out = ctx.output
    trainer.save_model(str(out))
    ctx.processor.save_pretrained(out)
    model = trainer.model
    if hasattr(model, "generation_config"):
        model.generation_config.save_pretrained(out)
    if merge and ctx.lora is not None:
        merged = model.merge_and_unload()
        merged.save_pretrained(out / "merged")
        ctx.processor.save_pretrained(out / "merged")
    sessions = _sessions(out, ctx, float(result.metrics.get("train_runtime", 0.0)))
    history = list(trainer.state.log_history)
    write_card(
        out,
        method=ctx.method,
        base=ctx.base,
        spec=spec,
        data=ctx.data.card(),
        hyper={k: v for k, v in asdict(ctx.hyper).items()},
        parameters=ctx.parameters,
        steps=int(trainer.state.global_step),
        sessions=sessions,
        history=history,
        commit=ctx.commit,
    )
    return out


def _sessions(out: Path, ctx: RunContext, train_s: float) -> list[dict[str, Any]]:
    """Every session of this run (a resumed run has several): resumed from, seconds."""
    path = out / SESSIONS_FILE
    sessions = json.loads(path.read_text()) if path.exists() else []
    sessions.append(
        {
            "resumed_from": None if ctx.resume is None else Path(ctx.resume).name,
            "train_s": round(train_s, 1),
            "wall_s": round(time.time() - ctx.started, 1),
        }
    )
    path.write_text(json.dumps(sessions, indent=1))
    return list(sessions)


def _progress_callback() -> Any:
    """transformers' progress bar with the latest loss / reward / learning rate on it
    instead of a dict printed per log step."""
    from transformers.trainer_callback import ProgressCallback

    class LiveProgress(ProgressCallback):
        SHOWN = ("loss", "reward", "rewards/accuracy/mean", "learning_rate", "grad_norm")

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            bar = self.training_bar
            if bar is None or not logs:
                return
            shown = {k.split("/")[-2] if "/" in k else k: logs[k] for k in self.SHOWN if k in logs}
            bar.set_postfix({k: f"{v:.4g}" for k, v in shown.items()}, refresh=False)

    return LiveProgress()


def export_model(
    folder: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    dtype: str = "float16",
    name: str | None = None,
    label: str | None = None,
) -> Path:
    """A trained folder as a shippable copy: weights in ``dtype`` (fp16 halves the size;
    the transformers backend loads them in float32 on CPU), processor, generation config and
    the training card (with ``name``/``label``), without checkpoints or the init copy."""
    import shutil

    import torch

    from medlens.train.card import load_card, save_card

    out = Path(dest)
    if out.exists():
        shutil.rmtree(out)
    model, processor = load_model(str(folder))
    model = model.to(getattr(torch, dtype))
    model.save_pretrained(out)
    processor.save_pretrained(out)
    card = load_card(Path(folder))
    card.update({"name": name or card.get("name"), "label": label or card.get("label")})
    card["export"] = {"dtype": dtype, "from": str(folder)}
    save_card(out, card)
    return out
