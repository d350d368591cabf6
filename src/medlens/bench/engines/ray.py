"""The ``ray`` engine: generation on N model replicas of a Ray cluster, the rest on the driver.

What runs where:

- **driver** (the ``medlens eval`` process): the run plan, loading and de-identifying every
  study, recipe views and task requests, the generation cache, parsing, confidence, scoring
  and the SQLite run store (one writer, one commit per completed batch) — exactly what the
  local engine runs, so the two store the same rows;
- **replicas** (Ray actors, ``num_gpus`` each when the model runs in-process): one backend
  each — an in-process ``transformers`` model, or a client of an OpenAI-compatible server —
  built once per actor by the same ``load_backend`` the local engine calls.

What crosses the wire: de-identified requests only (``pipeline.check_privacy`` holds the pool
to the rules of a remote backend: a request that was not de-identified is refused unless the
user turned de-identification off), each image as **lossless PNG bytes** of the prepared view
(TIFF for the few modes PNG cannot hold exactly), never a pickled array; back come
``Generation`` objects (text, token log-probabilities, timings). Lossless matters: a JPEG round
trip changes pixels, and with them greedy answers, so the replicas would not answer what the
local engine answers.

Back-pressure: ``RayEngine`` draws the next batch from the driver's lazy stream of prepared
batches only when fewer than ``replicas × in_flight_per_replica`` are in flight or waiting to
be handed back (in batch order, as ``pipeline.run`` pairs them), so the driver holds a bounded
window of prepared studies whatever the size of the benchmark.

Faults, in layers:

1. a replica process that dies is restarted by Ray (``max_restarts``), which re-runs its
   in-flight batches on the new process (``max_task_retries``);
2. a batch that fails anyway (an exception in the backend, a replica dead for good, a call
   past ``call_timeout_s``) is tried again on another replica, up to ``max_attempts`` times;
   a replica that fails twice in a row, dies for good or hangs is killed and replaced by a
   fresh actor (at most ``2 × replicas`` replacements per pool);
3. a batch that still fails is split into single requests, each tried once more, so one
   poisonous request does not take its neighbours down; a request that fails then becomes an
   error ``Generation`` (an error row, counted in the report), never a silent drop.

A ``MedlensError`` raised by the backend (a model that does not load, a rejected API key) is
the backend saying that it cannot work at all: it stops the run as it would on one machine.
Each request gets exactly one generation; the store's primary key (run, sample) makes a
duplicate impossible, and a driver killed at any point resumes from its last commit.

Identical results: the replicas answer the same requests, batched as the local engine batches
them, with the same backend code. Bitwise equal logits also need the same kernels: the same
device type and dtype and, on CPU, the same intra-op thread count (Ray gives a replica
``num_cpus`` threads; GEMM reduction order depends on it).
"""

from __future__ import annotations

import functools
import io
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar

from medlens.errors import BackendError, ConfigError, MedlensError, require
from medlens.types import Generation, ImagePart, Message, Request, TextPart

if TYPE_CHECKING:
    from PIL import Image

    from medlens.backends.base import Backend

PNG_MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "I;16"})
"""Image modes a PNG stores and reads back exactly."""
TIFF_MODES = frozenset({"I", "F", "CMYK", "LAB"})
"""Modes PNG cannot hold that a deflate-compressed TIFF stores exactly."""


# --------------------------------------------------------------------------------------------
# The wire form of a request
# --------------------------------------------------------------------------------------------


def encode_image(image: Image.Image) -> bytes:
    """Lossless compressed bytes of a view (PNG, or TIFF for 32-bit and CMYK/LAB modes)."""
    buffer = io.BytesIO()
    if image.mode in PNG_MODES:
        # Level 1: most of the size gain of deflate at a fraction of level 6's time, on the
        # driver, which encodes every image of the benchmark.
        image.save(buffer, format="PNG", compress_level=1)
    elif image.mode in TIFF_MODES:
        image.save(buffer, format="TIFF", compression="tiff_adobe_deflate")
    else:
        raise ConfigError(
            f"A view of mode {image.mode} cannot be sent to a replica losslessly; medlens "
            f"sends {', '.join(sorted(PNG_MODES | TIFF_MODES))}. Convert the view (e.g. to "
            "RGB) in the recipe or probe that makes it."
        )
    return buffer.getvalue()


