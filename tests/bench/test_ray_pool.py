"""The replica pool of the ray engine on a real local Ray cluster (one per module: Ray takes
seconds to start): lossless wire form, back-pressure, replicas killed, replicas that always
fail, and a backend's own errors. The engine-level tests (stored rows identical to the local
engine, resume after SIGKILL of the driver) are in ``test_ray_engine.py``."""

from __future__ import annotations

import functools
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from PIL import Image

from medlens.bench.engines.ray import RayEngine, ReplicaPool, WireRequest
from medlens.errors import BackendError, ConfigError
from medlens.types import Generation, ImagePart, Message, Request, TextPart

ray = pytest.importorskip("ray", reason="the ray extra is not installed")

# The test backends below live in this file, which Ray workers cannot import: send them by
# value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _request(i: int, image: Image.Image | None = None) -> Request:
    parts: tuple[TextPart | ImagePart, ...] = (TextPart(f"question {i}"),)
    if image is not None:
        parts = (ImagePart(image), *parts)
    return Request(
        id=f"r{i}",
        messages=(Message("user", parts),),
        kind="open",
        question=f"question {i}",
        deidentified=True,
    )


class Echo:
    """Answers with the request id and the pixel sum of its images, after ``delay_s``."""

    name: ClassVar[str] = "echo"
    remote: ClassVar[bool] = False
    allow_identified = False
    supports_scoring: ClassVar[bool] = False
    view_size = None

    def __init__(self, delay_s: float = 0.0, fail: str | None = None) -> None:
        self.model_id = "echo-1"
        self.delay_s = delay_s
        self.fail = fail

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        time.sleep(self.delay_s)
        if self.fail == "runtime":
            raise RuntimeError("the device is in a bad state")
        if self.fail == "medlens":
            raise BackendError("The server rejected the API key (HTTP 401).")
        if self.fail == "poison" and any(r.id == "r3" for r in requests):
            raise RuntimeError("this request breaks the model")
        return [
            Generation(
                request_id=r.id,
                text=f"{r.id}:{sum(int(np.asarray(im).sum()) for im in r.images)}",
                model=self.model_id,
                backend=self.name,
            )
            for r in requests
        ]

    def close(self) -> None:
        pass


class FirstReplicaFails(Echo):
    """The first replica built (the one that claims ``marker``) fails every call; the others,
    and its replacement, answer."""

    def __init__(self, marker: str) -> None:
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
            fail: str | None = "runtime"
        except FileExistsError:
            fail = None
        super().__init__(fail=fail)


def _pool(factory: Any, replicas: int = 2, **options: Any) -> ReplicaPool:
    return ReplicaPool(factory, replicas, num_cpus=0.5, **options)


def test_wire_form_is_lossless_compressed_bytes() -> None:
    rng = np.random.default_rng(0)
    grey = Image.fromarray((rng.random((40, 30)) * 255).astype(np.uint8))
    images = [
        grey,
        grey.convert("RGB"),
        Image.fromarray((rng.random((8, 9)) * 60000).astype(np.uint16)),
        Image.fromarray(rng.random((8, 9)).astype(np.float32)),
    ]
    request = Request(
        id="a",
        messages=(
            Message("system", (TextPart("be brief"),)),
            Message("user", (*(ImagePart(im) for im in images), TextPart("what?"))),
        ),
        kind="closed",
        question="what?",
        candidates=("yes", "no"),
        deidentified=True,
        metadata={"question_type": "PRES"},
    )
    wire = WireRequest.of(request)
    parts = [p for ps in wire.contents for p in ps]
    assert [type(p) for p in parts] == [str, bytes, bytes, bytes, bytes, str]
    assert all(p[:4] in (b"\x89PNG", b"II*\x00") for p in parts if isinstance(p, bytes))
    assert not wire.request.messages[1].content  # no image travels outside the bytes
    back = wire.to_request()
    assert [im.mode for im in back.images] == ["L", "RGB", "I;16", "F"]
    for sent, got in zip(images, back.images):
        assert sent.tobytes() == got.tobytes()
    assert back.messages[0].content == (TextPart("be brief"),)
    assert (back.id, back.kind, back.candidates, back.metadata, back.deidentified) == (
        "a",
        "closed",
        ("yes", "no"),
        {"question_type": "PRES"},
        True,
    )
    with pytest.raises(ConfigError, match="mode HSV"):
        WireRequest.of(_request(0, grey.convert("RGB").convert("HSV")))


