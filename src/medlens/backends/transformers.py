"""The in-process backend: any Hugging Face image-text-to-text model, batched.

``TransformersBackend("google/medgemma-4b-it")`` (or a local folder) loads the model with
``AutoModelForImageTextToText`` and its ``AutoProcessor``, renders every request with the
model's *own* chat template, and answers in batches:

- requests are grouped by decoding options, image sizes and prompt length, so a batch shares
  one image shape and wastes little left padding (the grouping vLLM's scheduler and
  lmms-eval's ``Collator`` do for the same reason);
- image preprocessing of the next batch runs in a worker thread while the current batch is on
  the device;
- greedy and sampled decoding use one path: ``generate`` always takes the argmax, and sampled
  requests get a logits processor that draws each row's token with its own seeded generator
  (Gumbel-free inverse-CDF sampling), so a seeded request gives the same text whatever batch
  it lands in;
- log-probabilities come from the raw model logits (as vLLM reports them), with top-k
  alternatives per position;
- scoring mode (``options.score_candidates``) teacher-forces each candidate after the prompt
  in one forward pass and returns the summed token log-likelihoods, the basis of calibrated
  confidence (Kadavath et al. 2022, "Language Models (Mostly) Know What They Know").

Speed options: bf16 and SDPA (flash-attention 2 when installed) on GPU, and
``compile_decode=True`` for a static KV cache whose *decode step* transformers compiles with
``torch.compile`` (CUDA graphs via mode "reduce-overhead"); prefill and the vision encoder stay
eager because their shapes change with every batch. transformers' continuous batching
(``generate_batch``) takes token ids only and no pixel values in transformers 5, so it cannot
serve VLM requests and is not used.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from medlens.errors import BackendError, ConfigError, require
from medlens.types import (
    Generation,
    GenerationOptions,
    ImagePart,
    Request,
    TextPart,
    Timings,
    TokenLogprob,
)

if TYPE_CHECKING:
    import torch
    from PIL import Image

log = logging.getLogger(__name__)

_DTYPES = ("auto", "float32", "bfloat16", "float16")
# Errors a single request can provoke inside preprocessing or the model (bad image, too long a
# prompt, out of memory): the batch is retried item by item and only the culprit fails.
_ITEM_ERRORS = (RuntimeError, ValueError, TypeError, IndexError, KeyError)


@dataclass
class _Item:
    """One request after rendering: prompt text and images, ready to be encoded."""

    index: int
    request: Request
    prompt: str
    images: list[Image.Image]
    submitted: float

    @property
    def scoring(self) -> bool:
        return self.request.options.score_candidates and bool(self.request.candidates)

    @property
    def group(self) -> tuple[Any, ...]:
        sizes = tuple(im.size for im in self.images)
        return ("score" if self.scoring else self.request.options, sizes)


@dataclass
class _Batch:
    items: list[_Item]
    inputs: Any = None
    """The processor's BatchFeature, on the device."""
    rows: list[int] = field(default_factory=list)
    """Item index of each encoded row (several rows per item for samples or candidates)."""
    targets: list[list[int]] = field(default_factory=list)
    """Scoring mode: continuation token ids of each row."""
    starts: list[int] = field(default_factory=list)
    """Scoring mode: prompt length of each row."""
    reads: list[dict[str, tuple[int, int]]] = field(default_factory=list)
    """Scoring mode, per item: candidate -> (row, number of its tokens) to sum there."""
    preprocess_s: float = 0.0
    error: BaseException | None = None


def processor_view_size(image_processor: Any) -> int | None:
    """The longest side, in pixels, of the images ``image_processor`` gives the model: the
    square root of Qwen2-VL's pixel budget (``max_pixels``, which transformers stores as
    ``size["longest_edge"]`` beside ``shortest_edge`` = ``min_pixels``), or a fixed
    ``height``/``width`` (SigLIP: Gemma 3, MedGemma). None where the processor crops
    (CLIP's ``shortest_edge`` and centre crop): its input is no resized copy of the view."""
    size = getattr(image_processor, "size", None) or {}
    if getattr(image_processor, "do_center_crop", False):
        return None
    if (
        size.get("shortest_edge")
        and size.get("longest_edge")
        and hasattr(image_processor, "merge_size")
    ):
        return math.isqrt(int(size["longest_edge"]))
    if size.get("height") and size.get("width"):
        return max(int(size["height"]), int(size["width"]))
    return None


