"""The compact record (schema 2) next to the records tripwire wrote before it (schema 1, one row
per value): both read the same, an old record is converted when a run continues it, and a value
costs close to its 8 bytes."""

from __future__ import annotations

import json
import math
import sqlite3
from contextlib import closing

import pytest

from tripwire.calibrate import calibrate
from tripwire.finding import Finding
from tripwire.record import SCHEMA_VERSION, Run, RunRecord
from tripwire.report import write_report
from tripwire.stats import Sample

NAN, INF = float("nan"), float("inf")

SAMPLES = [
    Sample(step=0, epoch=0, stats={"loss": {None: 2.0}, "grad_global_norm": {None: 1.5},
                                   "grad_norm": {"fc1.weight": 1.0, "fc2.weight": NAN}}),
    Sample(step=10, epoch=0, stats={"loss": {None: 1.0}, "grad_global_norm": {None: 0.9},
                                    "grad_norm": {"fc1.weight": -INF, "fc2.weight": 0.25}}),
    Sample(step=10, epoch=0, stats={"val_loss": {None: 1.25}}),  # a validation after the flush of step 10
    Sample(step=20, epoch=1, stats={"loss": {None: INF}, "grad_global_norm": {None: 40.0}}),
    Sample(step=10, epoch=0, stats={"loss": {None: 0.5}}),  # a resumed run repeating step 10
]
FINDING = Finding(rule="nonfinite", kind="nonfinite", step=20, epoch=1, severity="error", subject="loss",
                  value=1.0, threshold=0.0, message="NaN/Inf in the loss at step 20", suggestion="lower the LR")


