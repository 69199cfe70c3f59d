"""How :class:`tripwire.Run` reads the values of each schema: `PackedStore` (schema 2, one packed
row per sample) and `RowStore` (schema 1, one row per value).

Both answer the same questions: the series names, the subjects of one, one series by step, the
samples in the order written, the last step. `PackedStore` decodes the samples once, a matrix per
layout (a row per sample, a column per series), so a series is a column of each layout that holds
it; while the run is still being written it reads only the rows added since. A report that asks
for hundreds of series reads the file once.

Example:
    >>> import sqlite3
    >>> from tripwire.record.encoder import SampleEncoder
    >>> from tripwire.record.schema import DDL, SAMPLE_INSERT
    >>> conn = sqlite3.connect(":memory:")
    >>> conn.executescript(DDL) and None
    >>> enc = SampleEncoder.load(conn)
    >>> for step, g in [(0, 2.0), (10, 1.0), (10, 0.5)]:  # step 10 written again: the later value wins
    ...     conn.execute(SAMPLE_INSERT, enc.row(conn, step, 0, {"grad_norm": {"fc": g}})) and None
    >>> store = PackedStore(conn)
    >>> store.names(), store.series("grad_norm", "fc"), store.last_step()
    (['grad_norm'], (array([ 0, 10]), array([2. , 0.5])), 10)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import numpy as np

from tripwire.record.migrate import v1_samples
from tripwire.record.packing import unpack_ids, unpack_values

Stats = dict[str, dict[str | None, float]]


def _by_subject(subjects: Iterator[str | None]) -> list[str | None]:
    """``None`` (the run-wide value) first, then the subjects sorted."""
    return sorted(set(subjects), key=lambda s: (s is not None, s or ""))


def _last_per_step(steps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted by step; of a step written twice (a resumed run repeating steps) the later value."""
    order = np.argsort(steps, kind="stable")
    steps, values = steps[order], values[order]
    if len(steps) > 1:
        last = np.append(steps[1:] != steps[:-1], True)
        steps, values = steps[last], values[last]
    return steps, values


class _Block:
    """The samples of one layout: write order (rowids), steps, and values (a row per sample)."""

    def __init__(self, width: int) -> None:
        self.rowids = np.zeros(0, dtype=np.int64)
        self.steps = np.zeros(0, dtype=np.int64)
        self.values = np.zeros((0, width))

    def extend(self, rowids: list[int], steps: list[int], blobs: list[bytes]) -> None:
        values = unpack_values(b"".join(blobs)).reshape(len(blobs), self.values.shape[1])
        self.rowids = np.concatenate([self.rowids, np.asarray(rowids, dtype=np.int64)])
        self.steps = np.concatenate([self.steps, np.asarray(steps, dtype=np.int64)])
        self.values = np.concatenate([self.values, values]) if len(self.values) else values


