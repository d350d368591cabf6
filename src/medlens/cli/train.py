"""``medlens train sft|grpo|dpo``: fine-tune a vision-language model on benchmark train splits.

Rows go through the same study loading, de-identification, recipes and prompt templates as
``medlens eval`` (``medlens.train.data``), with the benchmark's leakage exclusions. The output
folder is a standard Hugging Face model (``save_pretrained``) that every medlens backend loads,
with ``training_card.json`` and ``README.md``; a killed run continues from its last checkpoint
when started again with the same command.

medlens-tiny was trained with:

  medlens train sft --init qwen2_5_vl:tiny --data slake,vqa-rad,slake-grounding \\
      --repeat slake-grounding=2 --data-dir ../shared/data --exclude-test-images --epochs 6 \\
      --batch-size 8 --lr 5e-4 --augment standard --threads 2 --save-steps 300 \\
      --output runs/medlens-tiny
"""

from __future__ import annotations

import argparse

from medlens.train.augment import AUGMENTS

COMMAND = "train"
ORDER = 25


def _common(parser: argparse.ArgumentParser, *, fresh: bool = True) -> None:
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data",
        required=True,
        help="benchmark(s) whose train split to use, and/or rows files of your own "
        "(.jsonl/.json/.csv/.tsv: question, image, answer[, kind, candidates, boxes]), "
        "comma-separated: slake,vqa-rad,my_rows.jsonl",
    )
    data.add_argument(
        "--repeat",
        metavar="NAME=K",
        help="show benchmark NAME's rows K times per epoch, comma-separated (a mixing weight "
        "for a source that is small or slow to learn, e.g. slake-grounding=2); in the card",
    )
    data.add_argument(
        "--balance-closed",
        action="store_true",
        help="show every answer of a closed question asked of several images equally often "
        "(extra copies of the rarer answers), so that yes/no can only be learnt from the image; "
        "in the card",
    )
    data.add_argument("--split", default="train", help="split to train on (default: train)")
    data.add_argument("--data-dir", help="folder with the original releases (or $MEDLENS_DATA)")
    data.add_argument(
        "--exclude-test-images",
        action="store_true",
        help="drop train rows on test images (VQA-RAD shares all its test images with "
        "train); recorded in the card",
    )
    data.add_argument("--limit", type=int, help="first N rows per benchmark (smoke runs)")
    data.add_argument(
        "--no-deid",
        action="store_true",
        help="do NOT de-identify studies and questions (only for data you may share as is)",
    )
    model = parser.add_argument_group("model")
    if fresh:
        start = model.add_mutually_exclusive_group(required=True)
        start.add_argument("--model", help="folder or Hugging Face id of the model to fine-tune")
        start.add_argument(
            "--init", help="a fresh model from a named config: qwen2_5_vl:tiny, qwen2_5_vl:small"
        )
    else:
        model.add_argument(
            "--model", required=True, help="folder or Hugging Face id (e.g. an SFT output)"
        )
        parser.set_defaults(init=None)
    model.add_argument(
        "--lora",
        metavar="SPEC",
        help="LoRA instead of full fine-tuning, e.g. r=16,alpha=32,targets=q_proj+v_proj",
    )
    model.add_argument(
        "--merge", action="store_true", help="also save the LoRA merged into the base weights"
    )
    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--output", required=True, help="output folder (resumes when it exists)")
    opt.add_argument("--epochs", type=float, default=1.0)
    opt.add_argument("--max-steps", type=int, help="stop after this many steps")
    opt.add_argument("--batch-size", type=int, default=8)
    opt.add_argument("--grad-accum", type=int, default=1)
    opt.add_argument("--lr", type=float, default=2e-4, help="peak learning rate")
    opt.add_argument("--scheduler", default="cosine", help="transformers LR schedule name")
    opt.add_argument("--warmup", type=float, default=0.03, help="ratio (<1) or steps")
    opt.add_argument("--weight-decay", type=float, default=0.0)
    opt.add_argument("--seed", type=int, default=0)
    opt.add_argument("--save-steps", type=int, default=200)
    opt.add_argument("--logging-steps", type=int, default=10)
    opt.add_argument(
        "--sampler",
        choices=("random", "group_by_length"),
        default="random",
        help="batch order: shuffled (default) or grouped by length (less padding)",
    )
    opt.add_argument(
        "--augment",
        choices=AUGMENTS,
        default="none",
        help="redraw images each time a row is shown: photometric (brightness, contrast, "
        "gamma) or standard (also zoom, shift, small rotation on rows without gold boxes; "
        "never flips)",
    )
    opt.add_argument("--threads", type=int, help="torch threads (2 at most on a shared machine)")
    opt.add_argument("--no-progress", action="store_true")
    after = parser.add_argument_group("evaluation of the result")
    after.add_argument(
        "--eval",
        metavar="BENCHMARKS",
        help="run medlens eval on these test splits afterwards and record it in the card",
    )
    after.add_argument("--eval-limit", type=int, help="first N test questions per benchmark")
    after.add_argument(
        "--eval-sanity",
        default="blank,swap,no-image",
        help="sanity checks beside the model (default: %(default)s)",
    )


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        COMMAND,
        help="fine-tune a VLM on benchmark train splits (SFT/LoRA, GRPO, DPO on TRL)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    methods = parser.add_subparsers(dest="method", metavar="METHOD", required=True)
    sft = methods.add_parser("sft", help="supervised fine-tuning on the gold answers")
    _common(sft)
    grpo = methods.add_parser(
        "grpo", help="GRPO with rewards from the scoring protocols (accuracy, format, iou)"
    )
    _common(grpo, fresh=False)
    rl = grpo.add_argument_group("GRPO")
    rl.add_argument(
        "--reward",
        default="accuracy",
        help="reward(s), comma-separated: accuracy[:protocol=NAME], format:preset=med-r1|"
        "med-r1-nothink, iou (default: %(default)s)",
    )
    rl.add_argument("--reward-weights", help="one weight per reward, comma-separated")
    rl.add_argument("--generations", type=int, default=4, help="completions per prompt")
    rl.add_argument("--max-completion-length", type=int, default=32)
    rl.add_argument("--temperature", type=float, default=1.0)
    rl.add_argument("--beta", type=float, default=0.0, help="KL weight (default: none)")
    dpo = methods.add_parser("dpo", help="DPO on pairs medlens builds from the model's answers")
    _common(dpo, fresh=False)
    pref = dpo.add_argument_group("DPO")
    pref.add_argument(
        "--pairs",
        default="own-wrong,lesion-noised",
        help="pair builders, comma-separated: own-wrong, lesion-noised (default: %(default)s)",
    )
    pref.add_argument(
        "--protocol", default="medlens", help="protocol that judges the model's answers wrong"
    )
    pref.add_argument("--beta", type=float, default=0.1, help="DPO temperature beta")
    return parser


