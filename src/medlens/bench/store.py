"""The run store: one SQLite file holding runs, every scored sample, and a generation cache.

Why SQLite: it is in the standard library, a single file a user can copy, and in WAL mode a
committed transaction survives ``kill -9`` (https://www.sqlite.org/wal.html). The runner commits
each batch of results as it completes, so an interrupted run loses at most the batch in flight,
and ``(run_id, sample_id)`` is the primary key of ``results``, so a resumed run can neither
lose nor duplicate a sample.

Three tables:

- ``runs``: one row per (benchmark, model) run, with the configuration and fingerprint it ran
  under (medlens version, recipe, task versions, benchmark version/revision, protocols), its
  data-quality findings, status and accumulated wall time. Runs started by one ``medlens eval``
  (a model and its baselines) share a ``group_id``.
- ``results``: per sample, the prompt text (text parts only, never images), raw output, parsed
  answer, scores under each protocol, timings, whether the generation came from the cache, and
  the sample itself without images, so that stored runs can be re-scored and reported without
  the dataset.
- ``generations``: request key → generation JSON; ``RunStore`` implements
  ``medlens.pipeline.GenerationCache`` over it, so identical requests are served once.
- ``thumbnails`` and ``result_views``: a small JPEG (≤ 128 px) of each image the model
  received for a sample, after de-identification and any sanity/shift treatment, keyed by its
  digest so that the images many questions share are kept once; reports show them beside the
  answers. Runs with de-identification off keep none. Both tables were added without a schema
  change: a store made before them opens as before, its runs with no thumbnails.

>>> store = RunStore(":memory:")
>>> run = store.create_run(benchmark="vqa-rad", split="test", model="prior", backend="prior",
...                        protocols=["exact"], config={})
>>> store.get_run(run.id).status
'running'
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medlens.bench.protocols import SampleScore
from medlens.bench.samples import QualityIssue, Sample
from medlens.errors import DataError, UnknownNameError
from medlens.types import Generation, Timings, TokenLogprob

if TYPE_CHECKING:
    from PIL import Image

    from medlens.pipeline import Result

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    group_id TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    benchmark TEXT NOT NULL,
    split TEXT NOT NULL,
    model TEXT NOT NULL,
    backend TEXT NOT NULL,
    role TEXT NOT NULL,
    protocols TEXT NOT NULL,
    config TEXT NOT NULL,
    quality TEXT NOT NULL DEFAULT '[]',
    status TEXT NOT NULL,
    n_planned INTEGER,
    elapsed_s REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS runs_group ON runs (group_id);
CREATE TABLE IF NOT EXISTS results (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    sample_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    request_key TEXT NOT NULL,
    sample TEXT NOT NULL,
    prompt TEXT NOT NULL,
    raw TEXT NOT NULL,
    answer TEXT NOT NULL,
    scores TEXT NOT NULL,
    timings TEXT NOT NULL,
    cached INTEGER NOT NULL,
    error TEXT,
    created REAL NOT NULL,
    PRIMARY KEY (run_id, sample_id)
);
CREATE TABLE IF NOT EXISTS thumbnails (
    digest TEXT PRIMARY KEY,
    mime TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS result_views (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    sample_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    label TEXT NOT NULL,
    digest TEXT NOT NULL REFERENCES thumbnails (digest),
    PRIMARY KEY (run_id, sample_id, idx)
);
CREATE TABLE IF NOT EXISTS generations (
    key TEXT PRIMARY KEY,
    generation TEXT NOT NULL,
    created REAL NOT NULL
);
"""


# --------------------------------------------------------------------------------------------
# JSON forms of the types the store keeps
# --------------------------------------------------------------------------------------------


def generation_to_json(generation: Generation) -> dict[str, Any]:
    """A lossless JSON form of a ``Generation`` (tuples become lists)."""
    data = asdict(generation)
    data["candidate_logprobs"] = dict(generation.candidate_logprobs)
    return data


