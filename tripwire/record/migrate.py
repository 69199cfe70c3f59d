"""Converting a schema 1 record (one row per value in ``series``) to schema 2 (one packed row per
sample), in one transaction: the run that continues an old record does it before writing.

The samples keep their order and grouping: the rows written together for one step become one
sample, as :meth:`tripwire.Run.samples` read them. The file does not shrink by itself (SQLite
reuses the freed pages); ``sqlite3 record.sqlite VACUUM`` gives them back to the disk.

Example:
    >>> import json, sqlite3
    >>> conn = sqlite3.connect(":memory:")
    >>> conn.executescript(DDL_V1) and None
    >>> conn.execute("INSERT INTO meta VALUES ('schema_version', '1')") and None
    >>> conn.executemany("INSERT INTO series VALUES (?, ?, ?, ?, ?, ?)",
    ...                  [(10, 0, "loss", None, 0.5, 0), (10, 0, "g", "fc", None, 1), (20, 0, "loss", None, 0.4, 0)]
    ...                  ) and None
    >>> migrate(conn)
    2
    >>> conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0], conn.execute("SELECT name FROM keys").fetchall()
    (2, [('loss',), ('g',)])
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator

from tripwire.record.encoder import SampleEncoder
from tripwire.record.schema import DDL, SAMPLE_INSERT, SCHEMA_VERSION

#: the tables of schema 1, for reading and converting old records (and for tests that write one)
DDL_V1 = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS series (
    step INTEGER NOT NULL, epoch INTEGER, name TEXT NOT NULL, subject TEXT,
    value REAL, is_nan INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS series_name ON series (name, subject, step);
CREATE TABLE IF NOT EXISTS findings (
    step INTEGER NOT NULL, epoch INTEGER, rule TEXT NOT NULL, kind TEXT NOT NULL, severity TEXT NOT NULL,
    subject TEXT, message TEXT NOT NULL, json TEXT NOT NULL);
"""


def v1_samples(conn: sqlite3.Connection) -> Iterator[tuple[int, int | None, dict[str, dict[str | None, float]]]]:
    """``(step, epoch, stats)`` of a schema 1 record, in the order written; rows written together
    for one step form one sample."""
    current: tuple[int, int | None, dict] | None = None
    rows = conn.execute("SELECT step, epoch, name, subject, CASE WHEN is_nan THEN NULL ELSE value END "
                        "FROM series ORDER BY rowid")
    for step, epoch, name, subject, value in rows:
        if current is None or step != current[0]:
            if current is not None:
                yield current
            current = (step, epoch, {})
        current[2].setdefault(name, {})[subject] = float("nan") if value is None else value
    if current is not None:
        yield current


def migrate(conn: sqlite3.Connection) -> int:
    """Convert the open schema 1 record to schema 2 (one transaction, after committing what the
    connection holds); the new schema version."""
    if conn.in_transaction:
        conn.commit()
    conn.execute("BEGIN")  # the new tables, the rows and the drop commit together, or not at all
    try:
        for statement in filter(str.strip, DDL.split(";")):
            conn.execute(statement)
        encoder = SampleEncoder.load(conn)
        rows = (encoder.row(conn, step, epoch, stats) for step, epoch, stats in list(v1_samples(conn)))
        conn.executemany(SAMPLE_INSERT, [r for r in rows if r is not None])
        conn.execute("DROP INDEX IF EXISTS series_name")
        conn.execute("DROP TABLE series")
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                     (json.dumps(SCHEMA_VERSION),))
    except BaseException:
        conn.rollback()
        raise
    conn.commit()
    return SCHEMA_VERSION