class PackedStore:
    """Schema 2: ``keys``, ``layouts`` and ``samples`` (see :mod:`tripwire.record.schema`)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._read_upto = 0  # rowid of the last sample decoded
        self._layouts: dict[int, np.ndarray] = {}
        self._blocks: dict[int, _Block] = {}
        self._columns: dict[int, list[tuple[int, int]]] = {}  # key id -> (layout, column) of each layout holding it

    def names(self) -> list[str]:
        return [r[0] for r in self._conn.execute("SELECT DISTINCT name FROM keys ORDER BY name")]

    def subjects(self, name: str) -> list[str | None]:
        return _by_subject(r[0] for r in self._conn.execute("SELECT subject FROM keys WHERE name = ?", (name,)))

    def last_step(self) -> int | None:
        return self._conn.execute("SELECT MAX(step) FROM samples").fetchone()[0]

    def series(self, name: str, subject: str | None) -> tuple[np.ndarray, np.ndarray]:
        row = self._conn.execute("SELECT id FROM keys WHERE name = ? AND subject IS ?", (name, subject)).fetchone()
        self._read_new()
        held = self._columns.get(row[0], []) if row is not None else []
        if not held:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        blocks = [(self._blocks[layout], column) for layout, column in held]
        rowids = np.concatenate([b.rowids for b, _ in blocks])
        steps = np.concatenate([b.steps for b, _ in blocks])
        values = np.concatenate([b.values[:, column] for b, column in blocks])
        if len(blocks) > 1:  # back into the order written
            order = np.argsort(rowids, kind="stable")
            steps, values = steps[order], values[order]
        return _last_per_step(steps, values)

    def samples(self) -> Iterator[tuple[int, int | None, Stats]]:
        names = {i: (n, s) for i, n, s in self._conn.execute("SELECT id, name, subject FROM keys")}
        named: set[int] = set()  # layouts whose keys are all in names
        current: tuple[int, int | None, Stats] | None = None
        for step, epoch, layout, blob in self._conn.execute(
                "SELECT step, epoch, layout, vals FROM samples ORDER BY rowid"):
            if current is None or step != current[0]:  # a validation written after the flush of its step joins it
                if current is not None:
                    yield current
                current = (step, epoch, {})
            stats = current[2]
            ids = self._layout(layout).tolist()
            if layout not in named:
                if not names.keys() >= set(ids):  # keys a live run added since this read began
                    names = {i: (n, s) for i, n, s in self._conn.execute("SELECT id, name, subject FROM keys")}
                named.add(layout)
            for kid, value in zip(ids, unpack_values(blob).tolist()):
                name, subject = names[kid]
                stats.setdefault(name, {})[subject] = value
        if current is not None:
            yield current

    def _layout(self, layout: int) -> np.ndarray:
        ids = self._layouts.get(layout)
        if ids is None:
            for i, blob in self._conn.execute("SELECT id, ids FROM layouts WHERE id >= ?", (layout,)):
                self._layouts[i] = unpack_ids(blob)
            ids = self._layouts[layout]
        return ids

    def _read_new(self) -> None:
        """Decode the samples written since the last call into the blocks of their layouts."""
        rows = self._conn.execute("SELECT rowid, step, layout, vals FROM samples WHERE rowid > ? ORDER BY rowid",
                                  (self._read_upto,)).fetchall()
        if not rows:
            return
        self._read_upto = rows[-1][0]
        by_layout: dict[int, tuple[list[int], list[int], list[bytes]]] = {}
        for rowid, step, layout, blob in rows:
            part = by_layout.setdefault(layout, ([], [], []))
            part[0].append(rowid)
            part[1].append(step)
            part[2].append(blob)
        for layout, (rowids, steps, blobs) in by_layout.items():
            block = self._blocks.get(layout)
            if block is None:
                ids = self._layout(layout)
                block = self._blocks[layout] = _Block(len(ids))
                for column, kid in enumerate(ids.tolist()):
                    self._columns.setdefault(kid, []).append((layout, column))
            block.extend(rowids, steps, blobs)


class RowStore:
    """Schema 1: ``series(step, epoch, name, subject, value, is_nan)``, one row per value."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def names(self) -> list[str]:
        return [r[0] for r in self._conn.execute("SELECT DISTINCT name FROM series ORDER BY name")]

    def subjects(self, name: str) -> list[str | None]:
        return _by_subject(r[0] for r in self._conn.execute("SELECT DISTINCT subject FROM series WHERE name = ?",
                                                            (name,)))

    def last_step(self) -> int | None:
        return self._conn.execute("SELECT MAX(step) FROM series").fetchone()[0]

    def series(self, name: str, subject: str | None) -> tuple[np.ndarray, np.ndarray]:
        rows = self._conn.execute(
            "SELECT step, CASE WHEN is_nan THEN NULL ELSE value END FROM series "
            "WHERE name = ? AND subject IS ? ORDER BY rowid", (name, subject)).fetchall()
        steps = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        values = np.fromiter((np.nan if r[1] is None else r[1] for r in rows), dtype=np.float64, count=len(rows))
        return _last_per_step(steps, values)

    def samples(self) -> Iterator[tuple[int, int | None, Stats]]:
        return v1_samples(self._conn)