def parse_repeat(value: str | None, benchmarks: tuple[str, ...]) -> dict[str, int]:
    """``--repeat slake-grounding=2`` → ``{"slake-grounding": 2}``, for benchmarks of --data."""
    from medlens.errors import ConfigError

    repeat: dict[str, int] = {}
    for piece in _names(value):
        name, _, times = piece.partition("=")
        if name not in benchmarks or not times.isdigit() or int(times) < 1:
            raise ConfigError(
                f"--repeat {piece!r}: expected NAME=K with NAME one of --data "
                f"({', '.join(benchmarks)}) and K a whole number >= 1, e.g. "
                f"--repeat {benchmarks[-1]}=2"
            )
        repeat[name] = int(times)
    return repeat


def _names(value: str | None) -> tuple[str, ...]:
    return tuple(n.strip() for n in (value or "").split(",") if n.strip())


def run(args: argparse.Namespace) -> int:
    from medlens.train.data import DataSpec
    from medlens.train.models import LoraSpec
    from medlens.train.run import Hyper

    data = DataSpec(
        benchmarks=_names(args.data),
        repeat=parse_repeat(args.repeat, _names(args.data)),
        split=args.split,
        data_dir=args.data_dir,
        exclude_test_images=args.exclude_test_images,
        balance_closed=args.balance_closed,
        deidentify=not args.no_deid,
        model=args.model,
        limit=args.limit,
    )
    hyper = Hyper(
        epochs=args.epochs,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        learning_rate=args.lr,
        scheduler=args.scheduler,
        warmup=args.warmup,
        weight_decay=args.weight_decay,
        seed=args.seed,
        save_steps=args.save_steps,
        logging_steps=args.logging_steps,
        threads=args.threads,
        sampler=args.sampler,
        augment=args.augment,
    )
    lora = LoraSpec.parse(args.lora) if args.lora else None
    progress = not args.no_progress
    if args.method == "grpo":
        from medlens.bench.treatments import split_probe_list
        from medlens.train.grpo import GRPOSpec, train_grpo

        out = train_grpo(
            GRPOSpec(
                data=data,
                output=args.output,
                model=args.model,
                rewards=split_probe_list(args.reward),
                reward_weights=tuple(float(w) for w in _names(args.reward_weights)),
                num_generations=args.generations,
                max_completion_length=args.max_completion_length,
                temperature=args.temperature,
                beta=args.beta,
                lora=lora,
                merge=args.merge,
                hyper=hyper,
            ),
            progress=progress,
        )
    elif args.method == "dpo":
        from medlens.train.dpo import DPOSpec, train_dpo

        out = train_dpo(
            DPOSpec(
                data=data,
                output=args.output,
                model=args.model,
                pairs=_names(args.pairs),
                protocol=args.protocol,
                beta=args.beta,
                lora=lora,
                merge=args.merge,
                hyper=hyper,
            ),
            progress=progress,
        )
    else:
        from medlens.train.sft import SFTSpec, train_sft

        out = train_sft(
            SFTSpec(
                data=data,
                output=args.output,
                model=args.model,
                init=args.init,
                lora=lora,
                merge=args.merge,
                hyper=hyper,
            ),
            progress=progress,
        )
    print(f"saved {out} (training card: {out / 'training_card.json'})")
    if args.eval:
        from medlens.train.evaluate import evaluate_folder

        record = evaluate_folder(
            out,
            _names(args.eval),
            data_dir=args.data_dir,
            limit=args.eval_limit,
            sanity=_names(args.eval_sanity),
            progress=progress,
        )
        for bench, runs in record["runs"].items():
            for label, result in runs.items():
                shown = ", ".join(
                    f"{k} {100 * v['value']:.1f}"
                    for k, v in result["headline"].items()
                    if v.get("n")
                )
                print(f"{bench:<16} {label:<22} {shown}")
    return 0
