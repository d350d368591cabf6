"""``medevalkit-judge``: MedEvalKit's rules with its LLM judge on open questions, as Lingshu's
published open-question figures were made (GPT-4.1 in MedEvalKit's ``eval.sh``).

MedEvalKit asks the judge, for every open question, whether "the user's answer" means the
same as "the standard answer", in ``get_compare_messages``'s words, and reads the verdict with
``extract(result, "judge") == "0"``: the text between ``<judge>`` and ``</judge>`` (the whole
reply when there is no such tag) must be exactly ``0``. Anything else, a failed request
included, counts as wrong. Closed questions keep the rule path. Verdicts come from any
OpenAI-compatible judge (``--judge URL_OR_ID``) and are cached in the run store, so that a
second scoring of the same answers asks the judge nothing.

>>> from medlens.bench.protocols import get_protocol
>>> from medlens.bench.protocols.medevalkit_judge import JudgeCase, medevalkit_verdict
>>> from medlens.bench.samples import Sample
>>> medevalkit_verdict("<think>Same organ.</think>\\n<judge>0</judge>"), medevalkit_verdict("1")
(True, False)
>>> medevalkit_verdict("0"), medevalkit_verdict("<judge> 0 </judge>"), medevalkit_verdict(None)
(True, True, False)
>>> open_q = Sample("7", "vqa-rad", "test", "Which organ?", ("Kidney",), "open", ())
>>> protocol = type(get_protocol("medevalkit-judge"))(
...     {JudgeCase("Which organ?", "kidney", "renal"): "<judge>0</judge>"})
>>> protocol.score(open_q, "Renal").outcome  # the judge's verdict, not the exact match
'correct'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from medlens.bench.protocols.base import SampleScore
from medlens.bench.protocols.medevalkit import (
    MEDEVALKIT_SOURCE,
    MedEvalKitProtocol,
)
from medlens.bench.samples import Sample
from medlens.errors import ConfigError
from medlens.types import GenerationOptions, Message, Request, TextPart

if TYPE_CHECKING:
    from medlens.backends.base import Backend
    from medlens.pipeline import GenerationCache

JUDGE_SOURCE = (
    "alibaba-damo-academy/MedEvalKit@9b12e3b34232a8779cc1275417bf4f72f03d28e0 "
    "utils/utils.py:get_compare_messages (prompt), extract (verdict), openai_llm "
    "(temperature 0, max_tokens 4096); utils/VQA_RAD/VQA_RAD.py:cal_metrics (use_llm_judge)"
)
# MedEvalKit's judge prompt, verbatim: it is what makes the verdicts comparable.
JUDGE_PROMPT = """
Your task is to determine whether the user's answer is correct based on the provided questions and standard answers (for example, if the user expresses a similar meaning to the standard answer, or another interpretation of the standard answer, it is considered correct.)

The question is: {question}

The standard answer: {answer}

The user's answer: {response}

Please strictly follow the following format for output(0 represents correct, 1 represents incorrect):
<think>{{your concise think step}}</think>
<judge>{{0/1}}</judge>

