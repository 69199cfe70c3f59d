"""The run record: lossless round trips, batched off-thread writes, resume, redaction, failures."""

from __future__ import annotations

import json
import logging
import math
import shutil
import sqlite3
import time
from contextlib import closing

import numpy as np
import pytest

from tripwire import Config
from tripwire.finding import Finding
from tripwire.record import SCHEMA_VERSION, RecordError, Run, RunRecord
from tripwire.stats import Sample

NAN, INF = float("nan"), float("inf")


def _finding(step: int, subject: str | None, value: float | None, **kw) -> Finding:
    base = dict(rule="nonfinite", kind="nonfinite", step=step, epoch=0, severity="error", subject=subject,
                value=value, threshold=0.0, message=f"NaN/Inf in the {subject} at step {step}",
                suggestion="lower the learning rate", evidence={"count": 3, "worst": INF})
    return Finding(**{**base, **kw})


def test_round_trip_keeps_nonfinite_values_subjects_and_findings(tmp_path):
    rec = RunRecord.create(tmp_path, {"rules": {"nonfinite": {}}}, run_name="r", framework="torch")
    rec.add_sample(Sample(step=10, epoch=0, stats={"loss": {None: 0.5},
                                                   "grad_norm": {"fc1.weight": 1.5, "fc2.weight": NAN}}))
    rec.add_sample(Sample(step=20, epoch=None, stats={"loss": {None: INF},
                                                      "grad_norm": {"fc1.weight": -INF, "fc2.weight": 2.0}}))
    rec.add_sample(Sample(step=30, epoch=1, stats={"loss": {None: NAN}}))
    found = [_finding(20, "gradients", 1.0), _finding(30, None, NAN, epoch=None, evidence={})]
    for f in found:
        rec.add_finding(f)
    rec.close()

    run = Run(tmp_path / "r")
    assert run.names() == ["grad_norm", "loss"]
    assert run.subjects("grad_norm") == ["fc1.weight", "fc2.weight"]
    assert run.subjects("loss") == [None]
    steps, loss = run.series("loss")
    assert steps.dtype.kind == "i" and steps.tolist() == [10, 20, 30]
    assert loss[0] == 0.5 and loss[1] == INF and math.isnan(loss[2])
    steps, g1 = run.series("grad_norm", "fc1.weight")
    assert steps.tolist() == [10, 20] and g1.tolist() == [1.5, -INF]
    _, g2 = run.series("grad_norm", "fc2.weight")
    assert math.isnan(g2[0]) and g2[1] == 2.0
    assert run.series("grad_norm")[0].size == 0  # no run-wide value for a per-parameter series
    assert run.series("absent")[0].size == 0

    back = run.findings
    assert back[0] == Finding.from_dict(found[0].to_dict())  # as lossless as Finding's own JSON form
    assert back[0].value == 1.0 and back[0].message == found[0].message
    assert back[1].subject is None and back[1].epoch is None and math.isnan(back[1].value)
    assert back[0].evidence == {"count": 3, "worst": "inf"}
    assert run.meta["framework"] == "torch" and run.meta["schema_version"] == SCHEMA_VERSION
    assert run.meta["run_name"] == "r"
    assert run.config["rules"]["nonfinite"]["type"] == "nonfinite"


def test_nan_is_stored_and_missing_is_not(tmp_path):
    rec = RunRecord.create(tmp_path, None, run_name="r")
    rec.add_sample(Sample(step=1, stats={"loss": {None: NAN, "skipped": None}}))
    rec.close()
    run = Run(tmp_path / "r")
    assert run.subjects("loss") == [None] and math.isnan(run.series("loss")[1][0])
    with closing(sqlite3.connect(tmp_path / "r" / "record.sqlite")) as conn:
        assert conn.execute("SELECT name, subject FROM keys").fetchall() == [("loss", None)]  # None is not stored


def test_a_thousand_fast_samples_are_all_written_in_batches(tmp_path):
    rec = RunRecord.create(tmp_path, None, run_name="fast")
    layers = [f"layer{i}.weight" for i in range(20)]
    start = time.perf_counter()
    for step in range(1000):
        rec.add_sample(Sample(step=step, epoch=step // 100, stats={
            "loss": {None: 1.0 / (step + 1)}, "grad_norm": {name: float(step) for name in layers}}))
    enqueue_s = time.perf_counter() - start
    rec.close()
    run = Run(rec.directory)
    steps, loss = run.series("loss")
    assert steps.tolist() == list(range(1000))
    np.testing.assert_allclose(loss, 1.0 / (np.arange(1000) + 1))
    assert run.series("grad_norm", "layer19.weight")[1][-1] == 999.0
    with closing(sqlite3.connect(rec.path)) as conn:
        assert conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0] == 1000  # one row per sample
        assert conn.execute("SELECT COUNT(*), SUM(LENGTH(vals)) FROM samples").fetchone()[1] == 1000 * 21 * 8
    assert rec.dropped == 0
    assert rec.batches <= 20, f"{rec.batches} transactions for 1000 samples: rows are not batched"
    # the training thread only queues a reference to the sample; well under 1 ms per sample
    assert enqueue_s / 1000 < 1e-3, f"{enqueue_s / 1000 * 1e6:.0f} us per add_sample"