class TransformersBackend:
    """A Hugging Face VLM run in this process. See the module docstring for the engine.

    ``model`` is a Hub id or a local folder; ``device`` "auto" picks CUDA when present, else
    CPU; ``dtype`` "auto" is bfloat16 on GPU and float32 on CPU; ``batch_size`` counts requests
    (a request with k samples or k candidates takes k rows); ``max_image_side`` shrinks larger
    images before the processor; ``compile_decode`` uses a static KV cache, whose decode step
    transformers compiles on CUDA (elsewhere the static cache runs eagerly); ``ignore_eos`` always generates
    ``max_new_tokens`` (throughput measurements, as vLLM's ``ignore_eos``).
    """

    name: ClassVar[str] = "transformers"
    remote: ClassVar[bool] = False
    allow_identified: bool = False
    supports_scoring: ClassVar[bool] = True

    def __init__(
        self,
        model: str,
        *,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 8,
        attn_implementation: str | None = None,
        max_image_side: int | None = None,
        trust_remote_code: bool = False,
        revision: str | None = None,
        compile_decode: bool = False,
        ignore_eos: bool = False,
        prefetch: bool = True,
    ) -> None:
        from medlens.hub import resolve_model

        if dtype not in _DTYPES:
            raise ConfigError(f"unknown dtype {dtype!r}; choose one of {', '.join(_DTYPES)}")
        source, local_only = resolve_model(model, revision)  # seconds, before torch loads
        require("torch", "hf", "The transformers backend")
        require("transformers", "hf", "The transformers backend")
        import torch

        self.device = torch.device(_pick_device(device))
        self.dtype = _pick_dtype(dtype, self.device)
        self.attn_implementation = attn_implementation or _pick_attention(self.device, self.dtype)
        processor, weights = self._load(source, revision, trust_remote_code, local_only)
        self._attach(
            model,
            processor,
            weights,
            batch_size,
            max_image_side,
            compile_decode,
            ignore_eos,
            prefetch,
        )

    @classmethod
    def from_model(
        cls,
        model: Any,
        processor: Any,
        *,
        model_id: str,
        batch_size: int = 8,
        max_image_side: int | None = None,
        compile_decode: bool = False,
        ignore_eos: bool = False,
        prefetch: bool = True,
    ) -> TransformersBackend:
        """Serve a model already in memory (a notebook, a fine-tuned or PEFT-wrapped model, a
        random-weight benchmark model) on the device and dtype it already has."""
        require("transformers", "hf", "The transformers backend")
        self = cls.__new__(cls)
        weight = next(model.parameters())
        self.device, self.dtype = weight.device, weight.dtype
        self.attn_implementation = str(getattr(model.config, "_attn_implementation", "sdpa"))
        self._attach(
            model_id,
            processor,
            model.eval(),
            batch_size,
            max_image_side,
            compile_decode,
            ignore_eos,
            prefetch,
        )
        return self

    def _attach(
        self,
        model_id: str,
        processor: Any,
        model: Any,
        batch_size: int,
        max_image_side: int | None,
        compile_decode: bool,
        ignore_eos: bool,
        prefetch: bool,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        self.model_id = model_id
        self.batch_size = batch_size
        self.max_image_side = max_image_side
        sides = [s for s in (processor_view_size(processor.image_processor), max_image_side) if s]
        self.view_size = min(sides, default=None)
        self.ignore_eos = ignore_eos
        self.compile_decode = compile_decode
        if compile_decode and self.device.type != "cuda":
            log.info("compile_decode: static KV cache on %s, compiled only on CUDA", self.device)
        self.processor, self.model = processor, model
        self.tokenizer = processor.tokenizer
        self.tokenizer.padding_side = "left"
        self._eos = _eos_ids(model.generation_config, self.tokenizer)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="medlens-pre") if prefetch else None

    # ---------------------------------------------------------------------------- loading

    def _load(
        self, model: str, revision: str | None, trust_remote_code: bool, local_only: bool
    ) -> tuple[Any, Any]:
        from transformers import AutoProcessor

        kwargs: dict[str, Any] = {
            "revision": revision,
            "trust_remote_code": trust_remote_code,
            "local_files_only": local_only,
        }
        try:
            processor = AutoProcessor.from_pretrained(model, **kwargs)  # type: ignore[no-untyped-call]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BackendError(
                f"could not load the processor of {model!r}: {exc}. Pass a Hugging Face model id "
                "or a folder holding a vision-language model (config.json, weights, processor)."
            ) from exc
        if not hasattr(processor, "tokenizer") or not hasattr(processor, "image_processor"):
            raise BackendError(
                f"{model!r} has no image processor, so it is not a vision-language model; "
                "medlens needs an image-text-to-text model (e.g. Qwen2.5-VL, MedGemma, LLaVA)."
            )
        return processor, self._load_weights(model, kwargs)

    def _load_weights(self, model: str, kwargs: dict[str, Any]) -> Any:
        from transformers import AutoModelForImageTextToText
        from transformers.utils import logging as hf_logging

        shown = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # "Loading weights"
        try:
            weights = AutoModelForImageTextToText.from_pretrained(
                model, dtype=self.dtype, attn_implementation=self.attn_implementation, **kwargs
            )
        except (OSError, ValueError, KeyError, TypeError, ImportError) as exc:
            raise BackendError(
                f"could not load {model!r} as an image-text-to-text model: {exc}. medlens loads "
                "vision-language models with AutoModelForImageTextToText; check the id or path, "
                "and trust_remote_code for models that ship their own code."
            ) from exc
        finally:
            if shown:
                hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]
        loaded: Any = weights
        return loaded.to(self.device).eval()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.model = None
        if self.device.type == "cuda":
            import torch

            torch.cuda.empty_cache()

    # ---------------------------------------------------------------------------- public

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        """One ``Generation`` per request, in order; see the module docstring."""
        start = time.perf_counter()
        out: list[Generation | None] = [None] * len(requests)
        items: list[_Item] = []
        for i, request in enumerate(requests):
            try:
                items.append(self._render(i, request, start))
            except _ITEM_ERRORS as exc:
                out[i] = self._failed(request, exc)
        for batch in self._pipeline(self._plan(items)):
            for item, gen in zip(batch.items, self._answer(batch)):
                out[item.index] = gen
        return [g for g in out if g is not None]

    # ---------------------------------------------------------------------------- planning

    def _render(self, index: int, request: Request, start: float) -> _Item:
        """Messages to the model's own chat template, images kept aside for the processor."""
        opts = request.options
        if opts.num_samples > 1 and opts.temperature <= 0 and not opts.score_candidates:
            raise ValueError("num_samples > 1 needs temperature > 0 (greedy samples are identical)")
        conversation: list[dict[str, Any]] = []
        images: list[Image.Image] = []
        for message in request.messages:
            content: list[dict[str, Any]] = []
            for part in message.content:
                if isinstance(part, ImagePart):
                    images.append(self._fit(part.image))
                    content.append({"type": "image"})
                elif isinstance(part, TextPart):
                    content.append({"type": "text", "text": part.text})
            conversation.append({"role": message.role, "content": content})
        prompt = self.processor.apply_chat_template(
            conversation, add_generation_prompt=True, tokenize=False
        )
        return _Item(index, request, prompt, images, start)

    def _fit(self, image: Image.Image) -> Image.Image:
        """RGB, and no side above ``max_image_side`` (aspect kept), before the processor."""
        from PIL import Image

        image = image.convert("RGB") if image.mode != "RGB" else image
        side = self.max_image_side
        if side and max(image.size) > side:
            scale = side / max(image.size)
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            image = image.resize(size, Image.Resampling.BICUBIC)
        return image

    def _plan(self, items: list[_Item]) -> list[_Batch]:
        """Group by options and image sizes, sort by prompt length, cut into batches."""
        groups: dict[tuple[Any, ...], list[_Item]] = {}
        for item in items:
            groups.setdefault(item.group, []).append(item)
        batches: list[_Batch] = []
        for group in groups.values():
            group.sort(key=lambda it: len(it.prompt))
            for i in range(0, len(group), self.batch_size):
                batches.append(_Batch(group[i : i + self.batch_size]))
        return batches

    def _pipeline(self, batches: list[_Batch]) -> Iterator[_Batch]:
        """Encode batch i+1 in the worker thread while batch i runs on the device."""
        if self._pool is None:
            for batch in batches:
                yield self._encode(batch)
            return
        pending: Future[_Batch] | None = None
        for i, batch in enumerate(batches):
            current = pending.result() if pending is not None else self._encode(batch)
            nxt = batches[i + 1] if i + 1 < len(batches) else None
            pending = self._pool.submit(self._encode, nxt) if nxt is not None else None
            yield current

    # ---------------------------------------------------------------------------- encoding

    def _encode(self, batch: _Batch) -> _Batch:
        t0 = time.perf_counter()
        try:
            if batch.items[0].scoring:
                self._encode_scoring(batch)
            else:
                self._encode_generation(batch)
        except _ITEM_ERRORS as exc:
            batch.error = exc
        batch.preprocess_s = time.perf_counter() - t0
        return batch

    def _process(self, prompts: list[str], images: list[list[Image.Image]], side: str) -> Any:
        bos = self.tokenizer.bos_token
        enc = self.processor(
            text=prompts,
            images=images if any(images) else None,
            padding=True,
            padding_side=side,
            add_special_tokens=not (bos and prompts[0].startswith(bos)),
            return_tensors="pt",
        )
        return enc

    def _to_device(self, enc: Any) -> Any:
        pin = self.device.type == "cuda"
        moved = {}
        for key, value in enc.items():
            if pin:
                value = value.pin_memory()
            value = value.to(self.device, non_blocking=pin)
            moved[key] = value.to(self.dtype) if value.is_floating_point() else value
        return moved

    def _encode_generation(self, batch: _Batch) -> None:
        prompts: list[str] = []
        images: list[list[Image.Image]] = []
        for item in batch.items:
            n = max(1, item.request.options.num_samples)
            prompts += [item.prompt] * n
            images += [item.images] * n
            batch.rows += [item.index] * n
        batch.inputs = self._to_device(self._process(prompts, images, "left"))

    def _encode_scoring(self, batch: _Batch) -> None:
        """Rows ``prompt + continuation``, right-padded so positions need no correction.

        A candidate whose tokens begin another candidate's is read off that candidate's row
        (the logits at every position are there), so yes/no or A-D questions, whose candidates
        are single tokens, take one row per request instead of one per candidate: the vision
        encoder and the prefill run once.
        """
        import torch

        prompts: list[str] = []
        images: list[list[Image.Image]] = []
        for item in batch.items:
            targets = {
                c: self.tokenizer.encode(c, add_special_tokens=False)
                for c in item.request.candidates
            }
            rows = _covering_rows(list(targets.values()))
            first = len(batch.targets)
            for row in rows:
                prompts.append(item.prompt)
                images.append(item.images)
                batch.rows.append(item.index)
                batch.targets.append(row)
            batch.reads.append(
                {
                    c: (first + next(i for i, r in enumerate(rows) if r[: len(t)] == t), len(t))
                    for c, t in targets.items()
                }
            )
        enc = self._process(prompts, images, "right")
        ids, mask = enc["input_ids"], enc["attention_mask"]
        lengths = mask.sum(dim=1).tolist()
        width = max(n + len(t) for n, t in zip(lengths, batch.targets))
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        grown = {
            k: torch.zeros((len(prompts), width), dtype=v.dtype)
            for k, v in enc.items()
            if tuple(v.shape[:2]) == tuple(ids.shape)
        }
        grown["input_ids"].fill_(pad)
        for r, (n, target) in enumerate(zip(lengths, batch.targets)):
            for key, value in grown.items():
                value[r, :n] = enc[key][r, :n]
            grown["input_ids"][r, n : n + len(target)] = torch.tensor(target, dtype=ids.dtype)
            grown["attention_mask"][r, n : n + len(target)] = 1
        enc.update(grown)
        batch.inputs = self._to_device(enc)
        batch.starts = lengths

    # ---------------------------------------------------------------------------- running

    def _answer(self, batch: _Batch) -> list[Generation]:
        """Run one batch; if it fails, retry its items alone so only the culprit fails."""
        if batch.error is None:
            try:
                run = self._score if batch.items[0].scoring else self._decode
                return run(batch)
            except _ITEM_ERRORS as exc:
                batch.error = exc
        if len(batch.items) == 1:
            return [self._failed(batch.items[0].request, batch.error)]
        log.warning(
            "batch of %d failed (%s); retrying one by one",
            len(batch.items),
            type(batch.error).__name__,
        )
        return [self._answer(self._encode(_Batch([item])))[0] for item in batch.items]

    def _failed(self, request: Request, exc: BaseException) -> Generation:
        log.warning("request failed: %s", type(exc).__name__)
        return Generation.failed(
            request.id, self.model_id, self.name, f"{type(exc).__name__}: {exc}"
        )

    def _sync(self) -> None:
        if self.device.type == "cuda":
            import torch

            torch.cuda.synchronize(self.device)

    def _decode(self, batch: _Batch) -> list[Generation]:
        import torch
        from transformers import GenerationConfig, LogitsProcessorList

        opts = batch.items[0].request.options
        t0 = time.perf_counter()
        clock = _PrefillClock(self._sync)
        processors: list[Any] = [clock]
        if opts.temperature > 0:
            seeds = [
                _row_seed(it.request, j)
                for it in batch.items
                for j in range(max(1, it.request.options.num_samples))
            ]
            processors.append(_SeededSampler(seeds, opts.temperature, opts.top_p, self.device))
        base = self.model.generation_config
        config = GenerationConfig(  # type: ignore[no-untyped-call]
            max_new_tokens=opts.max_new_tokens,
            min_new_tokens=opts.max_new_tokens if self.ignore_eos else None,
            do_sample=False,
            eos_token_id=sorted(self._eos),
            pad_token_id=_pad_id(base, self.tokenizer),
            bos_token_id=base.bos_token_id,
            return_dict_in_generate=True,
            output_logits=opts.logprobs,
            stop_strings=list(opts.stop) or None,
            cache_implementation="static" if self.compile_decode else None,
        )
        with torch.inference_mode():
            out = self.model.generate(
                **batch.inputs,
                generation_config=config,
                logits_processor=LogitsProcessorList(processors),
                tokenizer=self.tokenizer if opts.stop else None,
            )
        self._sync()
        t1 = time.perf_counter()
        prompt_len = batch.inputs["input_ids"].shape[1]
        new = out.sequences[:, prompt_len:].cpu()
        steps = _token_logprobs(out.logits, new, opts.top_logprobs) if opts.logprobs else None
        prefill = (clock.first or t1) - t0
        timings = Timings(
            queue_s=t0 - batch.items[0].submitted,
            preprocess_s=batch.preprocess_s,
            prefill_s=prefill,
            decode_s=t1 - t0 - prefill,
            total_s=batch.preprocess_s + (t1 - t0),
        )
        rows: dict[int, list[tuple[str, tuple[TokenLogprob, ...], str]]] = {}
        for r, index in enumerate(batch.rows):
            rows.setdefault(index, []).append(self._row(new[r].tolist(), steps, r, opts))
        read = _prompt_lengths(batch)
        gens = []
        for item in batch.items:
            samples = rows[item.index]
            text, tokens, finish = samples[0]
            gens.append(
                Generation(
                    request_id=item.request.id,
                    text=text,
                    model=self.model_id,
                    backend=self.name,
                    tokens=tokens,
                    samples=tuple(s[0] for s in samples) if len(samples) > 1 else (),
                    finish_reason=finish,
                    timings=timings,
                    prompt_tokens=read.get(item.index, 0),
                )
            )
        return gens

    def _row(
        self, ids: list[int], steps: Any, r: int, opts: GenerationOptions
    ) -> tuple[str, tuple[TokenLogprob, ...], str]:
        """Text, token logprobs and finish reason of one generated row."""
        finish = "length"
        for n, tok in enumerate(ids):
            if tok in self._eos:
                ids, finish = ids[:n], "stop"
                break
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        for stop in opts.stop:
            if stop in text:
                text, finish = text[: text.index(stop)], "stop"
        tokens: tuple[TokenLogprob, ...] = ()
        if steps is not None:
            chosen, top_lp, top_ids = steps
            tokens = tuple(
                TokenLogprob(
                    token=self._piece(tok),
                    logprob=float(chosen[s, r]),
                    top=tuple(
                        (self._piece(int(t)), float(lp))
                        for t, lp in zip(top_ids[s, r], top_lp[s, r])
                    ),
                )
                for s, tok in enumerate(ids)
            )
        return text, tokens, finish

    def _piece(self, token_id: int) -> str:
        return str(self.tokenizer.decode([token_id]))

    def _score(self, batch: _Batch) -> list[Generation]:
        import torch

        t0 = time.perf_counter()
        with torch.inference_mode():
            logits = self.model(**batch.inputs, use_cache=False).logits
            cumulative = []
            for r, (start, target) in enumerate(zip(batch.starts, batch.targets)):
                # the token at position p is predicted by the logits at p - 1
                step = logits[r, start - 1 : start - 1 + len(target)].float().log_softmax(-1)
                idx = torch.tensor(target, device=step.device, dtype=torch.long).unsqueeze(1)
                cumulative.append([0.0, *step.gather(1, idx).squeeze(1).cumsum(0).tolist()])
        self._sync()
        elapsed = time.perf_counter() - t0
        timings = Timings(
            queue_s=t0 - batch.items[0].submitted,
            preprocess_s=batch.preprocess_s,
            prefill_s=elapsed,
            total_s=batch.preprocess_s + elapsed,
        )
        read = _prompt_lengths(batch)
        gens = []
        for item, reads in zip(batch.items, batch.reads):
            scores = {c: cumulative[row][n] for c, (row, n) in reads.items()}
            gens.append(
                Generation(
                    request_id=item.request.id,
                    text=max(scores, key=scores.__getitem__),
                    model=self.model_id,
                    backend=self.name,
                    candidate_logprobs=scores,
                    finish_reason="scored",
                    timings=timings,
                    prompt_tokens=read.get(item.index, 0),
                )
            )
        return gens