for example:
<think>The standard answer is right, and the user's answer is right frontal lobe, they express the same meaning, so it is correct.</think>
<judge>0</judge>
    """
JUDGE_OPTIONS = GenerationOptions(max_new_tokens=4096, temperature=0.0, logprobs=False)


def medevalkit_verdict(reply: str | None) -> bool:
    """MedEvalKit's ``extract(result, "judge") == "0"``: the ``<judge>`` contents (all of
    them, joined by spaces and stripped), or the whole reply when it has none."""
    if not reply:
        return False
    found, start = [], reply.find("<judge>")
    while start != -1:
        end = reply.find("</judge>", start + len("<judge>"))
        if end == -1:
            break
        found.append(reply[start + len("<judge>") : end])
        start = reply.find("<judge>", end + len("</judge>"))
    text = " ".join(found).strip() if found else reply
    return text == "0"


@dataclass(frozen=True)
class JudgeCase:
    """What MedEvalKit shows the judge for one answer."""

    question: str
    answer: str
    response: str

    def request(self, request_id: str) -> Request:
        prompt = JUDGE_PROMPT.format(
            question=self.question, answer=self.answer, response=self.response
        )
        return Request(
            id=request_id,
            messages=(Message("user", (TextPart(prompt),)),),
            kind="open",
            question=prompt,
            options=JUDGE_OPTIONS,
            # Benchmark text and the model's answer only: no study, no PHI.
            deidentified=True,
        )


class MedEvalKitJudgeProtocol(MedEvalKitProtocol):
    """MedEvalKit's rule path for closed questions, its judge for open ones."""

    name = "medevalkit-judge"
    version = "9b12e3b-judge.1"
    open_metric = "open_judge_accuracy"
    needs_judge: ClassVar[bool] = True
    description = (
        "MedEvalKit with use_llm_judge (how Lingshu's published open-question figures were "
        "made, with GPT-4.1): closed questions by the medevalkit rules; every open question "
        "(VQA-RAD/PathVQA: answer not yes/no) goes to an LLM judge with MedEvalKit's prompt "
        "(get_compare_messages) and counts correct only when extract(result, 'judge') is "
        "exactly '0'; an unreadable or failed verdict is wrong. Overall = (closed right + "
        "open judged right) / all. Upstream's SLAKE path also sends closed questions to the "
        "judge and adds those verdicts to the rule-based closed count, so its SLAKE closed "
        "accuracy can pass 100 %; medlens judges open questions only, as on VQA-RAD. Verdicts "
        f"are cached in the run store. Source: {JUDGE_SOURCE}; rules: {MEDEVALKIT_SOURCE}."
    )

    def __init__(self, verdicts: Mapping[JudgeCase, str | None] | None = None) -> None:
        self.verdicts = dict(verdicts or {})

    def case(self, sample: Sample, prediction: str) -> JudgeCase:
        """The question, standard answer and user answer MedEvalKit sends (after its own
        extraction: VQA-RAD lower-cases and strips both, SLAKE sends them as written)."""
        return self._case(sample, self.extract(prediction))

    def _case(self, sample: Sample, response: str) -> JudgeCase:
        answer = sample.answer
        if sample.benchmark != "slake":
            answer, response = answer.lower().strip(), response.lower().strip()
        return JudgeCase(sample.question, answer, response)

    def needs_verdict(self, sample: Sample) -> bool:
        return sample.kind in ("closed", "open") and self.bucket(sample) == "open"

    def score_vqa(self, sample: Sample, response: str) -> SampleScore:
        rule = super().score_vqa(sample, response)
        if not self.needs_verdict(sample):
            return rule
        case = self._case(sample, response)
        if case not in self.verdicts:
            raise ConfigError(
                "medevalkit-judge needs an LLM judge for open questions: pass --judge "
                "URL_OR_ID (any OpenAI-compatible server or model), or score with medevalkit"
            )
        reply = self.verdicts[case]
        ok = medevalkit_verdict(reply)
        metrics = {**rule.metrics, "judge": float(ok), "judge_readable": float(bool(reply))}
        return SampleScore("correct" if ok else "wrong", float(ok), metrics, case.response)


def judge_record(judge: Backend) -> dict[str, Any]:
    """Who judged, as a run's config records it: the model the server named, the backend and
    endpoint (never a key), and the prompt and decoding the verdicts were asked with."""
    return {
        "protocol": MedEvalKitJudgeProtocol.name,
        "model": judge.model_id,
        "backend": judge.name,
        "endpoint": getattr(judge, "base_url", None),
        "prompt": JUDGE_SOURCE,
        "max_new_tokens": JUDGE_OPTIONS.max_new_tokens,
        "temperature": JUDGE_OPTIONS.temperature,
    }


def judge_verdicts(
    protocol: MedEvalKitJudgeProtocol,
    samples: Sequence[Sample],
    predictions: Sequence[str],
    judge: Backend,
    cache: GenerationCache | None = None,
) -> MedEvalKitJudgeProtocol:
    """``protocol`` with the judge's replies for every open answer: looked up in ``cache``
    (the run store) by request key first, the rest asked of ``judge`` in one batch and
    stored. Identical (question, answer, response) triples are asked once."""
    from medlens.pipeline import request_key

    cases = {
        protocol.case(s, p)
        for s, p in zip(samples, predictions, strict=True)
        if protocol.needs_verdict(s)
    }
    replies: dict[JudgeCase, str | None] = {}
    todo: list[tuple[JudgeCase, Request, str]] = []
    for n, case in enumerate(sorted(cases, key=lambda c: (c.question, c.answer, c.response))):
        request = case.request(f"judge-{n}")
        key = request_key(request, judge)
        hit = cache.get(key) if cache is not None else None
        if hit is not None:
            replies[case] = hit.text
        else:
            todo.append((case, request, key))
    if todo:
        generations = judge.generate([r for _, r, _ in todo])
        for (case, _, key), generation in zip(todo, generations, strict=True):
            replies[case] = None if generation.error else generation.text
            if cache is not None and generation.error is None:
                cache.put(key, generation)
    return type(protocol)(replies)
