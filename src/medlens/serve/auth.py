"""API keys: created once, shown once, stored only as salted hashes.

A key looks like ``ml-<id>-<secret>``: ``id`` finds its record without trying every hash, and
``secret`` (32 random bytes, RFC 4086 §3) is checked against ``sha256(salt || secret)`` with a
constant-time comparison. A fast hash is enough for secrets of this entropy (NIST SP 800-63B
§5.1.1.2 asks for slow hashing of *memorised* secrets only), and it keeps a per-request check
in microseconds. The file (JSON, mode 0600) lives under ``MEDLENS_HOME/serve/api_keys.json``
unless a path is given.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from medlens.errors import ConfigError


def default_key_file() -> Path:
    from medlens.config import home_dir

    return home_dir() / "serve" / "api_keys.json"


@dataclass(frozen=True)
class KeyRecord:
    id: str
    name: str
    salt: str
    hash: str
    created: float


def _digest(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


class KeyStore:
    """The hashed keys of one file; reloaded when the file changes (keys added while the
    server runs work without a restart)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._records: dict[str, KeyRecord] = {}
        self._mtime: float | None = None

    def _load(self) -> dict[str, KeyRecord]:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            return {}
        with self._lock:
            if mtime != self._mtime:
                try:
                    rows = json.loads(self.path.read_text())["keys"]
                    self._records = {r["id"]: KeyRecord(**r) for r in rows}
                except (ValueError, KeyError, TypeError) as exc:
                    raise ConfigError(
                        f"The API key file {self.path} is not a medlens key file ({exc}). "
                        "Move it away and create keys again with `medlens serve --add-key NAME`."
                    ) from exc
                self._mtime = mtime
            return self._records

    def add(self, name: str) -> str:
        """Create a key named ``name``; returns the only copy of the plain key."""
        key_id = secrets.token_hex(4)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_hex(16)
        record = KeyRecord(key_id, name, salt, _digest(salt, secret), time.time())
        records = dict(self._load())
        records[key_id] = record
        self._write(records)
        return f"ml-{key_id}-{secret}"

    def revoke(self, name_or_id: str) -> list[KeyRecord]:
        """Delete the keys named ``name_or_id`` (or with that id); a running server refuses
        them from its next request on (the file is reloaded when it changes)."""
        records = dict(self._load())
        gone = [r for r in records.values() if name_or_id in (r.name, r.id)]
        if not gone:
            known = ", ".join(sorted(f"{r.name} ({r.id})" for r in records.values())) or "none"
            raise ConfigError(
                f"No API key named or numbered '{name_or_id}' in {self.path}. Keys: {known}."
            )
        self._write({k: r for k, r in records.items() if r not in gone})
        return gone

    def _write(self, records: dict[str, KeyRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"keys": [asdict(r) for r in records.values()]}, handle, indent=1)
        os.replace(tmp, self.path)

    def verify(self, key: str) -> KeyRecord | None:
        """The record of a valid key, else None."""
        prefix, _, rest = key.partition("-")
        key_id, _, secret = rest.partition("-")
        if prefix != "ml" or not key_id or not secret:
            return None
        record = self._load().get(key_id)
        if record is None:
            return None
        return record if hmac.compare_digest(record.hash, _digest(record.salt, secret)) else None

    def names(self) -> list[str]:
        return [r.name for r in self._load().values()]

    def records(self) -> list[KeyRecord]:
        """Every key's record (name, id, salt, hash, creation time; no secret)."""
        return list(self._load().values())