# -------------------------------------------------------------------------------- helpers


def _prompt_lengths(batch: _Batch) -> dict[int, int]:
    """Prompt tokens (image tokens included, padding not) of each item's first row: its
    attention mask, or in scoring mode the prompt length before the candidate."""
    mask = batch.inputs.get("attention_mask") if batch.inputs is not None else None
    lengths: dict[int, int] = {}
    for r, index in enumerate(batch.rows):
        if index in lengths:
            continue
        if batch.starts:
            lengths[index] = int(batch.starts[r])
        elif mask is not None:
            lengths[index] = int(mask[r].sum())
    return lengths


def _covering_rows(targets: list[list[int]]) -> list[list[int]]:
    """The fewest token sequences of which every target is a prefix (at least one row)."""
    rows: list[list[int]] = []
    for t in sorted(targets, key=len, reverse=True):
        if not any(r[: len(t)] == t for r in rows):
            rows.append(t)
    return rows or [[]]


def _pick_device(device: str) -> str:
    import torch

    if device != "auto":
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} asked for, but CUDA is not available here")
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    import torch

    if dtype == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float16 if device.type in ("cuda", "mps") else torch.float32
    return getattr(torch, dtype)  # type: ignore[no-any-return]


def _pick_attention(device: torch.device, dtype: torch.dtype) -> str:
    """flash-attention 2 on CUDA in half precision when installed, else PyTorch SDPA."""
    import importlib.util

    import torch

    half = dtype in (torch.bfloat16, torch.float16)
    if device.type == "cuda" and half and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def _eos_ids(config: Any, tokenizer: Any) -> frozenset[int]:
    eos = config.eos_token_id if config.eos_token_id is not None else tokenizer.eos_token_id
    if eos is None:
        return frozenset()
    return frozenset([eos] if isinstance(eos, int) else eos)


