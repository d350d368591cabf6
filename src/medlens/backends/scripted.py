"""A backend whose answers are written in advance, for users' own tests.

As httpx ships ``MockTransport`` so that code using a client can be tested without a
server, medlens ships ``ScriptedBackend`` so that a pipeline, a benchmark or a scorer can be
tested without a model::

    backend = ScriptedBackend(answers={"Is there a pneumothorax?": "No."})
    backend = ScriptedBackend(answers=lambda request: "yes" if "effusion" in request.question
                              else "no")
    backend = ScriptedBackend(answers=["A", "B", "C"])           # in order of the requests
    backend = ScriptedBackend(answers={"q1": "yes"}, logprobs={"q1": {"yes": -0.1, "no": -2.4}})

It keeps every request it saw in ``requests`` so that a test can check what was asked.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import ClassVar, TypeAlias

from medlens.errors import ConfigError
from medlens.types import Generation, Request

Reply: TypeAlias = str | Generation
"""A scripted reply: the answer text, or a whole ``Generation`` (to script an error, tokens,
samples or timings; its ``request_id`` is set to the request's)."""
Answers: TypeAlias = Mapping[str, Reply] | Callable[[Request], Reply] | Sequence[Reply]
Logprobs: TypeAlias = Mapping[str, Mapping[str, float]] | Callable[[Request], Mapping[str, float]]


class ScriptedBackend:
    """Fixed answers by request id, by question text, from a callable, or in order.

    A mapping is looked up by ``request.id`` first, then by ``request.question``; a missing
    entry, like an exhausted sequence, yields an error generation (as a failed request of a
    real backend would), naming what was looked up. ``logprobs`` (the same kinds of keys, or
    a callable) fills ``candidate_logprobs``.
    """

    name: ClassVar[str] = "scripted"
    remote: ClassVar[bool] = False
    allow_identified: bool = False
    supports_scoring: ClassVar[bool] = True
    view_size: int | None = None

    def __init__(
        self, model: str = "scripted", *, answers: Answers, logprobs: Logprobs | None = None
    ) -> None:
        if isinstance(answers, (str, Generation)):
            raise ConfigError(
                "ScriptedBackend answers must be a mapping (request id or question to answer), "
                "a callable or a sequence of answers, not a single answer."
            )
        self.model_id = model
        self.answers = answers
        self.logprobs = logprobs
        self.requests: list[Request] = []
        self._next = 0
        self._lock = threading.Lock()

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        with self._lock:
            self.requests.extend(requests)
            return [self._reply(request) for request in requests]

    def close(self) -> None:
        """Nothing to release."""

    def _reply(self, request: Request) -> Generation:
        reply = self._lookup(request)
        if reply is None:
            return Generation.failed(
                request.id,
                self.model_id,
                self.name,
                f"no scripted answer for request {request.id!r} (question {request.question!r})",
            )
        if isinstance(reply, Generation):
            return replace(reply, request_id=request.id)
        return Generation(
            request_id=request.id,
            text=reply,
            model=self.model_id,
            backend=self.name,
            candidate_logprobs=self._candidate_logprobs(request),
        )

    def _lookup(self, request: Request) -> Reply | None:
        answers = self.answers
        if callable(answers):
            return answers(request)
        if isinstance(answers, Mapping):
            return answers.get(request.id, answers.get(request.question))
        if self._next >= len(answers):
            return None
        reply = answers[self._next]
        self._next += 1
        return reply

    def _candidate_logprobs(self, request: Request) -> dict[str, float]:
        if self.logprobs is None:
            return {}
        if callable(self.logprobs):
            return dict(self.logprobs(request))
        found = self.logprobs.get(request.id, self.logprobs.get(request.question))
        return dict(found) if found is not None else {}