def decode_image(data: bytes) -> Image.Image:
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@dataclass(frozen=True)
class WireRequest:
    """A ``Request`` as it travels to a replica: its fields, with every image part replaced
    by its encoded bytes (``bytes`` parts are images, ``str`` parts are text)."""

    request: Request
    """The request with its message contents emptied (no images inside)."""
    contents: tuple[tuple[str | bytes, ...], ...]
    """Per message, its parts in order."""

    @classmethod
    def of(cls, request: Request) -> WireRequest:
        contents = tuple(
            tuple(encode_image(p.image) if isinstance(p, ImagePart) else p.text for p in m.content)
            for m in request.messages
        )
        bare = tuple(Message(m.role, ()) for m in request.messages)
        return cls(replace(request, messages=bare), contents)

    def to_request(self) -> Request:
        messages = tuple(
            Message(
                m.role,
                tuple(
                    ImagePart(decode_image(p)) if isinstance(p, bytes) else TextPart(p)
                    for p in parts
                ),
            )
            for m, parts in zip(self.request.messages, self.contents)
        )
        return replace(self.request, messages=messages)

    @property
    def nbytes(self) -> int:
        return sum(len(p) for parts in self.contents for p in parts if isinstance(p, bytes))


# --------------------------------------------------------------------------------------------
# One replica (a Ray actor)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplicaInfo:
    """What a replica reports once its backend is built."""

    name: str
    model_id: str
    supports_scoring: bool
    view_size: int | None
    medlens_version: str
    pid: int
    node: str


class Replica:
    """The body of one replica actor: a backend built once in the worker process.

    A ``MedlensError`` while building it is kept and raised by every call, so that the driver
    gets the backend's own message (Ray would otherwise report an actor whose creation task
    failed, and restart it in a loop).
    """

    def __init__(self, factory: Callable[[], Backend]) -> None:
        self.backend: Backend | None = None
        self.error: MedlensError | None = None
        try:
            self.backend = factory()
        except MedlensError as exc:
            self.error = exc

    def _ready(self) -> Backend:
        if self.error is not None:
            raise self.error
        assert self.backend is not None
        return self.backend

    def info(self) -> ReplicaInfo:
        import ray

        import medlens

        backend = self._ready()
        return ReplicaInfo(
            name=backend.name,
            model_id=backend.model_id,
            supports_scoring=bool(backend.supports_scoring),
            view_size=backend.view_size,
            medlens_version=medlens.__version__,
            pid=os.getpid(),
            node=ray.get_runtime_context().get_node_id(),
        )

    def generate(self, batch: Sequence[WireRequest]) -> list[Generation]:
        return self._ready().generate([w.to_request() for w in batch])

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()


# --------------------------------------------------------------------------------------------
# The pool of replicas, seen from the driver as one backend
# --------------------------------------------------------------------------------------------