def write_schema_1(directory) -> None:
    """A record as tripwire wrote it before the compact record: one row per value."""
    directory.mkdir(parents=True)
    with closing(sqlite3.connect(directory / "record.sqlite")) as conn, conn:
        conn.executescript("""
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE series (step INTEGER NOT NULL, epoch INTEGER, name TEXT NOT NULL, subject TEXT,
                                 value REAL, is_nan INTEGER NOT NULL DEFAULT 0);
            CREATE INDEX series_name ON series (name, subject, step);
            CREATE TABLE findings (step INTEGER NOT NULL, epoch INTEGER, rule TEXT NOT NULL, kind TEXT NOT NULL,
                                   severity TEXT NOT NULL, subject TEXT, message TEXT NOT NULL, json TEXT NOT NULL);""")
        meta = {"schema_version": 1, "created_at": "2024-05-01T14:22:33+0000", "run_name": directory.name,
                "framework": "torch", "tripwire_version": "0.9", "resumed_at": [], "end": None,
                "config": {"interval": 10, "rules": None}}
        conn.executemany("INSERT INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in meta.items()])
        for s in SAMPLES:
            conn.executemany("INSERT INTO series VALUES (?, ?, ?, ?, ?, ?)", [
                (s.step, s.epoch, name, subject, None if math.isnan(v) else v, int(math.isnan(v)))
                for name, values in s.stats.items() for subject, v in values.items()])
        conn.execute("INSERT INTO findings VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     (20, 1, "nonfinite", "nonfinite", "error", "loss", FINDING.message, FINDING.to_json()))


def write_schema_2(log_dir, name: str = "new") -> Run:
    rec = RunRecord.create(log_dir, {"interval": 10}, run_name=name, framework="torch")
    for s in SAMPLES:
        rec.add_sample(s)
    rec.add_finding(FINDING)
    rec.close()
    return Run(rec.directory)


def same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def assert_reads_alike(old: Run, new: Run) -> None:
    assert old.names() == new.names() == ["grad_global_norm", "grad_norm", "loss", "val_loss"]
    assert old.subjects("grad_norm") == new.subjects("grad_norm") == ["fc1.weight", "fc2.weight"]
    for name, subject in [("loss", None), ("grad_norm", "fc1.weight"), ("grad_norm", "fc2.weight")]:
        (s1, v1), (s2, v2) = old.series(name, subject), new.series(name, subject)
        assert s1.tolist() == s2.tolist() and all(map(same, v1.tolist(), v2.tolist()))
    assert new.series("loss")[1].tolist() == [2.0, 0.5, INF]  # the repeated step 10 keeps its later value
    a, b = list(old.samples()), list(new.samples())
    assert [(s.step, s.epoch) for s in a] == [(s.step, s.epoch) for s in b] == [(0, 0), (10, 0), (20, 1), (10, 0)]
    assert b[1].stats["val_loss"] == {None: 1.25} and math.isnan(b[0].stats["grad_norm"]["fc2.weight"])
    assert json.dumps([s.stats for s in a]) == json.dumps([s.stats for s in b])
    assert old.findings == new.findings == [FINDING] and old.last_step() == new.last_step() == 20


def test_a_schema_1_record_reads_like_a_schema_2_one(tmp_path):
    write_schema_1(tmp_path / "old")
    old, new = Run(tmp_path / "old"), write_schema_2(tmp_path)
    assert (old.schema_version, new.schema_version) == (1, SCHEMA_VERSION) == (1, 2)
    assert_reads_alike(old, new)
    assert old.repeats == [] and old.end.state == "in_progress"


def test_report_and_calibrate_read_a_schema_1_record(tmp_path):
    pytest.importorskip("plotly")  # the report's extra; the framework-free environment has none
    write_schema_1(tmp_path / "old")
    write_schema_2(tmp_path)
    text = write_report(tmp_path / "old").read_text(encoding="utf-8")
    assert '<h2>Findings (1)</h2>' in text and '<h2>Layers × steps</h2>' in text and "fc1.weight" in text
    old, new = (calibrate([tmp_path / name], ["exploding_gradient"]) for name in ("old", "new"))
    assert old == new and old  # the same margins from the same samples


def test_continuing_a_schema_1_record_converts_it_first(tmp_path):
    write_schema_1(tmp_path / "job")
    before = list(Run(tmp_path / "job").samples())
    rec = RunRecord.create(tmp_path, {"interval": 10}, run_name="job")
    rec.add_sample(Sample(step=30, epoch=1, stats={"loss": {None: 0.125}, "grad_norm": {"fc3.weight": 2.0}}))
    rec.close()
    run = Run(tmp_path / "job")
    assert run.schema_version == 2 and len(run.meta["resumed_at"]) == 1
    after = list(run.samples())
    assert json.dumps([s.stats for s in after[:-1]]) == json.dumps([s.stats for s in before])
    assert after[-1].step == 30 and run.series("loss")[1].tolist() == [2.0, 0.5, INF, 0.125]
    assert run.findings == [FINDING]
    with closing(sqlite3.connect(run.path)) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "series" not in tables and {"keys", "layouts", "samples"} <= tables


def test_a_value_costs_close_to_its_8_bytes(tmp_path):
    layers = [f"block{i}.linear.weight" for i in range(30)]
    rec = RunRecord.create(tmp_path, None, run_name="size")
    for step in range(300):
        rec.add_sample(Sample(step=step, epoch=0, stats={
            "loss": {None: 1.0 / (step + 1)}, "grad_global_norm": {None: 1.0},
            **{stat: {layer: step * 0.001 + i for i, layer in enumerate(layers)}
               for stat in ("grad_norm", "weight_norm", "update_ratio", "act_dead_frac")}}))
    rec.close()
    values = 300 * (2 + 4 * 30)
    with closing(sqlite3.connect(rec.path)) as conn:  # checkpoint the WAL into the file
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = rec.path.stat().st_size
    assert size / values <= 10, f"{size / values:.1f} bytes per value"
    assert len(list(Run(rec.directory).samples())) == 300


@pytest.mark.parametrize("version", [SCHEMA_VERSION])
def test_the_current_schema_is_what_new_records_say(tmp_path, version):
    assert write_schema_2(tmp_path).meta["schema_version"] == version


def test_a_live_reader_sees_new_series_and_layouts_as_they_are_written(tmp_path):
    rec = RunRecord.create(tmp_path, None, run_name="live")
    run = Run(rec.directory)
    rec.add_sample(Sample(step=0, stats={"loss": {None: 3.0}}))
    assert rec.flush() and run.series("loss")[1].tolist() == [3.0]
    rec.add_sample(Sample(step=10, stats={"loss": {None: 2.0}, "grad_norm": {"fc": 0.5}}))  # a second layout
    rec.add_sample(Sample(step=20, stats={"loss": {None: 1.0}}))  # the first again
    assert rec.flush()
    assert run.series("loss")[0].tolist() == [0, 10, 20] and run.series("loss")[1].tolist() == [3.0, 2.0, 1.0]
    assert run.series("grad_norm", "fc")[0].tolist() == [10] and run.names() == ["grad_norm", "loss"]
    assert [s.step for s in run.samples()] == [0, 10, 20]
    rec.close()
    run.close()
