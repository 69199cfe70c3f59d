"""The run record's on-disk layout: tables, schema version, and what may be stored from a config.

One SQLite file per run, ``<log_dir>/<run_name>/record.sqlite`` (schema 2):

- ``meta(key, value)``: ``schema_version``, ``created_at``, ``run_name``, ``framework``,
  ``tripwire_version``, ``config`` (redacted), ``resumed_at`` (list of times the run continued),
  ``end`` (how the run ended, :meth:`tripwire.run_end.RunEnd.to_meta`; null while the run is
  being written; absent in records written before tripwire kept it); every value is JSON text.
- ``keys(id, name, subject)``: the dictionary of series: one row per ``(name, subject)`` pair.
- ``layouts(id, ids)``: the key ids of a sample, packed (:mod:`tripwire.record.packing`); samples
  with the same series share one layout.
- ``samples(step, epoch, layout, vals)``: one row per sample, its values packed in the layout's
  order as float64 (NaN and ±Inf as they are; a missing value is simply not in the layout). A
  value costs 8 bytes and its share of the row.
- ``findings(step, epoch, rule, kind, severity, subject, message, json)``: ``json`` is
  :meth:`tripwire.Finding.to_json`, the lossless form.
- ``repeats``, the same columns: a finding that fired again before its rule re-armed it
  (``rearm_after``), kept so that every occurrence is on record though it was not acted on.
  Absent in records written before tripwire kept repeats; readers treat that as none.

Schema 1 (tripwire before the compact record) stored one row per value in ``series(step, epoch,
name, subject, value, is_nan)``, about 100 bytes a value. :class:`tripwire.Run` reads it as it
is; a run that continues such a record converts it to schema 2 first
(:mod:`tripwire.record.migrate`).

Example:
    >>> cfg = {"actions": {"webhook": {"url": "https://hooks.example/T0/SECRET", "headers": {"X": "k"}}}}
    >>> redact_config(cfg)["actions"]["webhook"]
    {'url': '<redacted>', 'headers': {'X': '<redacted>'}}
"""

from __future__ import annotations

import copy
import sqlite3
from typing import Any

SCHEMA_VERSION = 2
READABLE = (1, 2)  # schema versions Run reads
FILENAME = "record.sqlite"
REDACTED = "<redacted>"

DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS keys (id INTEGER PRIMARY KEY, name TEXT NOT NULL, subject TEXT);
CREATE TABLE IF NOT EXISTS layouts (id INTEGER PRIMARY KEY, ids BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS samples (step INTEGER NOT NULL, epoch INTEGER, layout INTEGER NOT NULL, vals BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS samples_step ON samples (step);
CREATE TABLE IF NOT EXISTS findings (
    step INTEGER NOT NULL, epoch INTEGER, rule TEXT NOT NULL, kind TEXT NOT NULL, severity TEXT NOT NULL,
    subject TEXT, message TEXT NOT NULL, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS repeats (
    step INTEGER NOT NULL, epoch INTEGER, rule TEXT NOT NULL, kind TEXT NOT NULL, severity TEXT NOT NULL,
    subject TEXT, message TEXT NOT NULL, json TEXT NOT NULL);
"""

SAMPLE_INSERT = "INSERT INTO samples (step, epoch, layout, vals) VALUES (?, ?, ?, ?)"
FINDING_INSERT = ("INSERT INTO findings (step, epoch, rule, kind, severity, subject, message, json) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
REPEAT_INSERT = FINDING_INSERT.replace("INTO findings", "INTO repeats")


class RecordError(RuntimeError):
    """A file that is not a run record, or one written by a newer tripwire."""


def check_version(conn: sqlite3.Connection, where: str) -> int:
    """Schema version of an open record; raises :class:`RecordError` when it cannot be used."""
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.DatabaseError as exc:
        raise RecordError(f"{where} is not a tripwire run record ({exc})") from None
    if row is None:
        raise RecordError(f"{where} is not a tripwire run record (no schema_version in meta)")
    version = int(row[0])
    if version > SCHEMA_VERSION:
        raise RecordError(f"{where} has record schema {version}, newer than this tripwire understands "
                          f"({SCHEMA_VERSION}); upgrade tripwire to read it")
    return version


def redact_config(data: dict[str, Any]) -> dict[str, Any]:
    """Copy of a dumped config without secrets: the webhook URL (tokens live in it), header
    values, and every e-mail setting except the recipients and the SMTP host."""
    out = copy.deepcopy(data)
    actions = out.get("actions") or {}
    webhook = actions.get("webhook")
    if isinstance(webhook, dict):
        if webhook.get("url") is not None:
            webhook["url"] = REDACTED
        if isinstance(webhook.get("headers"), dict):
            webhook["headers"] = {k: REDACTED for k in webhook["headers"]}
    email = actions.get("email")
    if isinstance(email, dict):
        for key in email:
            if key == "smtp" and isinstance(email[key], str):
                email[key] = _smtp_host(email[key])
            elif key != "to":
                email[key] = REDACTED
    return out


def _smtp_host(smtp: str) -> str:
    """'user:pw@host:25' -> 'host' (the port and any credentials are dropped)."""
    host = smtp.rpartition("@")[2]
    if host.startswith("["):  # [ipv6]:port
        return host.partition("]")[0] + "]"
    return host.partition(":")[0]