def generation_from_json(data: Mapping[str, Any]) -> Generation:
    """Inverse of ``generation_to_json``."""
    tokens = tuple(
        TokenLogprob(
            token=t["token"],
            logprob=float(t["logprob"]),
            top=tuple((str(a), float(b)) for a, b in t.get("top", ())),
        )
        for t in data.get("tokens", ())
    )
    return Generation(
        request_id=data["request_id"],
        text=data["text"],
        model=data["model"],
        backend=data["backend"],
        tokens=tokens,
        candidate_logprobs={
            str(k): float(v) for k, v in data.get("candidate_logprobs", {}).items()
        },
        samples=tuple(data.get("samples", ())),
        finish_reason=data.get("finish_reason", "stop"),
        timings=Timings(**data.get("timings", {})),
        error=data.get("error"),
    )


def sample_to_json(sample: Sample) -> dict[str, Any]:
    """A sample without its images: enough to score and group it again."""
    return {
        "id": sample.id,
        "benchmark": sample.benchmark,
        "split": sample.split,
        "question": sample.question,
        "answers": list(sample.answers),
        "kind": sample.kind,
        "candidates": list(sample.candidates),
        "metadata": json.loads(json.dumps(dict(sample.metadata), default=str)),
    }


def sample_from_json(data: Mapping[str, Any]) -> Sample:
    """Inverse of ``sample_to_json``; ``images`` is empty (scorers never read pixels)."""
    return Sample(
        id=data["id"],
        benchmark=data["benchmark"],
        split=data["split"],
        question=data["question"],
        answers=tuple(data["answers"]),
        kind=data["kind"],
        images=(),
        candidates=tuple(data.get("candidates", ())),
        metadata=dict(data.get("metadata", {})),
    )


@dataclass(frozen=True)
class StoredAnswer:
    """A pipeline answer as a run keeps it: what every protocol scores (the raw text, the
    parsed text even when the answer abstained, whether it parsed, whether it abstained, the
    error) and the whole JSON record of the ``pipeline.Result`` (confidence, finish reason,
    timings, recipe, de-identification, ...). Built from a result or read back from the store
    (``answer_to_json`` / ``answer_from_json``), never assembled by hand."""

    raw: str
    text: str | None
    parsed: bool
    abstained: bool
    error: str | None
    record: Mapping[str, Any]
    """What the store holds: ``pipeline.Result.to_json()`` plus the parsed ``text`` (so that
    any protocol can re-score it), or the failure record of a study that did not load."""

    @classmethod
    def of(cls, result: Result) -> StoredAnswer:
        answer = result.answer
        return cls(
            answer.raw,
            answer.text,
            answer.parsed,
            answer.abstained,
            result.generation.error,
            {**result.to_json(), "text": answer.text},
        )

    @classmethod
    def failure(cls, error: str) -> StoredAnswer:
        """A sample whose study could not be loaded: it stays in the denominator."""
        return cls("", None, False, False, error, {"raw": "", "parsed": False, "error": error})

    @property
    def timings(self) -> Mapping[str, Any]:
        return dict(self.record.get("timings", {}))


def answer_to_json(answer: StoredAnswer) -> dict[str, Any]:
    return dict(answer.record)


def answer_from_json(data: Mapping[str, Any]) -> StoredAnswer:
    """Inverse of ``answer_to_json`` (records of every medlens version read alike)."""
    return StoredAnswer(
        raw=str(data.get("raw", "")),
        text=data.get("text"),
        parsed=bool(data.get("parsed", False)),
        abstained=bool(data.get("abstained", False)),
        error=data.get("error"),
        record=dict(data),
    )


def score_to_json(score: SampleScore) -> dict[str, Any]:
    return {
        "outcome": score.outcome,
        "score": float(score.score),
        "metrics": dict(score.metrics),
        "extracted": score.extracted,
    }


