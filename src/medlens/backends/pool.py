"""Several OpenAI-compatible servers of one model, used as one backend.

``--model http://gpu1:8000/v1,http://gpu2:8000/v1`` (a comma-separated list of server URLs)
builds an ``UpstreamPool``: each request goes to the **least-loaded healthy** upstream (fewest
requests in flight; ties in turn), as the request routers in front of vLLM replicas do
(vLLM production-stack, SGLang's router). It is how ``medlens serve`` fronts N model
replicas, and how ``medlens eval`` spreads a run over N servers without a cluster.

Health: every upstream is probed with ``GET /v1/models`` (the endpoint every
OpenAI-compatible server has: vLLM, SGLang, Ollama, ``transformers serve``, ``medlens
serve``) at start and every ``health_interval_s``; it is healthy when it answers and lists the
pool's model. A request that comes back as an error triggers a probe of its upstream at once:
when the probe fails too, the upstream is marked down and the request is sent to another one
(so a server that dies mid-run costs no answer); when it succeeds, the error was the
request's own and is returned as it is. A downed upstream rejoins when a probe succeeds, and
one that was down at start joins when it comes up. With no healthy upstream left a call
raises ``BackendError`` (the server answers 502; an evaluation stops and resumes later).

Each upstream is an ``OpenAIBackend`` (the same request body, retries and privacy rule: the
pool is remote and refuses requests that were not de-identified unless
``allow_identified``); the upstreams' own retries are reduced to one, since the pool's
fail-over is the better retry.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from medlens.errors import BackendError, ConfigError, PrivacyError

if TYPE_CHECKING:
    from medlens.backends.openai import OpenAIBackend
    from medlens.types import Generation, Request

log = logging.getLogger(__name__)

_PROBE_TIMEOUT_S = 5.0
"""A health check slower than this counts as a failure."""


def split_urls(model: str) -> list[str]:
    """``"http://a:8000/v1, http://b:8000/v1"`` → the URLs, each once, in order."""
    urls = list(dict.fromkeys(u.strip() for u in model.split(",") if u.strip()))
    bad = [u for u in urls if not u.startswith(("http://", "https://"))]
    if bad or not urls:
        raise ConfigError(
            f"An upstream pool is a comma-separated list of server URLs (http:// or "
            f"https://); {', '.join(repr(u) for u in bad) or 'none was given'} is not one."
        )
    return urls


@dataclass
class UpstreamStatus:
    """One upstream as the pool sees it now."""

    url: str
    healthy: bool
    in_flight: int
    answered: int
    failed_over: int
    """Requests moved to another upstream because this one was down."""
    last_error: str


class _Upstream:
    def __init__(self, url: str) -> None:
        self.url = url
        self.backend: OpenAIBackend | None = None
        self.healthy = False
        self.in_flight = 0
        self.answered = 0
        self.failed_over = 0
        self.last_error = ""


class UpstreamPool:
    """OpenAI-compatible servers of one model behind one ``Backend`` (see the module
    docstring). ``model``: the comma-separated server URLs; ``served_model``: the model name
    they serve (default: the first name the first healthy upstream lists). The other options
    go to each upstream's ``OpenAIBackend``; ``concurrency`` is per upstream."""

    name: ClassVar[str] = "openai-pool"
    remote: ClassVar[bool] = True
    supports_scoring: ClassVar[bool] = False
    view_size: int | None = None

    def __init__(
        self,
        model: str,
        *,
        served_model: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 1,
        concurrency: int = 8,
        health_interval_s: float = 5.0,
        allow_identified: bool = False,
    ) -> None:
        if health_interval_s <= 0:
            raise ConfigError(f"health_interval_s must be positive, not {health_interval_s}.")
        self.served_model = served_model
        self.allow_identified = allow_identified
        self.health_interval_s = health_interval_s
        self._options: dict[str, Any] = {
            "api_key": api_key,
            "timeout_s": timeout_s,
            "max_retries": max_retries,
            "concurrency": concurrency,
            "allow_identified": allow_identified,
        }
        self._upstreams = [_Upstream(url) for url in split_urls(model)]
        self._lock = threading.Lock()
        self._turn = 0
        self._executor = ThreadPoolExecutor(
            len(self._upstreams) * concurrency, thread_name_prefix="medlens-pool"
        )
        self._stop = threading.Event()
        self.model_id = served_model or ""
        # The first upstream that answers names the model (unless served_model does); the
        # others are then checked against it, at once.
        first = next((u for u in self._upstreams if self.model_id or self._probe(u)), None)
        list(self._executor.map(self._probe, [u for u in self._upstreams if u is not first]))
        if first is not None and self.model_id and not first.healthy:
            self._probe(first)
        healthy = [u for u in self._upstreams if u.healthy]
        if not healthy:
            self.close()
            errors = "; ".join(f"{u.url}: {u.last_error}" for u in self._upstreams)
            raise BackendError(f"None of the upstream servers answered ({errors}).")
        self._health = threading.Thread(target=self._watch, name="medlens-pool-health", daemon=True)
        self._health.start()

    # ---------------------------------------------------------------- health

    def _probe(self, upstream: _Upstream) -> bool:
        """Check one upstream now (building its backend when it has none yet) and record
        whether it is healthy."""
        from medlens.backends.openai import OpenAIBackend

        try:
            if upstream.backend is None:
                upstream.backend = OpenAIBackend(
                    upstream.url, served_model=self.served_model or None, **self._options
                )
            models = upstream.backend.models(timeout_s=_PROBE_TIMEOUT_S)
            self._adopt(upstream.backend.model_id)
            healthy = self.model_id in models and upstream.backend.model_id == self.model_id
            error = "" if healthy else f"serves {', '.join(models)}, not {self.model_id}"
        except BackendError as exc:
            healthy, error = False, str(exc)
        with self._lock:
            if healthy != upstream.healthy:
                log.info("upstream %s is %s %s", upstream.url, "up" if healthy else "down", error)
            upstream.healthy = healthy
            upstream.last_error = error
        return healthy

    def _adopt(self, model_id: str) -> None:
        """The first upstream's model is the pool's; every later one must serve it."""
        with self._lock:
            if not self.model_id:
                self.model_id = model_id
            self.served_model = self.model_id

    def _watch(self) -> None:
        while not self._stop.wait(self.health_interval_s):
            for upstream in self._upstreams:
                if self._stop.is_set():
                    return
                self._probe(upstream)

    def status(self) -> list[UpstreamStatus]:
        """Every upstream's health and load now."""
        with self._lock:
            return [
                UpstreamStatus(
                    u.url, u.healthy, u.in_flight, u.answered, u.failed_over, u.last_error
                )
                for u in self._upstreams
            ]

    # ---------------------------------------------------------------- generation

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        """One generation per request, in order; the requests of a batch are spread over the
        upstreams at once."""
        if not self.allow_identified and any(not r.deidentified for r in requests):
            raise PrivacyError(
                "Requests that were not de-identified would be sent to the upstream servers. "
                "De-identify first or pass --no-deid explicitly (allow_identified=True)."
            )
        return list(self._executor.map(self._route, requests))

    def _route(self, request: Request) -> Generation:
        tried: set[str] = set()
        while True:
            upstream = self._acquire(tried)
            tried.add(upstream.url)
            assert upstream.backend is not None
            try:
                (generation,) = upstream.backend.generate([request])
            finally:
                with self._lock:
                    upstream.in_flight -= 1
            if generation.finish_reason != "error" or self._probe(upstream):
                with self._lock:
                    upstream.answered += 1
                return generation
            with self._lock:
                upstream.failed_over += 1
                others = any(u.healthy and u.url not in tried for u in self._upstreams)
            if not others:
                return generation

    def _acquire(self, tried: set[str]) -> _Upstream:
        with self._lock:
            healthy = [u for u in self._upstreams if u.healthy and u.backend is not None]
            if not healthy:
                errors = "; ".join(f"{u.url}: {u.last_error}" for u in self._upstreams)
                raise BackendError(
                    f"No upstream server is healthy ({errors}). Start them (or wait for the "
                    f"health checks, every {self.health_interval_s:g} s) and retry."
                )
            fresh = [u for u in healthy if u.url not in tried] or healthy
            self._turn += 1
            n = len(self._upstreams)
            index = {id(u): i for i, u in enumerate(self._upstreams)}
            upstream = min(fresh, key=lambda u: (u.in_flight, (index[id(u)] - self._turn) % n))
            upstream.in_flight += 1
            return upstream

    def close(self) -> None:
        self._stop.set()
        self._executor.shutdown(wait=True)
        for upstream in self._upstreams:
            if upstream.backend is not None:
                upstream.backend.close()


__all__ = ["UpstreamPool", "UpstreamStatus", "split_urls"]