def _pad_id(config: Any, tokenizer: Any) -> int | None:
    for value in (config.pad_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id):
        if value is not None:
            return int(value[0] if isinstance(value, list) else value)
    return None


def _row_seed(request: Request, sample: int) -> int | None:
    seed = request.options.seed
    return None if seed is None else (seed * 1_000_003 + sample) % (2**63)


def _token_logprobs(logits: Sequence[torch.Tensor], new: torch.Tensor, k: int) -> Any:
    """Per step: logprob of the chosen token and the top-k alternatives, from raw logits.
    With ``k == 0`` only the chosen token's logprob is computed (``logit - logsumexp``: no
    vocabulary-wide log-softmax or sort), which is all sequence confidence reads."""
    import torch

    chosen, top_lp, top_ids = [], [], []
    for s, step in enumerate(logits):
        logit = step.float()
        tok = new[:, s].to(logit.device).unsqueeze(1)
        if k <= 0:
            chosen.append(logit.gather(1, tok).squeeze(1) - logit.logsumexp(-1))
            continue
        lp = logit.log_softmax(-1)
        chosen.append(lp.gather(1, tok).squeeze(1))
        values, ids = lp.topk(min(k, lp.shape[-1]), dim=-1)
        top_lp.append(values)
        top_ids.append(ids)
    rows, steps = new.shape[0], len(logits)
    empty = torch.zeros((steps, rows, 0))
    return (
        torch.stack(chosen).cpu().numpy(),
        (torch.stack(top_lp) if top_lp else empty).cpu().numpy(),
        (torch.stack(top_ids) if top_ids else empty.long()).cpu().numpy(),
    )


