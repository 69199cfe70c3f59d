"""`RunRecord`: writes a run's statistics and findings to SQLite without slowing training.

The training thread only puts a reference to each sample on a queue; a daemon writer thread
encodes it (one packed row per sample, see :mod:`tripwire.record.schema`) and inserts the rows in
batches (one transaction per batch, every ``flush_s`` seconds or ``batch_rows`` queued items). A
disk that fails (directory removed, disk full, file locked) costs the values of that batch and one
logged error; nothing is ever raised into training.

Example:
    >>> import tempfile
    >>> from tripwire.stats import Sample
    >>> from tripwire.record import Run
    >>> from tripwire.run_end import RunEnd
    >>> rec = RunRecord.create(tempfile.mkdtemp(), {"interval": 5}, run_name="demo")
    >>> rec.add_sample(Sample(step=5, epoch=0, stats={"loss": {None: 0.7}}))
    >>> rec.close(end=RunEnd("finished", step=5))
    >>> Run(rec.directory).series("loss"), Run(rec.directory).end.state
    ((array([5]), array([0.7])), 'finished')
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import secrets
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from tripwire.config import Config
from tripwire.finding import Finding
from tripwire.record.encoder import SampleEncoder
from tripwire.record.migrate import migrate
from tripwire.record.schema import (
    DDL,
    FILENAME,
    FINDING_INSERT,
    REPEAT_INSERT,
    SAMPLE_INSERT,
    SCHEMA_VERSION,
    check_version,
    redact_config,
)
from tripwire.run_end import RunEnd
from tripwire.stats import Sample

log = logging.getLogger("tripwire")

_SAMPLE, _FINDING, _META, _REPEAT = 0, 1, 2, 3
_META_UPSERT = "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)"


def default_run_name() -> str:
    """A sortable, collision-safe name: ``20240501-142233-3fa9``."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


