"""`Run`: read a run record, also while the run is still writing it.

Example:
    >>> import tempfile
    >>> from tripwire.record import RunRecord
    >>> from tripwire.stats import Sample
    >>> log_dir = tempfile.mkdtemp()
    >>> rec = RunRecord.create(log_dir, None, run_name="a")
    >>> for step, loss in [(10, 2.0), (20, float("inf"))]:
    ...     rec.add_sample(Sample(step=step, epoch=0, stats={"loss": {None: loss}}))
    >>> rec.close()
    >>> run = Run.latest(log_dir)
    >>> steps, values = run.series("loss")
    >>> steps.tolist(), values.tolist()
    ([10, 20], [2.0, inf])
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from tripwire.finding import Finding
from tripwire.record.schema import FILENAME, check_version
from tripwire.record.stores import PackedStore, RowStore
from tripwire.run_end import RunEnd
from tripwire.stats import Sample


class Run:
    """A run record opened for reading.

    Args:
        path: the run directory or its ``record.sqlite`` file.

    Raises:
        FileNotFoundError: no record there.
        tripwire.record.RecordError: not a run record, or one from a newer tripwire.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        path = Path(path)
        self.path = path / FILENAME if path.is_dir() else path
        if not self.path.is_file():
            raise FileNotFoundError(f"no tripwire run record at {path} (expected a run directory holding {FILENAME})")
        self.directory = self.path.parent
        self._conn = sqlite3.connect(self.path, timeout=5.0, check_same_thread=False)
        try:
            self._conn.execute("PRAGMA query_only=ON")
            #: the record's schema version (1: one row per value, before the compact record; 2: packed)
            self.schema_version = check_version(self._conn, str(self.path))
        except Exception:
            self._conn.close()
            raise
        self._store = RowStore(self._conn) if self.schema_version == 1 else PackedStore(self._conn)

    @classmethod
    def latest(cls, log_dir: str | os.PathLike) -> Run:
        """The run under ``log_dir`` written to most recently."""
        candidates = [p for p in Path(log_dir).glob(f"*/{FILENAME}")]
        if not candidates:
            raise FileNotFoundError(f"no tripwire run records under {log_dir}")

        def written(p: Path) -> float:
            wal = p.with_name(p.name + "-wal")
            return max(p.stat().st_mtime, wal.stat().st_mtime if wal.exists() else 0.0)

        return cls(max(candidates, key=written).parent)

    @property
    def name(self) -> str:
        """The run name (its directory name)."""
        return self.directory.name

    @property
    def meta(self) -> dict[str, Any]:
        """Everything in the meta table (schema_version, created_at, framework, config, ...)."""
        return {k: json.loads(v) for k, v in self._conn.execute("SELECT key, value FROM meta ORDER BY key")}

    @property
    def end(self) -> RunEnd:
        """How the run ended; ``in_progress`` while it is still being written, ``unknown`` for a
        record that kept no end.

        Example:
            >>> import tempfile
            >>> from tripwire.record import RunRecord
            >>> rec = RunRecord.create(tempfile.mkdtemp(), None, run_name="a")
            >>> rec.add_sample(Sample(step=30, epoch=0, stats={"loss": {None: 2.0}}))
            >>> rec.flush()
            True
            >>> Run(rec.path).end.describe()
            'in progress, last sample at step 30'
            >>> rec.close(end=RunEnd("finished", step=30))
            >>> Run(rec.path).end.describe()
            'finished; last sample at step 30'
        """
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'end'").fetchone()
        last = self.last_step()
        return RunEnd.from_meta(json.loads(row[0]), last) if row else RunEnd.from_meta(last_step=last)

    def last_step(self) -> int | None:
        """The latest step anything was recorded at, or None."""
        return self._store.last_step()

    @property
    def config(self) -> dict[str, Any]:
        """The run's configuration, with secrets redacted."""
        return self.meta.get("config", {})

    def names(self) -> list[str]:
        """Names of the recorded series, sorted."""
        return self._store.names()

    def subjects(self, name: str) -> list[str | None]:
        """Subjects of one series (``None``, the run-wide value, first)."""
        return self._store.subjects(name)

    def series(self, name: str, subject: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(steps, values)`` of one series for one subject (``None``: the run-wide value), by step.

        A step written twice (a resumed run repeating steps after its checkpoint) keeps the
        value written last.
        """
        return self._store.series(name, subject)

    def samples(self) -> Iterator[Sample]:
        """The recorded samples in the order they were written, each with every series it held.

        Rows written together for one step form one sample (a validation sample written right
        after the flush of the same step joins it). This is what ``tripwire calibrate`` replays.

        Example:
            >>> import tempfile
            >>> from tripwire.record import RunRecord
            >>> rec = RunRecord.create(tempfile.mkdtemp(), None, run_name="a")
            >>> rec.add_sample(Sample(step=0, epoch=0, stats={"loss": {None: 2.0}, "grad_norm": {"fc.weight": 0.5}}))
            >>> rec.add_sample(Sample(step=10, epoch=0, stats={"loss": {None: float("nan")}}))
            >>> rec.close()
            >>> [(s.step, s.stats) for s in Run(rec.path).samples()]
            [(0, {'loss': {None: 2.0}, 'grad_norm': {'fc.weight': 0.5}}), (10, {'loss': {None: nan}})]
        """
        for step, epoch, stats in self._store.samples():
            yield Sample(step=step, epoch=epoch, stats=stats)

    @property
    def findings(self) -> list[Finding]:
        """Every finding, in the order it was recorded.

        A finding recorded again for the same rule, step and subject (a resumed run repeating
        the steps after its checkpoint) is listed once.
        """
        rows = self._conn.execute("SELECT json FROM findings ORDER BY rowid")
        return _once([Finding.from_dict(json.loads(r[0])) for r in rows])

    @property
    def repeats(self) -> list[Finding]:
        """Findings that fired again before their rule re-armed them (``rearm_after``), in the order
        they were recorded: every occurrence, though none was alerted or acted on. Empty for a
        record written before tripwire kept them."""
        if not self._conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'repeats'").fetchone():
            return []
        rows = self._conn.execute("SELECT json FROM repeats ORDER BY rowid")
        return _once([Finding.from_dict(json.loads(r[0])) for r in rows])

    def close(self) -> None:
        """Release the file."""
        self._conn.close()

    def __del__(self) -> None:
        conn = getattr(self, "_conn", None)
        if conn is not None:
            conn.close()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Run({str(self.directory)!r})"


def _once(found: list[Finding]) -> list[Finding]:
    """``found`` without a finding recorded again for the same rule, kind, step and subject (a
    resumed run repeating the steps after its checkpoint). The kind tells a remediation
    (``reduce_lr``, ``rollback``) from the finding that called for it, which it shares the rest with."""
    seen: set[tuple[str, str, int, str | None]] = set()
    out = []
    for f in found:
        key = (f.rule, f.kind, f.step, f.subject)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out
