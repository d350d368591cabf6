"""SFT (full and LoRA), GRPO and DPO on tiny models: a few real TRL steps each, the saved
folder loads in the transformers backend and answers, a killed run resumes."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medlens.train.data import DataSpec
from medlens.train.run import Hyper

pytestmark = pytest.mark.slow

STEPS = Hyper(max_steps=2, batch_size=4, learning_rate=1e-3, save_steps=1, logging_steps=1)


def weights(folder: Path) -> dict[str, object]:
    from safetensors.torch import load_file

    return load_file(str(next(folder.glob("*.safetensors"))))


def changed(before: dict[str, object], after: dict[str, object]) -> int:
    import torch

    return sum(
        not torch.equal(before[k], after[k])  # type: ignore[arg-type]
        for k in before
        if k in after
    )


def answers(folder: Path, data) -> list[str]:  # type: ignore[no-untyped-def]
    from medlens.backends.base import load_backend
    from medlens.train.data import row_request

    backend = load_backend(str(folder), backend="transformers", device="cpu")
    try:
        generations = backend.generate([row_request(r) for r in data.rows[:3]])
    finally:
        backend.close()
    assert all(g.finish_reason != "error" for g in generations), generations
    return [g.text for g in generations]


def test_sft_full_two_steps_changes_weights_and_saves_a_loadable_model(
    tiny_qwen: Path, synthetic_data, tmp_path: Path
) -> None:
    from medlens.train.card import load_card
    from medlens.train.sft import SFTSpec, train_sft

    out = train_sft(
        SFTSpec(DataSpec(("synthetic",)), str(tmp_path / "sft"), model=str(tiny_qwen), hyper=STEPS),
        progress=False,
        data=synthetic_data,
    )
    assert changed(weights(tiny_qwen), weights(out)) > 10
    card = load_card(out)
    losses = [h["loss"] for h in card["history"] if "loss" in h]
    assert len(losses) == 2 and all(0 < loss < 100 for loss in losses)
    assert card["steps"] == 2 and card["base"] == str(tiny_qwen)
    assert len(card["data"]["task_versions"]) == 3
    assert card["parameters"]["trainable"] == card["parameters"]["total"]
    assert isinstance(answers(out, synthetic_data)[0], str)


def test_sft_lora_trains_only_the_adapter_and_merges(
    tiny_qwen: Path, synthetic_data, tmp_path: Path
) -> None:
    from medlens.train.card import load_card
    from medlens.train.models import LoraSpec
    from medlens.train.sft import SFTSpec, train_sft

    lora = LoraSpec.parse("r=4,alpha=8,targets=q_proj+v_proj")
    out = train_sft(
        SFTSpec(
            DataSpec(("synthetic",)),
            str(tmp_path / "lora"),
            model=str(tiny_qwen),
            lora=lora,
            merge=True,
            hyper=STEPS,
        ),
        progress=False,
        data=synthetic_data,
    )
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["r"] == 4 and sorted(adapter["target_modules"]) == ["q_proj", "v_proj"]
    card = load_card(out)
    assert 0 < card["parameters"]["trainable"] < card["parameters"]["total"] / 10
    merged = out / "merged"
    assert changed(weights(tiny_qwen), weights(merged)) > 0
    assert isinstance(answers(merged, synthetic_data)[0], str)
    assert isinstance(answers(out, synthetic_data)[0], str)  # the adapter folder loads too


def test_lora_and_processor_errors_are_clear(tiny_qwen: Path, tmp_path: Path) -> None:
    from medlens.errors import ConfigError
    from medlens.train.models import LoraSpec, apply_lora, check_processor, load_model

    with pytest.raises(ConfigError, match="key=value"):
        LoraSpec.parse("rank=4")
    model, processor = load_model(str(tiny_qwen))
    with pytest.raises(ConfigError, match="not module names"):
        apply_lora(model, LoraSpec(targets=("nope_proj",)))
    with pytest.raises(ConfigError, match="takes no images"):
        check_processor(processor.tokenizer, "text-only")


@pytest.fixture(scope="module")
def answering_tiny(tiny_qwen: Path, synthetic_data, tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    """The tiny model after a few SFT steps on the synthetic rows: it now answers yes/no and
    left/right, so sampled answers differ in reward (a random one is wrong every time)."""
    from medlens.train.sft import SFTSpec, train_sft

    hyper = Hyper(max_steps=30, batch_size=8, learning_rate=3e-3, save_steps=100)
    out = tmp_path_factory.mktemp("answering") / "model"
    return train_sft(
        SFTSpec(DataSpec(("synthetic",)), str(out), model=str(tiny_qwen), hyper=hyper),
        progress=False,
        data=synthetic_data,
    )


def test_grpo_two_steps_with_protocol_rewards(
    answering_tiny: Path, synthetic_data, tmp_path: Path
) -> None:
    from medlens.train.card import load_card
    from medlens.train.grpo import GRPOSpec, train_grpo

    vqa = type(synthetic_data)(
        [r for r in synthetic_data.rows if r["kind"] != "grounding"],
        [],
        synthetic_data.recipes,
        synthetic_data.task_versions,
    )
    out = train_grpo(
        GRPOSpec(
            DataSpec(("synthetic",)),
            str(tmp_path / "grpo"),
            model=str(answering_tiny),
            rewards=("accuracy", "iou"),
            num_generations=4,
            max_completion_length=8,
            temperature=1.0,
            hyper=Hyper(max_steps=4, batch_size=8, learning_rate=1e-2, logging_steps=1),
        ),
        progress=False,
        data=vqa,
    )
    card = load_card(out)
    logged = [h for h in card["history"] if "reward" in h]
    assert len(logged) == 4
    assert all(0.0 <= h["rewards/accuracy_medlens/mean"] <= 1.0 for h in logged)
    assert all(math.isfinite(h["loss"]) for h in logged)
    assert card["spec"]["rewards"] == ["accuracy", "iou"]
    # Weights move only where a group's rewards differ (GRPO's advantage is reward minus the
    # group mean). TRL samples from the whole vocabulary (no top-k), so the barely trained
    # model writes noise about half the time at temperature 1.0 (at 1.5, nearly always) and a
    # right answer to a question now and then: 8 groups of 4 (4 steps of 2 prompts) make a
    # group with a right and a wrong answer near certain, and the policy gradient not zero.
    assert any(h["reward_std"] > 0 for h in logged)
    assert changed(weights(answering_tiny), weights(out)) > 0
    assert isinstance(answers(out, synthetic_data)[0], str)


def test_dpo_two_steps_on_the_models_own_wrong_answers(
    tiny_qwen: Path, synthetic_data, tmp_path: Path
) -> None:
    from medlens.train.card import load_card
    from medlens.train.dpo import DPOSpec, train_dpo

    small = type(synthetic_data)(
        synthetic_data.rows[:6], [], synthetic_data.recipes, synthetic_data.task_versions
    )
    out = train_dpo(
        DPOSpec(
            DataSpec(("synthetic",)),
            str(tmp_path / "dpo"),
            model=str(tiny_qwen),
            pairs=("own-wrong",),
            hyper=Hyper(max_steps=2, batch_size=2, learning_rate=1e-3, logging_steps=1),
        ),
        progress=False,
        data=small,
    )
    card = load_card(out)
    assert card["spec"]["pairs"]["own-wrong"] > 0
    losses = [h["loss"] for h in card["history"] if "loss" in h]
    assert len(losses) == 2 and all(math.isfinite(loss) and loss > 0 for loss in losses)
    assert changed(weights(tiny_qwen), weights(out)) > 0


RESUMABLE = """
import sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from conftest import write_studies
from medlens.train.data import DataSpec, from_samples
from medlens.train.run import Hyper
from medlens.train.sft import SFTSpec, train_sft
data = from_samples(write_studies(Path({studies!r})))
hyper = Hyper(max_steps=6, batch_size=4, learning_rate=1e-3, save_steps=2, logging_steps=1,
              threads=1)
