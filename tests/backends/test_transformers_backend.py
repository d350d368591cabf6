"""The in-process backend on tiny real-architecture models, on CPU, end to end by path."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("transformers")

import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from medlens.backends.base import Backend, load_backend
from medlens.backends.transformers import TransformersBackend
from medlens.errors import BackendError
from medlens.testing.tiny import FAMILIES, build_tiny_model
from medlens.types import GenerationOptions, ImagePart, Message, Request, TextPart

GREEDY = GenerationOptions(max_new_tokens=6, top_logprobs=3)
QUESTIONS = [
    "is there a pleural effusion?",
    "which lobe shows the consolidation in this chest x-ray?",
    "is the heart enlarged?",
    "where is the nodule, left or right upper lobe, and how large is it?",
    "normal?",
]


def image(i: int, size: tuple[int, int] = (64, 48)) -> Image.Image:
    """A deterministic picture that differs per index, so batch rows are not identical."""
    img = Image.new("RGB", size, (30 * i % 255, 90, 160))
    img.paste((250, 250, 250), (4 * i % size[0], 5, 4 * i % size[0] + 12, 25))
    return img


def request(i: int, options: GenerationOptions = GREEDY, **kw: object) -> Request:
    question = QUESTIONS[i % len(QUESTIONS)]
    size = kw.pop("size", (64, 48))
    assert isinstance(size, tuple)
    msg = Message("user", (ImagePart(image(i, size)), TextPart(question)))
    return Request(
        id=f"r{i}", messages=(msg,), kind="open", question=question, options=options, **kw
    )


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-backend")
    return {family: build_tiny_model(family, root / family) for family in FAMILIES}


@pytest.fixture(scope="module")
def backends(paths: dict[str, Path]) -> dict[str, TransformersBackend]:
    loaded = {f: TransformersBackend(str(p), batch_size=4) for f, p in paths.items()}
    yield loaded
    for backend in loaded.values():
        backend.close()


def hf_inputs(processor: object, req: Request) -> dict[str, torch.Tensor]:
    """The request the way a Hugging Face model card does it, independent of medlens."""
    content = [
        {"type": "image", "image": p.image}
        if isinstance(p, ImagePart)
        else {"type": "text", "text": p.text}
        for p in req.messages[0].content
    ]
    conversation = [{"role": "user", "content": content}]
    return dict(
        processor.apply_chat_template(  # type: ignore[attr-defined]
            conversation,
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
        )
    )


def test_registry_builds_it_from_a_local_path(paths: dict[str, Path]) -> None:
    backend = load_backend(str(paths["llava"]), device="cpu")
    assert isinstance(backend, TransformersBackend)
    assert isinstance(backend, Backend)
    assert backend.model_id == str(paths["llava"])
    assert (backend.name, backend.remote, backend.supports_scoring) == ("transformers", False, True)
    assert backend.dtype == torch.float32 and backend.device.type == "cpu"
    backend.close()


@pytest.mark.parametrize("family", FAMILIES)
def test_greedy_generation_matches_plain_transformers(
    backends: dict[str, TransformersBackend], paths: dict[str, Path], family: str
) -> None:
    backend = backends[family]
    gens = backend.generate([request(i) for i in range(3)])
    processor = AutoProcessor.from_pretrained(paths[family])
    model = AutoModelForImageTextToText.from_pretrained(paths[family]).eval()
    eos = set(backend._eos)
    for i, gen in enumerate(gens):
        assert gen.request_id == f"r{i}" and gen.error is None
        assert gen.model == str(paths[family]) and gen.backend == "transformers"
        enc = hf_inputs(processor, request(i))
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=6, do_sample=False)
        ids = [t for t in out[0, enc["input_ids"].shape[1] :].tolist()]
        cut = next((n for n, t in enumerate(ids) if t in eos), len(ids))
        assert gen.text == processor.tokenizer.decode(ids[:cut], skip_special_tokens=True)
        assert len(gen.tokens) == cut
        assert gen.finish_reason == ("stop" if cut < len(ids) else "length")


@pytest.mark.parametrize("family", FAMILIES)
def test_logprobs_of_greedy_tokens_are_the_step_maxima(
    backends: dict[str, TransformersBackend], family: str
) -> None:
    gen = backends[family].generate([request(1, replace(GREEDY, max_new_tokens=5))])[0]
    assert gen.tokens
    for tok in gen.tokens:
        assert len(tok.top) == 3
        assert tok.top[0] == (tok.token, pytest.approx(tok.logprob, abs=1e-6))
        assert tok.logprob == pytest.approx(max(lp for _, lp in tok.top), abs=1e-6)
        assert [lp for _, lp in tok.top] == sorted((lp for _, lp in tok.top), reverse=True)
        assert tok.logprob <= 0.0
    t = gen.timings
    assert t.prefill_s > 0 and t.decode_s >= 0 and t.preprocess_s > 0
    assert t.total_s >= t.prefill_s + t.decode_s


@pytest.mark.parametrize("family", FAMILIES)
def test_outputs_do_not_depend_on_batch_size(paths: dict[str, Path], family: str) -> None:
    # Prompts of different lengths and two image sizes: batches mix padding and groups.
    reqs = [request(i, size=(64, 48) if i % 2 else (48, 64)) for i in range(8)]
    single = TransformersBackend(str(paths[family]), batch_size=1, prefetch=False)
    batched = TransformersBackend(str(paths[family]), batch_size=4)
    one, four = single.generate(reqs), batched.generate(reqs)
    for a, b in zip(one, four):
        assert a.request_id == b.request_id
        assert [t.token for t in a.tokens] == [t.token for t in b.tokens]
        assert a.text == b.text and a.finish_reason == b.finish_reason
        for ta, tb in zip(a.tokens, b.tokens):
            assert ta.logprob == pytest.approx(tb.logprob, abs=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
def test_seeded_sampling_is_reproducible_in_any_batch(
    backends: dict[str, TransformersBackend], family: str
) -> None:
    backend = backends[family]
    sampled = GenerationOptions(max_new_tokens=6, temperature=1.0, top_p=0.95, seed=7)
    alone = backend.generate([request(2, sampled)])[0]
    crowd = backend.generate([request(i, replace(sampled, seed=i)) for i in range(4)])
    in_crowd = backend.generate([request(0, sampled), request(2, sampled), request(4, sampled)])
    assert in_crowd[1].text == alone.text
    assert [t.token for t in in_crowd[1].tokens] == [t.token for t in alone.tokens]
    assert len({g.text for g in crowd}) > 1  # other seeds draw other texts
    greedy = backend.generate([request(2)])[0]
    other_seeds = {
        backend.generate([request(2, replace(sampled, seed=s))])[0].text for s in range(4)
    }
    assert other_seeds != {greedy.text}


@pytest.mark.parametrize("family", FAMILIES)
def test_num_samples_returns_independent_samples(
    backends: dict[str, TransformersBackend], family: str
) -> None:
    opts = GenerationOptions(max_new_tokens=8, temperature=1.5, num_samples=4, seed=3)
    gen = backends[family].generate([request(0, opts)])[0]
    assert len(gen.samples) == 4
    assert gen.text == gen.samples[0]
    assert len(set(gen.samples)) > 1
    again = backends[family].generate([request(0, opts)])[0]
    assert again.samples == gen.samples


@pytest.mark.parametrize("family", FAMILIES)
def test_scoring_equals_an_independent_forward_pass(
    backends: dict[str, TransformersBackend], paths: dict[str, Path], family: str
) -> None:
    candidates = ("yes", "no", "left", "left upper lobe")  # "left" shares a row
    opts = GenerationOptions(score_candidates=True)
    reqs = [request(i, opts, candidates=candidates) for i in range(3)]
    gens = backends[family].generate(reqs)
    processor = AutoProcessor.from_pretrained(paths[family])
    model = AutoModelForImageTextToText.from_pretrained(paths[family]).eval()
    for req, gen in zip(reqs, gens):
        assert gen.finish_reason == "scored" and gen.error is None
        assert set(gen.candidate_logprobs) == set(candidates)
        assert gen.text == max(candidates, key=gen.candidate_logprobs.__getitem__)
        enc = hf_inputs(processor, req)
        n = enc["input_ids"].shape[1]
        for cand in candidates:
            target = processor.tokenizer.encode(cand, add_special_tokens=False)
            grow = torch.tensor([target])
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
                logits = model(**full).logits[0]
            lp = logits[n - 1 : n - 1 + len(target)].log_softmax(-1)
            expected = sum(float(lp[j, t]) for j, t in enumerate(target))
            assert gen.candidate_logprobs[cand] == pytest.approx(expected, abs=1e-4)


def test_stop_strings_cut_the_text(backends: dict[str, TransformersBackend]) -> None:
    backend = backends["qwen2_5_vl"]
    full = backend.generate([request(3, replace(GREEDY, max_new_tokens=10))])[0]
    stop = full.text[3:5]
    assert len(stop) == 2
    cut = backend.generate([request(3, replace(GREEDY, max_new_tokens=10, stop=(stop,)))])[0]
    assert cut.text == full.text[: full.text.index(stop)]
    assert cut.finish_reason == "stop"


def test_ignore_eos_always_generates_max_new_tokens(paths: dict[str, Path]) -> None:
    backend = TransformersBackend(str(paths["gemma3"]), ignore_eos=True)
    gens = backend.generate([request(i, replace(GREEDY, max_new_tokens=7)) for i in range(4)])
    assert all(len(g.tokens) == 7 and g.finish_reason == "length" for g in gens)


def test_a_bad_request_fails_alone(backends: dict[str, TransformersBackend]) -> None:
    backend = backends["llava"]
    bad = request(1, GenerationOptions(max_new_tokens=4, num_samples=3))  # greedy samples
    gens = backend.generate([request(0), bad, request(2)])
    assert [g.finish_reason for g in gens][1] == "error"
    assert "temperature" in (gens[1].error or "")
    assert gens[0].error is None and gens[2].error is None and gens[0].text


def test_text_only_and_large_images_are_served(backends: dict[str, TransformersBackend]) -> None:
    backend = backends["qwen2_5_vl"]
    msg = Message("user", (TextPart("is the heart enlarged?"),))
    text_only = Request(id="t", messages=(msg,), kind="closed", question="heart?", options=GREEDY)
    large = request(1, size=(900, 300))
    gens = backend.generate([text_only, large])
    assert all(g.error is None and g.tokens for g in gens)


def test_max_image_side_shrinks_before_the_processor(paths: dict[str, Path]) -> None:
    backend = TransformersBackend(str(paths["qwen2_5_vl"]), max_image_side=64)
    item = backend._render(0, request(1, size=(400, 100)), 0.0)
    assert item.images[0].size == (64, 16)


def test_view_size_is_the_side_each_processor_gives_the_model(
    backends: dict[str, TransformersBackend], paths: dict[str, Path]
) -> None:
    """Views are rendered no larger than this, so that grounding coordinates are those of
    the image the model sees: Qwen2-VL's pixel budget (112 x 112 in the tiny model), Gemma
    3's fixed square, and none for LLaVA, whose CLIP processor crops the image."""
    sizes = {family: backend.view_size for family, backend in backends.items()}
    assert sizes == {"qwen2_5_vl": 112, "gemma3": 32, "llava": None}
    capped = TransformersBackend(str(paths["qwen2_5_vl"]), max_image_side=64)
    assert capped.view_size == 64
    capped.close()