class RunRecord:
    """The writing side of a run record. Build it with :meth:`create`.

    Attributes:
        directory: the run directory ``<log_dir>/<run_name>``.
        path: the SQLite file inside it.
        dropped: values and findings lost to a full queue or a failing disk.
        batches: transactions written so far.
    """

    def __init__(self, path: Path, *, flush_s: float = 0.5, batch_rows: int = 5000,
                 max_queued: int = 100_000) -> None:
        self.path = path
        self.directory = path.parent
        self.dropped = 0
        self.batches = 0
        self._flush_s, self._batch_rows = flush_s, batch_rows
        self._queue: queue.Queue = queue.Queue(maxsize=max_queued)
        self._closed = False
        self._failed = False  # one error logged per failure streak
        self._encoder: SampleEncoder | None = None  # the keys and layouts committed; None: read them again
        self._thread = threading.Thread(target=self._run, name=f"tripwire-record-{path.parent.name}", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    @classmethod
    def create(cls, log_dir: str | os.PathLike, config: Config | dict | None = None, *,
               run_name: str | None = None, framework: str | None = None, **options: Any) -> RunRecord:
        """Open ``<log_dir>/<run_name>/record.sqlite``, creating it or, when it exists (a resumed
        run passes the same ``run_name``), continuing it.

        Raises:
            OSError, sqlite3.Error: the directory or file cannot be created.
            tripwire.record.RecordError: the file exists but is not a record this version can extend.

        A record of an older schema is converted to the current one first
        (:mod:`tripwire.record.migrate`).
        """
        directory = Path(log_dir) / (run_name or default_run_name())
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / FILENAME
        cfg = Config.load(config)
        conn = _connect(path)
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            fresh = conn.execute("SELECT COUNT(*) FROM meta").fetchone()[0] == 0
            if not fresh and check_version(conn, str(path)) < SCHEMA_VERSION:
                migrate(conn)
            with conn:
                conn.executescript(DDL)
                meta = _meta(conn, cfg, framework, fresh, directory)
                conn.executemany(_META_UPSERT, [(k, json.dumps(v)) for k, v in meta.items()])
        finally:
            conn.close()
        return cls(path, **options)

    # ---- training thread -------------------------------------------------------------------
    def add_sample(self, sample: Sample) -> None:
        """Queue every value of ``sample`` (NaN and ±Inf included; ``None`` values are skipped).

        Only a reference crosses the queue: the rows are built on the writer thread, so a sample
        of thousands of per-feature values costs the training thread microseconds.
        """
        stats = dict(sample.stats)  # series added to the sample later are not this sample's
        n = sum(len(values) for values in stats.values())
        if n:
            self._put((_SAMPLE, [(int(sample.step), None if sample.epoch is None else int(sample.epoch), stats)]), n)

    def add_finding(self, finding: Finding, *, repeat: bool = False) -> None:
        """Queue one finding; ``repeat``: one that fired again before its rule re-armed it."""
        row = (finding.step, finding.epoch, finding.rule, finding.kind, finding.severity, finding.subject,
               finding.message, finding.to_json())
        self._put((_REPEAT if repeat else _FINDING, [row]), 1)

    def _put(self, item: tuple[int, list[tuple]], n: int) -> None:
        if self._closed:
            return
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            if not self.dropped:
                log.error("tripwire: the run record cannot keep up (%s); dropping rows", self.path)
            self.dropped += n

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything queued so far is written (or dropped); False on timeout."""
        if self._closed or not self._thread.is_alive():
            return not self._thread.is_alive()
        done = threading.Event()
        try:
            self._queue.put(done, timeout=timeout_s)
        except queue.Full:
            return False
        return done.wait(timeout_s)

    def close(self, timeout_s: float = 10.0, *, end: RunEnd | None = None) -> None:
        """Write what is queued and stop the writer, waiting at most ``timeout_s``; idempotent.

        Args:
            end: how the run ended, kept in the ``end`` meta entry (None: the record keeps
                saying the run is in progress, as when the process dies).
        """
        if self._closed:
            return
        if end is not None:
            try:
                self._queue.put((_META, [("end", json.dumps(end.to_meta()))]), timeout=timeout_s)
            except queue.Full:
                log.error("tripwire: the run record %s is too far behind to record how the run ended", self.path)
        self._closed = True
        atexit.unregister(self.close)
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            pass
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.error("tripwire: the run record %s did not finish writing within %.0f s", self.path, timeout_s)
        if self.dropped:
            log.warning("tripwire: %d rows were not recorded in %s", self.dropped, self.path)

    # ---- writer thread ---------------------------------------------------------------------
    def _run(self) -> None:
        conn = None
        pending: dict[int, list[tuple]] = {_SAMPLE: [], _FINDING: [], _META: [], _REPEAT: []}
        waiters: list[threading.Event] = []
        deadline = time.monotonic() + self._flush_s
        stopping = False
        while not stopping:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                item = ()
            if item is None:
                stopping = True
            elif isinstance(item, threading.Event):
                waiters.append(item)
            elif item:
                pending[item[0]].extend(item[1])
            size = sum(map(len, pending.values()))
            if stopping or waiters or size >= self._batch_rows or time.monotonic() >= deadline:
                if size:
                    conn = self._write(conn, pending)
                pending = {_SAMPLE: [], _FINDING: [], _META: [], _REPEAT: []}
                for event in waiters:
                    event.set()
                waiters = []
                deadline = time.monotonic() + self._flush_s
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error:
                pass

    def _write(self, conn: sqlite3.Connection | None, pending: dict[int, list[tuple]]) -> sqlite3.Connection | None:
        """Insert one batch in one transaction; on failure drop it and log (once per failure streak)."""
        try:
            if not self.path.exists():  # an unlinked file would swallow the rows silently
                raise FileNotFoundError(f"{self.path} was removed")
            if conn is None:
                conn = _connect(self.path)
            with conn:
                if self._encoder is None:
                    self._encoder = SampleEncoder.load(conn)
                rows = (self._encoder.row(conn, *sample) for sample in pending[_SAMPLE])
                conn.executemany(SAMPLE_INSERT, [r for r in rows if r is not None])
                conn.executemany(FINDING_INSERT, pending[_FINDING])
                conn.executemany(REPEAT_INSERT, pending[_REPEAT])
                conn.executemany(_META_UPSERT, pending[_META])
            self.batches += 1
            if self._failed:
                log.warning("tripwire: the run record %s is writable again", self.path)
            self._failed = False
        except Exception as exc:  # noqa: BLE001 - the record must never break training
            self._encoder = None  # ids handed out in the rolled-back transaction do not exist
            self.dropped += sum(len(values) for _, _, stats in pending[_SAMPLE] for values in stats.values())
            self.dropped += len(pending[_FINDING]) + len(pending[_REPEAT]) + len(pending[_META])
            if not self._failed:
                log.error("tripwire: cannot write the run record %s (%s: %s); dropping its rows until it "
                          "works again", self.path, type(exc).__name__, exc)
            self._failed = True
            if conn is not None:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            conn = None
        return conn


def _meta(conn: sqlite3.Connection, cfg: Config, framework: str | None, fresh: bool,
          directory: Path) -> dict[str, Any]:
    """Meta rows to write: everything for a new record; config, version and the resume time otherwise.
    Either way the run is in progress again (``end`` null) until it closes."""
    from tripwire import __version__

    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    meta: dict[str, Any] = {"config": redact_config(cfg.model_dump(mode="json")), "tripwire_version": __version__,
                            "end": None}
    if framework is not None or fresh:
        meta["framework"] = framework
    if fresh:
        meta.update(schema_version=SCHEMA_VERSION, created_at=now, run_name=directory.name, resumed_at=[])
    else:
        row = conn.execute("SELECT value FROM meta WHERE key = 'resumed_at'").fetchone()
        meta["resumed_at"] = [*(json.loads(row[0]) if row else []), now]
    return meta


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=5.0, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA cache_size=-512")  # KiB: the writer only appends; SQLite's 2 MiB default is not needed
    return conn
