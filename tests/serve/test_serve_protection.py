"""Key storage, the token bucket and the gate, without HTTP (their timing made exact)."""

from __future__ import annotations

import asyncio
import json
import stat
import time
from pathlib import Path

import pytest

from medlens.errors import ConfigError
from medlens.serve.auth import KeyStore
from medlens.serve.config import ServeConfig
from medlens.serve.errors import APIError
from medlens.serve.limits import Gate, RateLimiter


def test_keys_are_stored_salted_and_hashed_with_private_mode(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    first, second = store.add("alice"), store.add("bob")
    text = (tmp_path / "keys.json").read_text()
    rows = json.loads(text)["keys"]
    assert {r["name"] for r in rows} == {"alice", "bob"} and len({r["salt"] for r in rows}) == 2
    assert first.split("-", 2)[2] not in text and second.split("-", 2)[2] not in text
    assert stat.S_IMODE((tmp_path / "keys.json").stat().st_mode) == 0o600
    assert store.verify(first).name == "alice" and store.verify(second).name == "bob"
    for bad in ("", "ml-", first + "x", "sk-" + first[3:], first.replace(first[3:11], "0" * 8)):
        assert store.verify(bad) is None


def test_a_key_added_while_serving_is_seen_without_restart(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    serving = KeyStore(path)
    assert serving.verify("ml-00000000-x") is None
    time.sleep(0.01)  # a new mtime
    key = KeyStore(path).add("late")
    assert serving.verify(key) is not None


def test_a_corrupt_key_file_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="--add-key"):
        KeyStore(path).verify("ml-1-2")


def test_token_bucket_refills_at_the_configured_rate() -> None:
    limiter = RateLimiter(rpm=60, burst=2)  # one token per second
    limiter.check("a", now=0.0)
    limiter.check("a", now=0.0)
    with pytest.raises(APIError) as refused:
        limiter.check("a", now=0.5)
    assert refused.value.status == 429 and refused.value.headers["Retry-After"] == "1"
    limiter.check("b", now=0.5)  # buckets are per client
    limiter.check("a", now=1.6)


def test_gate_rejects_when_queue_full_and_keeps_slot_after_timeout() -> None:
    async def scenario() -> None:
        gate = Gate(concurrency=1, queue_size=1)
        now = time.monotonic()
        slow = asyncio.ensure_future(gate.run(lambda: time.sleep(0.6), now + 0.2))
        await asyncio.sleep(0.05)
        waiting = asyncio.ensure_future(gate.run(lambda: "second", now + 5))
        await asyncio.sleep(0.05)
        with pytest.raises(APIError) as full:
            await gate.run(lambda: "third", now + 5)
        assert full.value.status == 503
        with pytest.raises(APIError) as late:
            await slow
        assert late.value.status == 504
        assert gate.running == 1  # the timed-out call still holds its slot...
        assert await waiting == "second"  # ...and the waiting one runs once it ends
        gate.close()

    asyncio.run(scenario())


def test_gate_sheds_requests_that_cannot_finish_in_time() -> None:
    async def scenario() -> None:
        gate = Gate(concurrency=1, queue_size=4)
        assert await gate.run(lambda: time.sleep(0.3) or "measured", time.monotonic() + 5)
        assert gate.service_s == pytest.approx(0.3, abs=0.1)
        ran: list[str] = []
        started = time.monotonic()
        with pytest.raises(APIError) as shed:
            await gate.run(lambda: ran.append("x"), started + 0.25)  # the 0.3 s cannot fit
        assert shed.value.status == 503 and "within the time-out" in str(shed.value)
        assert time.monotonic() - started < 0.2 and ran == []  # refused at once, not at 0.25
        assert await gate.run(lambda: "fits", time.monotonic() + 1) == "fits"
        gate.close()

    asyncio.run(scenario())


def test_config_refuses_an_open_server_without_keys() -> None:
    with pytest.raises(ConfigError, match="without API keys"):
        ServeConfig(host="0.0.0.0").validate()
    ServeConfig(host="0.0.0.0", api_key_file=Path("k.json")).validate()
    with pytest.raises(ConfigError, match="timeout_s"):
        ServeConfig(timeout_s=0).validate()