def test_bad_path_raises_a_backend_error(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="No model folder at"):
        TransformersBackend(str(tmp_path / "nowhere"))


def test_text_only_model_is_refused(tmp_path: Path, paths: dict[str, Path]) -> None:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(paths["llava"])
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
    )
    LlamaForCausalLM(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    with pytest.raises(BackendError, match="vision-language"):
        TransformersBackend(str(tmp_path))


def test_top_logprobs_cover_the_whole_distribution(
    backends: dict[str, TransformersBackend],
) -> None:
    backend = backends["llava"]
    vocab = backend.model.config.get_text_config().vocab_size
    gen = backend.generate([request(0, replace(GREEDY, top_logprobs=vocab + 10))])[0]
    top = gen.tokens[0].top
    assert len(top) == vocab
    assert sum(math.exp(lp) for _, lp in top) == pytest.approx(1.0, abs=1e-4)


def test_candidates_that_prefix_others_share_their_row() -> None:
    from medlens.backends.transformers import _covering_rows

    assert _covering_rows([[5], [6], [5, 7, 8], [5, 7]]) == [[5, 7, 8], [6]]
    assert _covering_rows([[1], [1]]) == [[1]]
    assert _covering_rows([]) == [[]]


@pytest.mark.parametrize("family", FAMILIES)
def test_static_cache_decoding_gives_the_same_tokens(paths: dict[str, Path], family: str) -> None:
    # compile_decode's static KV cache runs eagerly on CPU: same tokens as the dynamic cache.
    reqs = [request(i) for i in range(3)]
    plain = TransformersBackend(str(paths[family]), batch_size=3).generate(reqs)
    static = TransformersBackend(str(paths[family]), batch_size=3, compile_decode=True)
    for a, b in zip(plain, static.generate(reqs)):
        assert [t.token for t in a.tokens] == [t.token for t in b.tokens]


@pytest.mark.parametrize("family", FAMILIES)
def test_generations_count_their_prompt_tokens(
    backends: dict[str, TransformersBackend], family: str
) -> None:
    """``prompt_tokens`` (the API's ``usage.prompt_tokens``) is the prompt as the model read
    it, image tokens included, the same whether the batch is padded, decoded or scored."""
    backend = backends[family]
    single = request(1)
    expected = hf_inputs(backend.processor, single)["input_ids"].shape[1]
    (alone,) = backend.generate([single])
    padded = backend.generate([request(3), single])[1]  # a longer question pads this row
    scored_request = replace(
        single,
        kind="closed",
        candidates=("yes", "no"),
        options=GenerationOptions(score_candidates=True),
    )
    (scored,) = backend.generate([scored_request])
    assert alone.prompt_tokens == padded.prompt_tokens == scored.prompt_tokens == expected