def score_from_json(data: Mapping[str, Any]) -> SampleScore:
    return SampleScore(
        outcome=data["outcome"],
        score=float(data["score"]),
        metrics=dict(data.get("metrics", {})),
        extracted=data.get("extracted"),
    )


def quality_to_json(issue: QualityIssue) -> dict[str, Any]:
    return {
        "kind": issue.kind,
        "count": issue.count,
        "detail": issue.detail,
        "examples": list(issue.examples),
    }


THUMBNAIL_SIDE = 128
"""Longest side of a stored thumbnail in pixels: enough to recognise the study and the view
in a report's sample table, a few KB each."""


@dataclass(frozen=True)
class Thumbnail:
    """A small JPEG of one image the model received for a sample (de-identified, treated),
    labelled by its view (``"axial 12/40"``, ``"image"``); ``digest`` names its bytes."""

    label: str
    digest: str
    width: int
    height: int
    data: bytes
    mime: str = "image/jpeg"

    @classmethod
    def of(cls, image: Image.Image, label: str, side: int = THUMBNAIL_SIDE) -> Thumbnail:
        """The image scaled to at most ``side`` pixels on its longest side (aspect kept),
        grey or RGB, JPEG quality 85: identical images give identical bytes and digests."""
        small = image.convert("L" if image.mode in ("1", "L", "LA") else "RGB")  # a copy
        small.thumbnail((side, side))
        buffer = io.BytesIO()
        small.save(buffer, format="JPEG", quality=85, optimize=True)
        data = buffer.getvalue()
        digest = hashlib.sha256(data).hexdigest()[:20]
        return cls(label, digest, small.width, small.height, data)

    def data_uri(self) -> str:
        import base64

        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunInfo:
    """One row of ``runs``."""

    id: str
    group_id: str
    created: float
    updated: float
    benchmark: str
    split: str
    model: str
    backend: str
    role: str
    """"model" for the model under test, "baseline" for prior/no-image/random beside it."""
    protocols: tuple[str, ...]
    config: Mapping[str, Any]
    quality: tuple[Mapping[str, Any], ...]
    status: str
    """"running" (also: killed while running), "complete", "interrupted" (Ctrl-C) or
    "failed"; all but "complete" continue with ``--resume``."""
    n_planned: int | None
    elapsed_s: float

    @property
    def label(self) -> str:
        """How reports name the run: the model, a probe run by its probe, or the baseline's
        name."""
        return f"{self.model} (baseline)" if self.role == "baseline" else self.model


@dataclass(frozen=True)
class StoredResult:
    """One scored sample of a run, as the store keeps it."""

    sample_id: str
    position: int
    request_key: str
    sample: Mapping[str, Any]
    prompt: str
    raw: str
    answer: Mapping[str, Any]
    """``pipeline.Result.to_json()``: parsed text, confidence, finish reason, timings, ..."""
    scores: Mapping[str, Mapping[str, Any]]
    """Protocol name → ``{"outcome", "score", "metrics", "extracted"}``."""
    timings: Mapping[str, Any]
    cached: bool
    error: str | None = None
    created: float = field(default=0.0)
    thumbnails: tuple[Thumbnail, ...] = ()
    """The images the model received, small (``Thumbnail``); kept in ``thumbnails`` /
    ``result_views``, read back with ``RunStore.thumbnails``."""


# --------------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------------


def default_store_path() -> Path:
    """``$MEDLENS_HOME/runs.sqlite`` (``~/.medlens/runs.sqlite`` by default)."""
    from medlens.config import home_dir

    return home_dir() / "runs.sqlite"