def connect(address: str | None = None) -> bool:
    """Join the Ray cluster at ``address`` ("auto": the one started on this node with ``ray
    start``; "ray://host:10001": Ray Client) or, without one, start a local cluster of this
    machine's CPUs and GPUs. Returns whether this call started Ray (and so should shut it
    down). Nothing happens when this process is already connected."""
    ray = require("ray", "ray", "The ray engine")
    if ray.is_initialized():
        return False
    # Worker output would interleave with the progress bar; errors still reach the driver
    # as exceptions, with the worker's traceback.
    if address is None:
        ray.init(include_dashboard=False, log_to_driver=False)
    else:
        try:
            ray.init(address=address, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise ConfigError(
                f"Could not join the Ray cluster at {address!r} ({type(exc).__name__}: "
                f"{_first_line(exc)}). Start one with `ray start --head`, check the address, "
                "or leave --address out to start a local cluster."
            ) from exc
    return True


@dataclass
class _Slot:
    """One replica seat: its current actor and what the pool knows about it."""

    index: int
    actor: Any
    in_flight: int = 0
    failures_in_a_row: int = 0
    dead: bool = False


@dataclass
class PoolStats:
    """What went wrong and was repaired during a pool's life (for the run's record)."""

    batches: int = 0
    failed_attempts: int = 0
    replaced: int = 0
    split_batches: int = 0
    error_generations: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    """Failure kind (exception class) → count."""


class ReplicaPool:
    """N replica actors of one backend, used from the driver as one ``Backend``.

    ``factory`` builds the backend inside each replica (it is pickled to the workers: use a
    module-level callable or a ``functools.partial`` of one, e.g. of ``load_backend``).
    ``address``: the cluster to join (``connect``); without one, and when this process is
    not connected yet, a local cluster is started and shut down by ``close`` (or as
    ``shutdown_on_close`` says).
    ``generate`` is thread-safe and sends each call to the least-loaded live replica; the
    engine (``RayEngine``) keeps ``window`` calls in flight. See the module docstring for the
    fault handling. The pool takes the inner backend's ``name`` and ``model_id``, so cache
    keys and stored generations are those of the local engine.
    """

    remote: ClassVar[bool] = True
    """Requests leave this process: only de-identified ones are sent (``allow_identified``)."""

    def __init__(
        self,
        factory: Callable[[], Backend],
        replicas: int,
        *,
        address: str | None = None,
        num_cpus: float = 1.0,
        num_gpus: float = 0.0,
        in_flight_per_replica: int = 2,
        max_attempts: int = 3,
        max_restarts: int = 2,
        call_timeout_s: float | None = None,
        startup_timeout_s: float = 900.0,
        allow_identified: bool = False,
        shutdown_on_close: bool | None = None,
    ) -> None:
        if replicas < 1:
            raise ConfigError(f"--replicas must be 1 or more, not {replicas}.")
        if in_flight_per_replica < 1 or max_attempts < 1:
            raise ConfigError("in_flight_per_replica and max_attempts must be 1 or more.")
        self.ray = require("ray", "ray", "The ray engine")
        started = connect(address)
        self._shutdown_on_close = started if shutdown_on_close is None else shutdown_on_close
        self.factory = factory
        self.replicas = replicas
        self.in_flight_per_replica = in_flight_per_replica
        self.max_attempts = max_attempts
        self.call_timeout_s = call_timeout_s
        self.allow_identified = allow_identified
        self.stats = PoolStats()
        self._max_replacements = 2 * replicas
        self._lock = threading.Lock()
        self._turn = 0
        self._slots: list[_Slot] = []
        try:
            self._check_resources(replicas, num_cpus, num_gpus)
            self._actor_class = self.ray.remote(Replica).options(
                num_cpus=num_cpus,
                num_gpus=num_gpus,
                max_restarts=max_restarts,
                max_task_retries=max_restarts,
            )
            self._slots = [_Slot(i, self._actor_class.remote(factory)) for i in range(replicas)]
            infos = self._infos(startup_timeout_s)
        except BaseException:
            self.close()
            raise
        first = infos[0]
        self.name: str = first.name
        self.model_id: str = first.model_id
        self.supports_scoring: bool = first.supports_scoring
        self.view_size: int | None = first.view_size
        self.infos = infos

    # ---------------------------------------------------------------- start-up

    def _check_resources(self, replicas: int, num_cpus: float, num_gpus: float) -> None:
        total = self.ray.cluster_resources()
        for resource, each in (("CPU", num_cpus), ("GPU", num_gpus)):
            have = float(total.get(resource, 0.0))
            if each > 0 and replicas * each > have:
                raise ConfigError(
                    f"{replicas} replicas × {each:g} {resource} need {replicas * each:g} "
                    f"{resource}s; the Ray cluster has {have:g}. Lower --replicas, or add "
                    "nodes to the cluster."
                )

    def _infos(self, timeout_s: float) -> list[ReplicaInfo]:
        import medlens

        ray = self.ray
        refs = [slot.actor.info.remote() for slot in self._slots]
        try:
            infos: list[ReplicaInfo] = ray.get(refs, timeout=timeout_s)
        except ray.exceptions.GetTimeoutError as exc:
            raise BackendError(
                f"The {self.replicas} replicas did not start within {timeout_s:g} s (the "
                "cluster may lack free resources for them, or the model loads slowly)."
            ) from exc
        except ray.exceptions.RayTaskError as exc:
            if isinstance(exc.cause, MedlensError):
                raise exc.cause from None
            raise BackendError(
                f"A replica failed while building its backend: {_first_line(exc.cause)}"
            ) from exc
        except ray.exceptions.RayActorError as exc:
            raise BackendError(
                "A replica died while building its backend; medlens must be installed, in "
                f"the same version, on every node of the cluster ({_first_line(exc)})."
            ) from exc
        versions = {i.medlens_version for i in infos}
        if versions != {medlens.__version__}:
            raise ConfigError(
                f"The replicas run medlens {', '.join(sorted(versions))} and this driver "
                f"{medlens.__version__}; install the same version on every node, so that "
                "both sides build the same requests and answers."
            )
        if len({(i.name, i.model_id) for i in infos}) > 1:
            raise ConfigError("The replicas built different models; they must be copies.")
        return infos

    # ---------------------------------------------------------------- generation

    @property
    def window(self) -> int:
        """Batches the pool keeps in flight: enough for each replica to have the next one
        queued while it works on the current one."""
        return self.replicas * self.in_flight_per_replica

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        """One generation per request, in order (see the module docstring for faults)."""
        if not requests:
            return []
        with self._lock:
            self.stats.batches += 1
        wire = [WireRequest.of(r) for r in requests]
        generations = self._attempt(list(requests), wire, self.max_attempts)
        if generations is not None:
            return generations
        if len(requests) == 1:
            return [self._failed(requests[0], self.max_attempts)]
        with self._lock:
            self.stats.split_batches += 1
        # One request may be what fails: try each alone, so only the culprit fails.
        return [
            (self._attempt([r], [w], 1) or [self._failed(r, self.max_attempts + 1)])[0]
            for r, w in zip(requests, wire)
        ]

    def _attempt(
        self, requests: list[Request], wire: list[WireRequest], attempts: int
    ) -> list[Generation] | None:
        """The generations of one call, trying up to ``attempts`` replicas; None if every
        try failed. A ``MedlensError`` of the backend propagates."""
        ray = self.ray
        tried: set[int] = set()
        for _ in range(attempts):
            slot, actor = self._acquire(avoid=tried)
            tried.add(slot.index)
            failure: str
            try:
                generations: list[Generation] = ray.get(
                    actor.generate.remote(wire), timeout=self.call_timeout_s
                )
            except ray.exceptions.RayTaskError as exc:
                self._release(slot)
                if isinstance(exc.cause, MedlensError):
                    raise exc.cause from None
                failure = type(exc.cause).__name__
                self._failed_on(slot, actor, failure, replace_now=False)
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as exc:
                self._release(slot)
                failure = type(exc).__name__
                self._failed_on(slot, actor, failure, replace_now=True)
            else:
                self._release(slot, ok=True)
                if len(generations) != len(requests):
                    raise BackendError(
                        f"A replica returned {len(generations)} generations for "
                        f"{len(requests)} requests; its backend breaks the Backend protocol."
                    )
                return generations
        return None

    def _failed(self, request: Request, attempts: int) -> Generation:
        """The error generation of a request no replica could answer."""
        with self._lock:
            self.stats.error_generations += 1
            kinds = ", ".join(f"{k} ×{n}" for k, n in sorted(self.stats.failures.items()))
        return Generation.failed(
            request.id,
            self.model_id,
            self.name,
            f"replicas failed on this request {attempts} times (failures in this pool so "
            f"far: {kinds})",
        )

    # ---------------------------------------------------------------- replica bookkeeping

    def _acquire(self, avoid: set[int]) -> tuple[_Slot, Any]:
        """The live replica with the fewest calls in flight, preferring ones this call has
        not tried (ties go round-robin, so that an idle pool spreads its first calls), and
        its actor now (a failure is blamed on that actor, not on its replacement)."""
        with self._lock:
            live = [s for s in self._slots if not s.dead]
            if not live:
                raise BackendError(
                    f"All {self.replicas} replicas died and none could be replaced; the run "
                    "keeps what it stored: fix the cluster and continue with --resume."
                )
            fresh = [s for s in live if s.index not in avoid] or live
            self._turn += 1
            n = len(self._slots)
            slot = min(fresh, key=lambda s: (s.in_flight, (s.index - self._turn) % n))
            slot.in_flight += 1
            return slot, slot.actor

    def _release(self, slot: _Slot, ok: bool = False) -> None:
        with self._lock:
            slot.in_flight -= 1
            if ok:
                slot.failures_in_a_row = 0

    def _failed_on(self, slot: _Slot, actor: Any, failure: str, *, replace_now: bool) -> None:
        """Count a failed call; replace a replica that died, hung or failed twice in a row
        (unless ``actor`` was replaced already: its other calls fail with it)."""
        with self._lock:
            self.stats.failed_attempts += 1
            self.stats.failures[failure] = self.stats.failures.get(failure, 0) + 1
            if slot.actor is not actor:
                return
            slot.failures_in_a_row += 1
            if not (replace_now or slot.failures_in_a_row >= 2):
                return
            old = slot.actor
            if self.stats.replaced >= self._max_replacements:
                slot.dead = replace_now
                return
            self.stats.replaced += 1
            slot.actor = self._actor_class.remote(self.factory)
            slot.failures_in_a_row = 0
        self.ray.kill(old, no_restart=True)

    def summary(self) -> str:
        """One line on what the replicas went through, for the end of a run."""
        s = self.stats
        return (
            f"ray: {self.replicas} replica(s) of {self.model_id}, {s.batches} batches, "
            f"{s.failed_attempts} failed attempt(s), {s.replaced} replica(s) replaced, "
            f"{s.error_generations} request(s) left as errors"
        )

    def replica_pids(self) -> list[int]:
        """The process id of each live replica now (a restarted replica has a new one)."""
        live = [s for s in self._slots if not s.dead]
        return [i.pid for i in self.ray.get([s.actor.info.remote() for s in live])]

    def close(self) -> None:
        """Release the replicas' backends and end their actors."""
        ray = self.ray
        for slot in self._slots:
            try:
                ray.get(slot.actor.close.remote(), timeout=30)
            except (ray.exceptions.RayError, MedlensError):
                pass  # a dead or failed replica has nothing left to release
            ray.kill(slot.actor, no_restart=True)
        self._slots = []
        if self._shutdown_on_close:
            ray.shutdown()
            self._shutdown_on_close = False


def replica_pool(
    model: str,
    backend: str | None = None,
    *,
    replicas: int,
    address: str | None = None,
    options: Mapping[str, Any] | None = None,
    cpus_per_replica: float = 1.0,
    gpus_per_replica: float | None = None,
    allow_identified: bool = False,
) -> ReplicaPool:
    """``replicas`` copies of ``load_backend(model, backend, **options)`` on the Ray cluster
    at ``address`` (a local one without it). ``gpus_per_replica`` None: 1 for an in-process
    model when the cluster has GPUs, else 0 (a client of an OpenAI-compatible server needs
    none). An in-process model must be readable on every node: a Hub id, or a path on a
    shared file system."""
    from medlens.backends.base import BASELINES, infer_backend_name, load_backend

    name = backend or infer_backend_name(model)
    if name in BASELINES:
        raise ConfigError(
            f"'{name}' is a baseline: it answers from a table in the driver, with nothing to "
            "spread over replicas. Use the local engine for it."
        )
    started = connect(address)
    ray = require("ray", "ray", "The ray engine")
    if gpus_per_replica is None:
        has_gpus = float(ray.cluster_resources().get("GPU", 0.0)) >= 1
        gpus_per_replica = 1.0 if name == "transformers" and has_gpus else 0.0
    factory = functools.partial(load_backend, model, backend=name, **dict(options or {}))
    try:
        return ReplicaPool(
            factory,
            replicas,
            num_cpus=cpus_per_replica,
            num_gpus=gpus_per_replica,
            allow_identified=allow_identified,
            shutdown_on_close=started,
        )
    except BaseException:
        if started:
            ray.shutdown()
        raise


# --------------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------------


def replica_pool_of(backend: Backend) -> ReplicaPool | None:
    """The pool behind ``backend``: itself, or the pool the ``no-image`` baseline asks (the
    model's replicas with the images removed in the driver)."""
    from medlens.backends.baseline import NoImageBackend

    inner = backend.inner if isinstance(backend, NoImageBackend) else backend
    return inner if isinstance(inner, ReplicaPool) else None


def in_order(
    generate: Callable[[list[Request]], list[Generation]],
    batches: Iterable[Sequence[Request]],
    window: int,
) -> Iterator[list[Generation]]:
    """``generate`` of each batch, up to ``window`` at once in threads (each call blocks on
    a replica), handed back in batch order. A batch is drawn only when fewer than ``window``
    are out, so at most ``window`` prepared batches exist at a time."""
    executor = ThreadPoolExecutor(window, thread_name_prefix="medlens-ray")
    out: deque[Future[list[Generation]]] = deque()
    try:
        for batch in batches:
            out.append(executor.submit(generate, list(batch)))
            if len(out) >= window:
                yield out.popleft().result()
        while out:
            yield out.popleft().result()
    finally:
        # An error or an interrupted run: what is still queued is never sent; what a
        # replica is working on is dropped, and a resumed run asks for it again.
        executor.shutdown(wait=False, cancel_futures=True)


class RayEngine:
    """The ``ray`` evaluation engine (``medlens.pipeline.Engine``): the batches of a backend
    that is a ``ReplicaPool`` (or wraps one) go to its replicas, ``pool.window`` at a time;
    the baselines (prior, random: tables in the driver) answer in process."""

    name = "ray"

    def generate(
        self, backend: Backend, batches: Iterable[Sequence[Request]]
    ) -> Iterator[Sequence[Generation]]:
        from medlens.backends.base import BASELINES

        pool = replica_pool_of(backend)
        if pool is not None:
            yield from in_order(backend.generate, batches, pool.window)
            return
        if backend.name not in BASELINES:
            raise ConfigError(
                f"The ray engine runs the model on Ray replicas, and '{backend.model_id}' was "
                "loaded in this process. Build its backend with "
                "medlens.bench.engines.ray.replica_pool(...) (what `medlens eval --engine ray "
                "--replicas N` does), or use the local engine."
            )
        for batch in batches:
            yield backend.generate(list(batch)) if batch else []


def _first_line(exc: BaseException | None) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


__all__ = [
    "PoolStats",
    "RayEngine",
    "Replica",
    "ReplicaInfo",
    "ReplicaPool",
    "WireRequest",
    "connect",
    "decode_image",
    "encode_image",
    "in_order",
    "replica_pool",
    "replica_pool_of",
]
