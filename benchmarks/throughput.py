"""Throughput of the medlens transformers backend against the plain batch-1 ``generate`` loop.

The model is a real architecture at its published size (config.json values written out
below) with random weights, so the figures are what the real checkpoint would give, minus
nothing: the number of layers, widths, image tokens and vocabulary are the same. The workload
is fixed: ``--requests`` VQA questions on ``--image-size`` square images, ``--new-tokens``
tokens with EOS suppressed (every request decodes exactly that many, as in vLLM's
``benchmark_throughput --ignore-eos``), then the same questions in scoring mode (yes/no).

The cost of confidence: the same generation run again with log-probabilities, once with the
top-5 alternatives at every token (what medlens used to ask for on every question) and once
with the chosen tokens' logprobs only (what sequence confidence reads, and the default now
for open questions, reports and boxes; closed and multiple-choice questions keep top-5 for
candidate confidence, over their short budget).

It prints requests/s and output tokens/s for both, their ratio, the decode-step time at
batch 1 against the memory-bandwidth roofline (weights read per step / measured
device-to-device copy bandwidth), peak memory, and greedy agreement between medlens and the
plain loop (token for token; exact in float32, an agreement rate in bf16).

    python benchmarks/throughput.py --model qwen2_5_vl_3b            # on a GPU
    python benchmarks/throughput.py --tiny --device cpu              # seconds, smoke test
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from dataclasses import replace
from typing import Any

import torch
from PIL import Image

from medlens.backends.transformers import TransformersBackend
from medlens.testing.tiny import build_model
from medlens.types import GenerationOptions, ImagePart, Message, Request, TextPart

# Published config.json values (Hugging Face Hub, Qwen/Qwen2.5-VL-3B-Instruct,
# Qwen/Qwen2.5-VL-7B-Instruct, google/gemma-3-4b-it); token ids come from the local tokenizer.
_QWEN_VISION = {
    "depth": 32,
    "hidden_size": 1280,
    "intermediate_size": 3420,
    "num_heads": 16,
    "patch_size": 14,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
    "window_size": 112,
    "fullatt_block_indexes": [7, 15, 23, 31],
    "tokens_per_second": 2,
}
_QWEN_PIXELS = {"min_pixels": 3136, "max_pixels": 12845056}
_MROPE = {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]}
MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "qwen2_5_vl_3b": (
        "qwen2_5_vl",
        {
            "text": {
                "vocab_size": 151936,
                "hidden_size": 2048,
                "intermediate_size": 11008,
                "num_hidden_layers": 36,
                "num_attention_heads": 16,
                "num_key_value_heads": 2,
                "max_position_embeddings": 128000,
                "rms_norm_eps": 1e-6,
                "rope_parameters": _MROPE,
                "tie_word_embeddings": True,
                "initializer_range": 0.02,
            },
            "vision": {**_QWEN_VISION, "out_hidden_size": 2048},
            "image_processor": _QWEN_PIXELS,
        },
    ),
    "qwen2_5_vl_7b": (
        "qwen2_5_vl",
        {
            "text": {
                "vocab_size": 152064,
                "hidden_size": 3584,
                "intermediate_size": 18944,
                "num_hidden_layers": 28,
                "num_attention_heads": 28,
                "num_key_value_heads": 4,
                "max_position_embeddings": 128000,
                "rms_norm_eps": 1e-6,
                "rope_parameters": _MROPE,
                "tie_word_embeddings": False,
                "initializer_range": 0.02,
            },
            "vision": {**_QWEN_VISION, "out_hidden_size": 3584},
            "image_processor": _QWEN_PIXELS,
        },
    ),
    "gemma3_4b": (
        "gemma3",
        {
            "text": {
                "vocab_size": 262208,
                "hidden_size": 2560,
                "intermediate_size": 10240,
                "num_hidden_layers": 34,
                "num_attention_heads": 8,
                "num_key_value_heads": 4,
                "head_dim": 256,
                "query_pre_attn_scalar": 256,
                "sliding_window": 1024,
                "sliding_window_pattern": 6,
                "max_position_embeddings": 131072,
                "rope_parameters": {
                    "full_attention": {
                        "rope_type": "linear",
                        "factor": 8.0,
                        "rope_theta": 1000000.0,
                    },
                    "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                },
                "initializer_range": 0.02,
            },
            "vision": {
                "hidden_size": 1152,
                "intermediate_size": 4304,
                "num_hidden_layers": 27,
                "num_attention_heads": 16,
                "image_size": 896,
                "patch_size": 14,
                "vision_use_head": False,
            },
            "config": {"mm_tokens_per_image": 256},
        },
    ),
}
QUESTIONS = (
    "Is there a pleural effusion?",
    "Which organ is abnormal in this image?",
    "Is this a CT or an MRI scan?",
    "Where is the lesion located?",
    "Is the heart enlarged?",
    "How many nodules are visible?",
)


def workload(
    n: int, side: int, options: GenerationOptions, candidates: tuple[str, ...] = ()
) -> list[Request]:
    """``n`` VQA requests on distinct noise images (fixed seed), cycling through QUESTIONS."""
    gen = torch.Generator().manual_seed(0)
    reqs = []
    for i in range(n):
        pixels = torch.randint(0, 256, (side, side, 3), generator=gen, dtype=torch.uint8)
        img = Image.fromarray(pixels.numpy(), "RGB")
        q = QUESTIONS[i % len(QUESTIONS)]
        msg = Message("user", (ImagePart(img), TextPart(q)))
        reqs.append(Request(f"q{i}", (msg,), "closed", q, options=options, candidates=candidates))
    return reqs


def hf_inputs(processor: Any, req: Request, device: torch.device, dtype: torch.dtype) -> Any:
    """The model-card way: ``apply_chat_template(..., tokenize=True)`` on one request."""
    content = [
        {"type": "image", "image": p.image}
        if isinstance(p, ImagePart)
        else {"type": "text", "text": p.text}
        for p in req.messages[0].content
    ]
    enc = processor.apply_chat_template(
        [{"role": "user", "content": content}],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
    )
    return {
        k: v.to(device, dtype) if v.is_floating_point() else v.to(device) for k, v in enc.items()
    }


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_generate(
    model: Any, processor: Any, reqs: list[Request], new: int
) -> tuple[float, list[list[int]]]:
    """The baseline: one request at a time through ``model.generate``, greedy, EOS suppressed."""
    device, dtype = model.device, next(model.parameters()).dtype
    outs = []
    t0 = time.perf_counter()
    for req in reqs:
        enc = hf_inputs(processor, req, device, dtype)
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=new, min_new_tokens=new, do_sample=False)
        outs.append(out[0, enc["input_ids"].shape[1] :].tolist())
    sync(device)
    return time.perf_counter() - t0, outs


def plain_score(model: Any, processor: Any, reqs: list[Request]) -> float:
    """Baseline scoring: one forward per (request, candidate), batch 1."""
    device, dtype = model.device, next(model.parameters()).dtype
    t0 = time.perf_counter()
    for req in reqs:
        enc = hf_inputs(processor, req, device, dtype)
        for cand in req.candidates:
            ids = processor.tokenizer.encode(cand, add_special_tokens=False)
            grow = torch.tensor([ids], device=device)
            full = {
                k: torch.cat(
                    [
                        v,
                        grow
                        if k == "input_ids"
                        else torch.ones_like(grow) * (k == "attention_mask"),
                    ],
                    1,
                )
                if v.shape[:2] == enc["input_ids"].shape
                else v
                for k, v in enc.items()
            }
            with torch.inference_mode():
                model(**full).logits[0, -len(ids) - 1 : -1].float().log_softmax(-1)
    sync(device)
    return time.perf_counter() - t0


def copy_bandwidth(device: torch.device, nbytes: int) -> float:
    """Bytes/s of a device-to-device copy (read + write counted), best of 5."""
    src = torch.empty(nbytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = float("inf")
    for _ in range(5):
        sync(device)
        t0 = time.perf_counter()
        dst.copy_(src)
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * nbytes / best


def decode_weight_bytes(model: Any) -> int:
    """Bytes of weights one decode step reads: the language model and LM head, not the vision
    tower, and not the input embedding table unless it is tied to the head."""
    vision = ("visual", "vision_tower", "vision_model", "multi_modal_projector")
    emb, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    total = 0
    for name, p in model.named_parameters():
        if any(v in name for v in vision) or (p is emb and emb is not head):
            continue
        total += p.numel() * p.element_size()
    return total


def decode_step_s(model: Any, processor: Any, req: Request, new: int) -> float:
    """Seconds per decode step at batch 1: (generate n+1 tokens - generate 1) / n."""
    device, dtype = model.device, next(model.parameters()).dtype
    enc = hf_inputs(processor, req, device, dtype)

    def run(k: int) -> float:
        best = float("inf")
        for _ in range(2):
            sync(device)
            t0 = time.perf_counter()
            with torch.inference_mode():
                model.generate(**enc, max_new_tokens=k, min_new_tokens=k, do_sample=False)
            sync(device)
            best = min(best, time.perf_counter() - t0)
        return best

    return (run(new + 1) - run(1)) / new


def agreement(a: list[list[str]], b: list[list[str]]) -> tuple[float, float]:
    """(share of requests identical token for token, share of tokens equal up to the first
    divergence)."""
    same = sum(x == y for x, y in zip(a, b)) / len(a)
    prefix = 0
    for x, y in zip(a, b):
        n = next((i for i, (p, q) in enumerate(zip(x, y)) if p != q), min(len(x), len(y)))
        prefix += n
    return same, prefix / sum(len(x) for x in a)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", choices=sorted(MODELS), default="qwen2_5_vl_3b")
    ap.add_argument("--tiny", action="store_true", help="tiny model of the same family (CPU smoke)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", choices=("auto", "float32", "bfloat16"), default="auto")
    ap.add_argument("--requests", type=int, default=512)
    ap.add_argument(
        "--baseline-requests", type=int, default=64, help="plain loop runs on the first N"
    )
    ap.add_argument("--image-size", type=int, default=448)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--compile-decode", action="store_true")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}.get(
        args.dtype, torch.bfloat16 if device.type == "cuda" else torch.float32
    )
    family, overrides = MODELS[args.model]
    torch.set_grad_enabled(False)
    t0 = time.perf_counter()
    with torch.device(device):
        model, processor = build_model(
            family, overrides=None if args.tiny else overrides, dtype=dtype
        )
    model = model.to(device)
    name = f"{args.model}{'-tiny' if args.tiny else ''}"
    figures: dict[str, Any] = {
        "model": name,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "dtype": str(dtype).removeprefix("torch."),
        "parameters": sum(p.numel() for p in model.parameters()),
        "build_s": time.perf_counter() - t0,
    }
    backend = TransformersBackend.from_model(
        model,
        processor,
        model_id=name,
        batch_size=args.batch_size,
        compile_decode=args.compile_decode,
        ignore_eos=True,
    )
    greedy = GenerationOptions(max_new_tokens=args.new_tokens, top_logprobs=0, logprobs=False)
    reqs = workload(args.requests, args.image_size, greedy)
    nb = min(args.baseline_requests, len(reqs))
    backend.generate(reqs[: min(2 * args.batch_size, len(reqs))])  # warm-up (and compile)
    plain_generate(model, processor, reqs[:1], args.new_tokens)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    base_s, base_out = plain_generate(model, processor, reqs[:nb], args.new_tokens)
    sync(device)
    t0 = time.perf_counter()
    gens = backend.generate(reqs)
    sync(device)
    ours_s = time.perf_counter() - t0
    errors = [g.error for g in gens if g.error]
    if errors:
        print(f"medlens errors: {errors[:3]}", file=sys.stderr)
        return 1
    # Agreement from token pieces (the timed run skips logprobs, as a throughput run would).
    tok = processor.tokenizer
    with_tokens = replace(greedy, logprobs=True)
    checked = backend.generate([replace(r, options=with_tokens) for r in reqs[:nb]])
    ours_out = [[t.token for t in g.tokens] for g in checked]
    base_pieces = [[tok.decode([i]) for i in o] for o in base_out]
    same, token_rate = agreement(base_pieces, ours_out)
    figures |= {
        "requests": len(reqs),
        "baseline_requests": nb,
        "new_tokens": args.new_tokens,
        "batch_size": args.batch_size,
        "plain_requests_per_s": nb / base_s,
        "plain_tokens_per_s": nb * args.new_tokens / base_s,
        "medlens_requests_per_s": len(reqs) / ours_s,
        "medlens_tokens_per_s": len(reqs) * args.new_tokens / ours_s,
        "speedup": (len(reqs) / ours_s) / (nb / base_s),
        "greedy_identical_requests": same,
        "greedy_token_agreement": token_rate,
    }

    for label, options in (
        ("top5", replace(greedy, logprobs=True, top_logprobs=5)),
        ("chosen", replace(greedy, logprobs=True, top_logprobs=0)),
    ):
        timed = [replace(r, options=options) for r in reqs]
        sync(device)
        t0 = time.perf_counter()
        backend.generate(timed)
        sync(device)
        seconds = time.perf_counter() - t0
        figures[f"{label}_logprobs_tokens_per_s"] = len(reqs) * args.new_tokens / seconds
        figures[f"{label}_logprobs_cost"] = seconds / ours_s - 1

    scoring = replace(greedy, score_candidates=True)
    sreqs = workload(args.requests, args.image_size, scoring, candidates=("yes", "no"))
    backend.generate(sreqs[: args.batch_size])
    base_score_s = plain_score(model, processor, sreqs[:nb])
    t0 = time.perf_counter()
    scored = backend.generate(sreqs)
    sync(device)
    score_s = time.perf_counter() - t0
    assert all(g.finish_reason == "scored" for g in scored), [g.error for g in scored][:3]
    figures |= {
        "plain_score_requests_per_s": nb / base_score_s,
        "medlens_score_requests_per_s": len(sreqs) / score_s,
        "score_speedup": (len(sreqs) / score_s) / (nb / base_score_s),
    }

    step = decode_step_s(model, processor, reqs[0], min(args.new_tokens, 32))
    weight_bytes = decode_weight_bytes(model)
    bandwidth = copy_bandwidth(device, 1 << (30 if device.type == "cuda" else 26))
    figures |= {
        "decode_step_ms_batch1": step * 1e3,
        "decode_weight_bytes": weight_bytes,
        "copy_bandwidth_GBps": bandwidth / 1e9,
        "roofline_step_ms": weight_bytes / bandwidth * 1e3,
        "roofline_fraction": (weight_bytes / bandwidth) / step,
        "peak_memory_GiB": (
            torch.cuda.max_memory_allocated(device) / 2**30
            if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        ),
        "peak_memory_kind": "cuda max_memory_allocated"
        if device.type == "cuda"
        else "process max RSS",
    }
    backend.close()
    for key, value in figures.items():
        print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(figures, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