train_sft(SFTSpec(DataSpec(("synthetic",)), {out!r}, model={model!r}, hyper=hyper),
          progress=False, data=data)
"""


def test_a_killed_run_resumes_from_its_last_checkpoint(tiny_qwen: Path, tmp_path: Path) -> None:
    out = tmp_path / "resumed"
    script = RESUMABLE.format(
        tests=str(Path(__file__).parent),
        studies=str(tmp_path / "studies"),
        out=str(out),
        model=str(tiny_qwen),
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen([sys.executable, "-c", script], env=env)
    deadline = time.time() + 600
    while not (out / "checkpoint-2" / "trainer_state.json").exists():
        assert first.poll() is None, "the run ended before its first checkpoint"
        assert time.time() < deadline
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert not (out / "training_card.json").exists()
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=600)
    sessions = json.loads((out / "sessions.json").read_text())
    assert len(sessions) == 1 and sessions[0]["resumed_from"].startswith("checkpoint-")
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    steps = [h["step"] for h in state["log_history"] if "loss" in h]
    assert steps[-1] == 6 and int(sessions[0]["resumed_from"].split("-")[1]) >= 2


def test_a_resumed_run_continues_from_the_checkpoints_weights(
    tiny_qwen: Path, synthetic_data, tmp_path: Path
) -> None:
    """Not from the starting weights: Trainer's own resume matched no key of a transformers 5
    Qwen2.5-VL checkpoint and loaded nothing, without a word."""
    from medlens.train.run import start_run
    from medlens.train.sft import SFTSpec, train_sft

    out = tmp_path / "run"
    train_sft(
        SFTSpec(DataSpec(("synthetic",)), str(out), model=str(tiny_qwen), hyper=STEPS),
        progress=False,
        data=synthetic_data,
    )
    checkpoint = out / "checkpoint-2"
    saved = weights(checkpoint)
    assert changed(weights(tiny_qwen), saved) > 10  # the checkpoint moved away from the start
    context = start_run("sft", out, str(tiny_qwen), None, None, synthetic_data, STEPS)
    assert context.resume == str(checkpoint)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in context.model.state_dict().items()},
              str(tmp_path / "now.safetensors"))  # fmt: skip
    mapped = {k.replace("model.language_model.", "model."): v for k, v in weights(tmp_path).items()}
    assert len(set(saved) & set(mapped)) > 20
    assert changed(saved, mapped) == 0