def test_resumed_run_appends_and_later_values_win(tmp_path):
    first = RunRecord.create(tmp_path, {"interval": 5}, run_name="job", framework="torch")
    for step in (5, 10, 15):
        first.add_sample(Sample(step=step, epoch=0, stats={"loss": {None: float(step)}}))
    first.add_finding(_finding(15, "loss", 1.0))
    first.close()
    created = Run(first.directory).meta["created_at"]

    # resumed from a checkpoint at step 10: step 15 is computed again
    second = RunRecord.create(tmp_path, {"interval": 5}, run_name="job")
    assert second.path == first.path
    for step in (15, 20):
        second.add_sample(Sample(step=step, epoch=1, stats={"loss": {None: -float(step)}}))
    second.add_finding(_finding(20, "weights", 1.0))
    second.close()

    run = Run(tmp_path / "job")
    steps, loss = run.series("loss")
    assert steps.tolist() == [5, 10, 15, 20]
    assert loss.tolist() == [5.0, 10.0, -15.0, -20.0]
    assert [f.subject for f in run.findings] == ["loss", "weights"]
    assert run.meta["created_at"] == created and len(run.meta["resumed_at"]) == 1
    assert run.meta["framework"] == "torch"  # kept when the resumed run does not say


def test_default_run_names_are_distinct(tmp_path):
    a = RunRecord.create(tmp_path, None)
    b = RunRecord.create(tmp_path, None)
    a.close(), b.close()
    assert a.directory != b.directory and a.directory.parent == tmp_path
    assert Run.latest(tmp_path).directory in (a.directory, b.directory)


def test_latest_is_the_run_written_last(tmp_path):
    for name in ("old", "new"):
        rec = RunRecord.create(tmp_path, None, run_name=name)
        rec.add_sample(Sample(step=1, stats={"loss": {None: 1.0}}))
        rec.close()
        time.sleep(0.02)
    assert Run.latest(tmp_path).name == "new"
    with pytest.raises(FileNotFoundError, match="no tripwire run records"):
        Run.latest(tmp_path / "old")


def test_secrets_never_reach_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HOOK", "https://hooks.slack.com/services/T000/B000/XOXB-SECRET-TOKEN-123")
    cfg = Config.load({"actions": {
        "webhook": {"url": "${HOOK}", "headers": {"Authorization": "Bearer HEADER-SECRET-456"}},
        "email": {"smtp": "alice:SMTP-PASSWORD-789@mail.example.com:587", "to": ["oncall@example.com"],
                  "sender": "bot@example.com", "username_env": "SMTP_USER_VAR"}}})
    rec = RunRecord.create(tmp_path, cfg, run_name="s")
    rec.add_sample(Sample(step=1, stats={"loss": {None: 1.0}}))
    assert rec.flush()
    secrets = [b"XOXB-SECRET-TOKEN-123", b"hooks.slack.com", b"HEADER-SECRET-456", b"SMTP-PASSWORD-789",
               b"alice", b"SMTP_USER_VAR", b"bot@example.com"]

    def leaked() -> list[bytes]:
        blob = b"".join(p.read_bytes() for p in rec.directory.iterdir())
        return [s for s in secrets if s in blob]

    assert leaked() == []  # while open (the WAL file too)
    rec.close()
    assert leaked() == []
    actions = Run(rec.directory).config["actions"]
    assert actions["webhook"]["url"] == "<redacted>"
    assert actions["webhook"]["headers"] == {"Authorization": "<redacted>"}
    assert actions["email"]["to"] == ["oncall@example.com"]
    assert actions["email"]["smtp"] == "mail.example.com"
    assert actions["email"]["sender"] == "<redacted>"
    assert actions["webhook"]["timeout_s"] == 5.0  # harmless settings stay


def test_reading_while_the_writer_runs(tmp_path):
    rec = RunRecord.create(tmp_path, None, run_name="live")
    run = Run(rec.directory)
    assert run.names() == []
    rec.add_sample(Sample(step=1, stats={"loss": {None: 3.0}}))
    assert rec.flush()
    assert run.series("loss")[1].tolist() == [3.0]
    rec.add_sample(Sample(step=2, stats={"loss": {None: 2.0}}))
    rec.add_finding(_finding(2, "loss", 2.0))
    assert rec.flush()
    assert run.series("loss")[0].tolist() == [1, 2]
    assert len(run.findings) == 1
    assert (rec.directory / "record.sqlite-wal").exists()  # WAL: readers do not block the writer
    rec.close()
    run.close()


def test_removed_directory_logs_one_error_and_never_raises(tmp_path, caplog):
    rec = RunRecord.create(tmp_path, None, run_name="gone")
    rec.add_sample(Sample(step=1, stats={"loss": {None: 1.0}}))
    assert rec.flush()
    shutil.rmtree(rec.directory)
    with caplog.at_level(logging.ERROR, logger="tripwire"):
        for step in range(2, 50):
            rec.add_sample(Sample(step=step, stats={"loss": {None: 1.0}}))
            rec.add_finding(_finding(step, "loss", 1.0))
            if step % 10 == 0:
                rec.flush()  # several failing batches, still one error
        rec.close()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "cannot write the run record" in errors[0].getMessage()
    assert rec.dropped == 48 * 2
    rec.add_sample(Sample(step=99, stats={"loss": {None: 1.0}}))  # after close: ignored, no error


def test_unwritable_log_dir_raises_at_create_only(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError):
        RunRecord.create(blocker, None, run_name="x")


def test_record_from_a_newer_tripwire_is_refused(tmp_path):
    RunRecord.create(tmp_path, None, run_name="new").close()
    path = tmp_path / "new" / "record.sqlite"
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (json.dumps(SCHEMA_VERSION + 1),))
    with pytest.raises(RecordError, match="upgrade tripwire"):
        Run(path)
    with pytest.raises(RecordError, match="upgrade tripwire"):
        RunRecord.create(tmp_path, None, run_name="new")


def test_run_rejects_paths_without_a_record(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tripwire run record"):
        Run(tmp_path)
    other = tmp_path / "other.sqlite"
    with closing(sqlite3.connect(other)) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(RecordError, match="not a tripwire run record"):
        Run(other)