class RunStore:
    """Runs, results and cached generations in one SQLite file (see the module docstring).

    Also a ``medlens.pipeline.GenerationCache``: ``get(key)`` / ``put(key, generation)``.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        target = default_store_path() if path is None else path
        self.path = str(target)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a committed transaction survives a killed process (only a
            # power loss may roll back the last ones), at a fraction of FULL's fsync cost.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
            self._check_schema()
        except sqlite3.DatabaseError as exc:
            raise DataError(
                f"The run store {self.path} cannot be opened ({exc}). Point --store at another "
                "file, or move this one aside if it is not a medlens run store."
            ) from exc

    def _check_schema(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None:
            self._db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)",
                (str(SCHEMA_VERSION),),
            )
        elif int(row["value"]) != SCHEMA_VERSION:
            raise DataError(
                f"The run store {self.path} has schema version {row['value']}; this medlens "
                f"reads version {SCHEMA_VERSION}. Use a store made by this version (--store)."
            )

    def close(self) -> None:
        self._db.close()

    # ---------------------------------------------------------------- generation cache

    def get(self, key: str) -> Generation | None:
        row = self._db.execute(
            "SELECT generation FROM generations WHERE key = ?", (key,)
        ).fetchone()
        return None if row is None else generation_from_json(json.loads(row["generation"]))

    def put(self, key: str, generation: Generation) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO generations (key, generation, created) VALUES (?, ?, ?)",
            (key, json.dumps(generation_to_json(generation)), time.time()),
        )

    # ---------------------------------------------------------------- runs

    def create_run(
        self,
        *,
        benchmark: str,
        split: str,
        model: str,
        backend: str,
        protocols: Sequence[str],
        config: Mapping[str, Any],
        role: str = "model",
        group_id: str | None = None,
        n_planned: int | None = None,
        quality: Iterable[QualityIssue] = (),
    ) -> RunInfo:
        """Start a run (status "running") and return it."""
        run_id = uuid.uuid4().hex[:10]
        now = time.time()
        self._db.execute(
            "INSERT INTO runs (id, group_id, created, updated, benchmark, split, model, backend,"
            " role, protocols, config, quality, status, n_planned, elapsed_s)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, 0)",
            (
                run_id,
                group_id or run_id,
                now,
                now,
                benchmark,
                split,
                model,
                backend,
                role,
                json.dumps(list(protocols)),
                json.dumps(dict(config), default=str),
                json.dumps([quality_to_json(q) for q in quality]),
                n_planned,
            ),
        )
        self._claim(run_id)
        return self.get_run(run_id)

    def update_run(
        self,
        run_id: str,
        *,
        status: str | None = None,
        add_elapsed_s: float = 0.0,
        config: Mapping[str, Any] | None = None,
        protocols: Sequence[str] | None = None,
    ) -> None:
        """Change a run's status, add wall time, merge keys into its config, set protocols.
        A run that stops running is no longer this process's (see ``status_of``)."""
        run = self.get_run(run_id)
        if status is not None and status != "running":
            self._db.execute("DELETE FROM meta WHERE key = ?", (f"owner:{run.id}",))
        merged = {**run.config, **(config or {})}
        self._db.execute(
            "UPDATE runs SET status = ?, elapsed_s = elapsed_s + ?, config = ?, protocols = ?,"
            " updated = ? WHERE id = ?",
            (
                status or run.status,
                add_elapsed_s,
                json.dumps(merged, default=str),
                json.dumps(list(protocols if protocols is not None else run.protocols)),
                time.time(),
                run.id,
            ),
        )

    def get_run(self, run_id: str) -> RunInfo:
        """The run with this id, or the only one whose id starts with it."""
        rows = self._db.execute(
            "SELECT * FROM runs WHERE id = ? OR id LIKE ? ORDER BY id = ? DESC",
            (run_id, run_id.replace("%", "").replace("_", "") + "%", run_id),
        ).fetchall()
        if rows and (rows[0]["id"] == run_id or len(rows) == 1):
            return self._run(rows[0])
        recent = ", ".join(r.id for r in self.runs()[:5]) or "none"
        why = "matches several runs" if rows else "is not"
        raise UnknownNameError(
            f"Run '{run_id}' {why} in the store {self.path}. Recent runs: {recent}. "
            "List them with 'medlens report --list'."
        )

    def runs(
        self,
        *,
        benchmark: str | None = None,
        split: str | None = None,
        model: str | None = None,
        backend: str | None = None,
        group_id: str | None = None,
    ) -> list[RunInfo]:
        """Runs matching every given field, newest first."""
        clauses, values = [], []
        for column, value in (
            ("benchmark", benchmark),
            ("split", split),
            ("model", model),
            ("backend", backend),
            ("group_id", group_id),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                values.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._db.execute(
            f"SELECT * FROM runs {where} ORDER BY created DESC, rowid DESC", values
        ).fetchall()
        return [self._run(r) for r in rows]

    def group(self, run_id: str) -> list[RunInfo]:
        """The runs started together with ``run_id`` (a model and its baselines), in order."""
        run = self.get_run(run_id)
        return sorted(self.runs(group_id=run.group_id), key=lambda r: (r.created, r.id))

    @staticmethod
    def _run(row: sqlite3.Row) -> RunInfo:
        return RunInfo(
            id=row["id"],
            group_id=row["group_id"],
            created=row["created"],
            updated=row["updated"],
            benchmark=row["benchmark"],
            split=row["split"],
            model=row["model"],
            backend=row["backend"],
            role=row["role"],
            protocols=tuple(json.loads(row["protocols"])),
            config=json.loads(row["config"]),
            quality=tuple(json.loads(row["quality"])),
            status=row["status"],
            n_planned=row["n_planned"],
            elapsed_s=row["elapsed_s"],
        )

    # ---------------------------------------------------------------- results

    def add_results(self, run_id: str, results: Sequence[StoredResult]) -> None:
        """Commit ``results`` in one transaction (a batch). A sample already stored for this
        run is a programming error (the runner skips done samples) and raises."""
        if not results:
            return
        now = time.time()
        rows = [
            (
                run_id,
                r.sample_id,
                r.position,
                r.request_key,
                json.dumps(dict(r.sample)),
                r.prompt,
                r.raw,
                json.dumps(dict(r.answer), default=str),
                json.dumps({k: dict(v) for k, v in r.scores.items()}, default=str),
                json.dumps(dict(r.timings), default=str),
                int(r.cached),
                r.error,
                now,
            )
            for r in results
        ]
        try:
            with self._transaction():
                self._db.executemany(
                    "INSERT INTO results (run_id, sample_id, position, request_key, sample,"
                    " prompt, raw, answer, scores, timings, cached, error, created)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                self._add_thumbnails(run_id, results)
                self._db.execute("UPDATE runs SET updated = ? WHERE id = ?", (now, run_id))
                self._claim(run_id)
        except sqlite3.IntegrityError as exc:
            raise DataError(f"Run {run_id} already holds one of these samples ({exc}).") from exc

    def _add_thumbnails(self, run_id: str, results: Sequence[StoredResult]) -> None:
        """Each result's thumbnails, every distinct image once (inside the caller's
        transaction, so a batch's answers and images are stored together or not at all)."""
        shown = [(r.sample_id, i, t) for r in results for i, t in enumerate(r.thumbnails)]
        self._db.executemany(
            "INSERT OR IGNORE INTO thumbnails (digest, mime, width, height, data)"
            " VALUES (?, ?, ?, ?, ?)",
            [(t.digest, t.mime, t.width, t.height, t.data) for _, _, t in shown],
        )
        self._db.executemany(
            "INSERT INTO result_views (run_id, sample_id, idx, label, digest)"
            " VALUES (?, ?, ?, ?, ?)",
            [(run_id, sample_id, i, t.label, t.digest) for sample_id, i, t in shown],
        )

    def thumbnails(self, run_id: str) -> dict[str, tuple[Thumbnail, ...]]:
        """Sample id → the thumbnails of the images the model received, in request order
        (samples without any are absent)."""
        rows = self._db.execute(
            "SELECT v.sample_id, v.label, t.digest, t.mime, t.width, t.height, t.data"
            " FROM result_views v JOIN thumbnails t ON t.digest = v.digest"
            " WHERE v.run_id = ? ORDER BY v.sample_id, v.idx",
            (run_id,),
        ).fetchall()
        found: dict[str, list[Thumbnail]] = {}
        for r in rows:
            found.setdefault(r["sample_id"], []).append(
                Thumbnail(r["label"], r["digest"], r["width"], r["height"], r["data"], r["mime"])
            )
        return {sample_id: tuple(t) for sample_id, t in found.items()}

    def _claim(self, run_id: str) -> None:
        """Record this process as the one running ``run_id`` (in ``meta``, not in the run's
        configuration, so reports do not change): a run left "running" by a process that is
        gone was killed (``status_of``)."""
        owner = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "start": _start()})
        self._db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (f"owner:{run_id}", owner)
        )

    def status_of(self, run: RunInfo) -> str:
        """The run's status as a person needs it: a "running" run whose process has died on
        this machine (kill -9, out of memory, a closed terminal) is "killed"; one running on
        another machine says where."""
        if run.status != "running":
            return run.status
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (f"owner:{run.id}",))
        found = row.fetchone()
        if found is None:
            return "killed"  # a run from before owners were recorded, never finished
        owner = json.loads(found["value"])
        if owner.get("host") != socket.gethostname():
            return f"running on {owner.get('host')}"
        alive = _start(int(owner["pid"])) == owner.get("start") and _alive(int(owner["pid"]))
        return "running" if alive else "killed"

    def done_ids(self, run_id: str) -> set[str]:
        """Sample ids already stored for ``run_id`` (what a resumed run skips)."""
        rows = self._db.execute("SELECT sample_id FROM results WHERE run_id = ?", (run_id,))
        return {r["sample_id"] for r in rows}

    def count(self, run_id: str) -> int:
        row = self._db.execute("SELECT COUNT(*) AS n FROM results WHERE run_id = ?", (run_id,))
        return int(row.fetchone()["n"])

    def results(self, run_id: str) -> list[StoredResult]:
        """Every stored sample of a run, in benchmark order."""
        rows = self._db.execute(
            "SELECT * FROM results WHERE run_id = ? ORDER BY position, sample_id", (run_id,)
        ).fetchall()
        return [
            StoredResult(
                sample_id=r["sample_id"],
                position=r["position"],
                request_key=r["request_key"],
                sample=json.loads(r["sample"]),
                prompt=r["prompt"],
                raw=r["raw"],
                answer=json.loads(r["answer"]),
                scores=json.loads(r["scores"]),
                timings=json.loads(r["timings"]),
                cached=bool(r["cached"]),
                error=r["error"],
                created=r["created"],
            )
            for r in rows
        ]

    def set_scores(
        self, run_id: str, protocol: str, scores: Mapping[str, Mapping[str, Any]]
    ) -> None:
        """Store (or replace) every sample's score under ``protocol`` in one transaction:
        re-scoring stored generations needs no model."""
        current = {
            r["sample_id"]: json.loads(r["scores"])
            for r in self._db.execute(
                "SELECT sample_id, scores FROM results WHERE run_id = ?", (run_id,)
            )
        }
        with self._transaction():
            for sample_id, score in scores.items():
                merged = {**current.get(sample_id, {}), protocol: dict(score)}
                self._db.execute(
                    "UPDATE results SET scores = ? WHERE run_id = ? AND sample_id = ?",
                    (json.dumps(merged, default=str), run_id, sample_id),
                )

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """All or nothing: a batch is either fully stored or not at all."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


def _start(pid: int | None = None) -> str | None:
    """A process's start time in clock ticks since boot (``/proc/PID/stat`` field 22), so a
    reused pid is not mistaken for the run's process; None where /proc is absent."""
    try:
        stat = Path(f"/proc/{pid or os.getpid()}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]
