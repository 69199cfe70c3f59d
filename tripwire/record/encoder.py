"""`SampleEncoder`: turns a sample's values into one ``samples`` row, adding the series keys and
layouts it has not seen to the record as it goes (schema 2, :mod:`tripwire.record.schema`).

It remembers the ids it handed out; they are only valid in the transaction that inserted them,
so whoever rolls a transaction back makes a new encoder (:meth:`SampleEncoder.load` reads the
committed ones back).

Example:
    >>> import sqlite3
    >>> from tripwire.record.schema import DDL
    >>> conn = sqlite3.connect(":memory:")
    >>> conn.executescript(DDL) and None
    >>> enc = SampleEncoder.load(conn)
    >>> a = enc.row(conn, 10, 0, {"loss": {None: 0.5}, "grad_norm": {"fc.weight": 2.0, "fc.bias": None}})
    >>> b = enc.row(conn, 20, 0, {"loss": {None: 0.4}, "grad_norm": {"fc.weight": 1.0}})
    >>> a[:3], b[:3], len(a[3])  # the same series: the same layout; two values of 8 bytes
    ((10, 0, 1), (20, 0, 1), 16)
    >>> conn.execute("SELECT id, name, subject FROM keys").fetchall()
    [(1, 'loss', None), (2, 'grad_norm', 'fc.weight')]
"""

from __future__ import annotations

import sqlite3
from typing import Any

from tripwire.record.packing import pack_ids, pack_values, unpack_ids


class SampleEncoder:
    """Series keys and layouts known to the record, and the encoding of one sample."""

    def __init__(self, keys: dict[tuple[str, str | None], int], layouts: dict[tuple[int, ...], int]) -> None:
        self.keys = keys
        self.layouts = layouts

    @classmethod
    def load(cls, conn: sqlite3.Connection) -> SampleEncoder:
        """The keys and layouts committed to the record so far."""
        keys = {(name, subject): i for i, name, subject in conn.execute("SELECT id, name, subject FROM keys")}
        layouts = {tuple(unpack_ids(blob).tolist()): i for i, blob in conn.execute("SELECT id, ids FROM layouts")}
        return cls(keys, layouts)

    def row(self, conn: sqlite3.Connection, step: int, epoch: int | None,
            stats: dict[str, dict[Any, float | None]]) -> tuple | None:
        """The ``samples`` row of one sample (None when it holds no value); new keys and layouts
        are inserted through ``conn``."""
        ids: list[int] = []
        values: list[float] = []
        keys = self.keys
        for name, by_subject in stats.items():
            for subject, value in by_subject.items():
                if value is None:
                    continue
                key = (name, None if subject is None else str(subject))
                kid = keys.get(key)
                if kid is None:
                    kid = keys[key] = conn.execute("INSERT INTO keys (name, subject) VALUES (?, ?)", key).lastrowid
                ids.append(kid)
                values.append(float(value))
        if not ids:
            return None
        shape = tuple(ids)
        layout = self.layouts.get(shape)
        if layout is None:
            layout = self.layouts[shape] = conn.execute("INSERT INTO layouts (ids) VALUES (?)",
                                                        (pack_ids(ids),)).lastrowid
        return step, epoch, layout, pack_values(values)