@pytest.mark.slow
def test_batches_are_answered_once_in_order_with_a_bounded_window(cluster: None) -> None:
    pool = _pool(functools.partial(Echo, delay_s=0.02), in_flight_per_replica=2)
    try:
        assert (pool.name, pool.model_id, pool.window) == ("echo", "echo-1", 4)
        image = Image.fromarray(np.full((4, 5), 3, np.uint8))
        drawn = 0
        peak = 0

        def batches() -> Iterator[list[Request]]:
            nonlocal drawn
            for b in range(30):
                drawn += 1
                yield [_request(3 * b + i, image) for i in range(3)] if b != 7 else []

        handed = 0
        for b, generations in enumerate(RayEngine().generate(pool, batches())):
            peak = max(peak, drawn - handed)
            handed += 1
            expected = [] if b == 7 else [f"r{3 * b + i}:60" for i in range(3)]
            assert [g.text for g in generations] == expected
        assert handed == 30
        assert peak == pool.window  # drawn, not yet handed back: never more than the window
        assert pool.stats.failed_attempts == 0
    finally:
        pool.close()


@pytest.mark.slow
def test_a_replica_killed_mid_run_is_restarted_and_nothing_is_lost(cluster: None) -> None:
    pool = _pool(functools.partial(Echo, delay_s=0.1))
    try:
        before = pool.replica_pids()
        answered: list[str] = []
        for n, generations in enumerate(
            RayEngine().generate(pool, ([_request(b)] for b in range(24)))
        ):
            answered += [g.request_id for g in generations]
            if n == 4:
                os.kill(before[0], signal.SIGKILL)
        assert answered == [f"r{b}" for b in range(24)]  # each exactly once
        after = pool.replica_pids()
        assert after[0] != before[0] and after[1] == before[1]
    finally:
        pool.close()


@pytest.mark.slow
def test_a_replica_that_always_fails_is_replaced(cluster: None, tmp_path: Path) -> None:
    pool = _pool(functools.partial(FirstReplicaFails, str(tmp_path / "claimed")))
    try:
        out = RayEngine().generate(pool, ([_request(b)] for b in range(12)))
        assert [g.text for gs in out for g in gs] == [f"r{b}:0" for b in range(12)]
        assert pool.stats.failed_attempts >= 1
        assert pool.stats.replaced == 1
        assert pool.stats.error_generations == 0
    finally:
        pool.close()


@pytest.mark.slow
def test_requests_that_keep_failing_become_error_generations(cluster: None) -> None:
    pool = _pool(functools.partial(Echo, fail="poison"), max_attempts=2)
    try:
        generations = pool.generate([_request(i) for i in range(5)])
        assert [g.request_id for g in generations] == [f"r{i}" for i in range(5)]
        failed = [g for g in generations if g.finish_reason == "error"]
        assert [g.request_id for g in failed] == ["r3"]  # its neighbours were answered alone
        assert "RuntimeError" in (failed[0].error or "")
        assert pool.stats.split_batches == 1 and pool.stats.error_generations == 1
    finally:
        pool.close()
    pool = _pool(functools.partial(Echo, fail="runtime"), max_attempts=2)
    try:
        generations = pool.generate([_request(i) for i in range(3)])
        assert all(g.finish_reason == "error" for g in generations)
        assert pool.stats.error_generations == 3
        assert pool.stats.replaced <= 2 * pool.replicas
    finally:
        pool.close()


@pytest.mark.slow
def test_backend_errors_stop_the_run_as_on_one_machine(cluster: None) -> None:
    pool = _pool(functools.partial(Echo, fail="medlens"))
    try:
        with pytest.raises(BackendError, match="rejected the API key"):
            pool.generate([_request(0)])
    finally:
        pool.close()
    with pytest.raises(BackendError, match="no such model"):
        _pool(functools.partial(_unloadable, "no such model"))


def _unloadable(message: str) -> Echo:
    raise BackendError(message)


@pytest.mark.slow
def test_more_replicas_than_the_cluster_holds_is_a_clear_error(cluster: None) -> None:
    with pytest.raises(ConfigError, match="5 replicas × 1 CPU need 5 CPUs; the Ray cluster has 2"):
        ReplicaPool(Echo, 5, num_cpus=1)


def test_the_ray_engine_refuses_a_model_loaded_in_the_driver() -> None:
    from medlens.backends.baseline import RandomBackend
    from medlens.backends.scripted import ScriptedBackend

    engine = RayEngine()
    answered = list(engine.generate(RandomBackend(), [[_request(0)], []]))
    assert [len(b) for b in answered] == [1, 0]  # baselines answer in the driver
    with pytest.raises(ConfigError, match="runs the model on Ray replicas"):
        list(engine.generate(ScriptedBackend(answers={}), [[_request(0)]]))