class _PrefillClock:
    """A logits processor that notes when the first step's logits exist (end of prefill)."""

    def __init__(self, sync: Any) -> None:
        self.sync = sync
        self.first: float | None = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.first is None:
            self.sync()
            self.first = time.perf_counter()
        return scores


class _SeededSampler:
    """Temperature / nucleus (Holtzman et al. 2020) sampling with one generator per row.

    It returns scores that are ``-inf`` except at the drawn token, so ``generate``'s argmax
    picks it. A row's draws depend only on its own seed, never on its batch neighbours.
    """

    def __init__(
        self, seeds: list[int | None], temperature: float, top_p: float, device: torch.device
    ) -> None:
        import torch

        self.temperature = temperature
        self.top_p = top_p
        self.generators = []
        for seed in seeds:
            g = torch.Generator(device=device)
            if seed is None:
                g.seed()
            else:
                g.manual_seed(seed)
            self.generators.append(g)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        import torch

        probs = (scores.float() / self.temperature).softmax(-1)
        if self.top_p < 1.0:
            sorted_p, order = probs.sort(dim=-1, descending=True)
            keep = sorted_p.cumsum(-1) - sorted_p < self.top_p
            probs = torch.zeros_like(probs).scatter(1, order, sorted_p * keep)
        picks = [torch.multinomial(probs[r], 1, generator=g) for r, g in enumerate(self.generators)]
        forced = torch.full_like(scores, float("-inf"))
        forced.scatter_(1, torch.stack(picks), 0.0)
        return forced
