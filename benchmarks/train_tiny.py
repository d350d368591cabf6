"""medlens-tiny, measured: train it with the README command, ship it, evaluate and calibrate
it, then GRPO and DPO from it.

    python benchmarks/train_tiny.py --data-dir ../shared/data --out runs [--steps train,ship,
        eval,calibrate,grpo,dpo] [--rl-steps 200] [--eval-limit N]

Steps (each one ``medlens`` command, printed before it runs, so every figure comes with the
exact command that made it):

- ``train``: ``medlens train sft --init qwen2_5_vl:tiny ...`` (the README command): wall time
  and the CPU seconds it used (on a shared machine the second is what an idle one needs);
- ``ship``: the result as fp16 (``OUT/medlens-tiny-fp16``) with its card, copied into the
  package as the shipped ``medlens-tiny`` (``hub.SHIPPED_MODELS``), and the card's
  fixed-subset SLAKE test figure (first 200 questions) under that name, as
  ``medlens eval slake --model medlens-tiny --limit 200`` prints it;
- ``eval``: ``medlens eval slake,vqa-rad,slake-grounding --model OUT/medlens-tiny-fp16 --sanity
  blank,swap,no-image`` (baselines beside it);
- ``calibrate``: ``medlens calibrate --benchmark slake --kind closed|open`` on SLAKE
  validation, evaluated on test (ECE before/after, AUROC, coverage and risk at 5 % target
  risk), then ``medlens eval slake --calibration medlens-tiny-open`` (answered/abstained);
- ``grpo`` / ``dpo``: ``--rl-steps`` steps each from the shipped SFT model, then the SLAKE and
  VQA-RAD test accuracy of each result beside the SFT model's.
"""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MEDLENS = [sys.executable, "-m", "medlens.cli.main"]
LABEL = (
    "medlens-tiny — a ~5M-parameter demonstration model trained on SLAKE and VQA-RAD train "
    "splits by `medlens train`; not a clinical model"
)
CARD_SUBSET = 200
"""The card's fixed subset: the first 200 SLAKE test questions in release order."""


def medlens(*args: str) -> float:
    """Run one ``medlens`` command, echoing it; returns its wall time."""
    print("$ medlens " + " ".join(shlex.quote(a) for a in args), flush=True)
    started = time.perf_counter()
    subprocess.run([*MEDLENS, *args], check=True, cwd=ROOT)
    return time.perf_counter() - started


def train_command(data_dir: str, out: Path) -> list[str]:
    return [
        "train", "sft", "--init", "qwen2_5_vl:tiny",
        "--data", "slake,vqa-rad,slake-grounding", "--repeat", "slake-grounding=2",
        "--data-dir", data_dir, "--exclude-test-images", "--epochs", "6", "--batch-size", "8", "--lr", "5e-4",
        "--augment", "standard", "--threads", "2", "--save-steps", "300", "--output", str(out / "medlens-tiny"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--out", default="runs")
    parser.add_argument("--steps", default="train,ship,eval,calibrate,grpo,dpo")
    parser.add_argument("--rl-steps", type=int, default=200)
    parser.add_argument("--eval-limit", type=int)
    args = parser.parse_args()
    steps = set(args.steps.split(","))
    out = Path(args.out).resolve()
    data = args.data_dir
    limit = ["--limit", str(args.eval_limit)] if args.eval_limit else []
    shipped = out / "medlens-tiny-fp16"

    if "train" in steps:
        wall = medlens(*train_command(data, out))
        cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
        print(f"train: wall {wall / 60:.1f} min, CPU {(cpu.ru_utime + cpu.ru_stime) / 60:.1f} min")
    if "ship" in steps:
        from medlens.hub import SHIPPED_MODELS
        from medlens.train.evaluate import evaluate_folder
        from medlens.train.run import export_model

        export_model(out / "medlens-tiny", shipped, name="medlens-tiny", label=LABEL)
        package = SHIPPED_MODELS["medlens-tiny"].folder
        shutil.rmtree(package, ignore_errors=True)
        shutil.copytree(shipped, package)
        record = evaluate_folder(
            package,
            ["slake"],
            data_dir=data,
            limit=CARD_SUBSET,
            baselines=False,
            name=f"slake-test-first-{CARD_SUBSET}",
            store_path=out / "card-eval.sqlite",
            model="medlens-tiny",
        )
        size = sum(p.stat().st_size for p in package.iterdir()) / 2**20
        print(f"ship: {package} ({size:.1f} MiB)")
        print(json.dumps(record["runs"]["slake"]["model"]["headline"], indent=1))
    if "eval" in steps:
        medlens(
            "eval", "slake,vqa-rad,slake-grounding", "--model", str(shipped),
            "--data-dir", data, "--sanity", "blank,swap,no-image", "--protocol", "medlens",
            "--store", str(out / "eval.sqlite"), "--batch-size", "16", *limit,
        )  # fmt: skip
    if "calibrate" in steps:
        for kind in ("closed", "open"):  # closed is kept even when it would answer nothing
            medlens(
                "calibrate", "--benchmark", "slake", "--model", str(shipped), "--kind", kind,
                "--name", f"medlens-tiny-{kind}", "--target-risk", "0.05", "--min-coverage",
                "0", "--evaluate", "test", "--data-dir", data,
            )  # fmt: skip
        medlens(
            "eval", "slake", "--model", str(shipped), "--calibration", "medlens-tiny-open",
            "--data-dir", data, "--no-baselines", "--protocol", "medlens", "--store",
            str(out / "eval-calibrated.sqlite"), *limit,
        )  # fmt: skip
    for method in ("grpo", "dpo"):
        if method not in steps:
            continue
        extra = (
            ["--reward", "accuracy,iou", "--generations", "4", "--max-completion-length", "24",
             "--batch-size", "8", "--lr", "2e-5"]
            if method == "grpo"
            else ["--pairs", "own-wrong,lesion-noised", "--batch-size", "8", "--lr", "5e-6"]
        )  # fmt: skip
        folder = out / f"medlens-tiny-{method}"
        medlens(
            "train", method, "--model", str(shipped), "--data", "slake,vqa-rad,slake-grounding",
            "--data-dir", data, "--exclude-test-images", "--max-steps", str(args.rl_steps),
            "--threads", "1", "--logging-steps", "10", "--output", str(folder), *extra,
        )  # fmt: skip
        card = json.loads((folder / "training_card.json").read_text())
        curve = [
            (h["step"], h.get("reward", h.get("loss")))
            for h in card["history"]
            if "reward" in h or "loss" in h
        ]
        print(f"{method} curve (step, reward or loss): {curve}")
        medlens(
            "eval", "slake,vqa-rad", "--model", str(folder), "--data-dir", data,
            "--no-baselines", "--protocol", "medlens", "--store", str(out / "eval.sqlite"),
            "--batch-size", "16", *limit,
        )  # fmt: skip


if __name__ == "__main__":
    main()
