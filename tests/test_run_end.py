"""How a run ended: decided once by the monitor, kept in the record, read back (also from old records)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing

import pytest

from tripwire import Monitor, RuleTriggered, Sample
from tripwire.record import Run, RunRecord
from tripwire.run_end import RunEnd


def loss(step: int, nan: bool = False) -> Sample:
    return Sample(step=step, epoch=0, stats={"loss_nonfinite": {None: 1.0 if nan else 0.0}})


def monitor(tmp_path, actions=("alert", "stop"), name="run") -> Monitor:
    return Monitor({"rules": {"nonfinite": {"actions": list(actions)}}}, log_dir=tmp_path, run_name=name)


def end_of(tmp_path, name="run") -> RunEnd:
    with Run(tmp_path / name) as run:
        return run.end


def test_a_run_that_ends_normally_is_finished_at_its_last_sample(tmp_path):
    m = monitor(tmp_path)
    for step in (0, 10, 20):
        m.process(loss(step))
    m.close(print_summary=False)
    end = end_of(tmp_path)
    assert (end.state, end.step, end.rule, end.error) == ("finished", 20, None, None)
    assert end.at and end == m.end


def test_a_stop_names_the_rule_and_its_step(tmp_path, capsys):
    m = monitor(tmp_path)
    m.process(loss(0))
    m.process(loss(10, nan=True))
    m.process(loss(20))  # a sample after the stop (the framework ends after the step)
    m.close()
    assert end_of(tmp_path).describe() == "stopped by rule nonfinite at step 10"
    assert "training stopped at step 10 by nonfinite" in capsys.readouterr().out


def test_an_exception_leaving_training_is_a_crash_with_its_type(tmp_path, capsys):
    m = monitor(tmp_path)
    m.process(loss(0))
    m.process(loss(10))
    m.close(error=ValueError("bad batch"))
    end = end_of(tmp_path)
    assert (end.state, end.step, end.error) == ("crashed", 10, "ValueError")
    assert capsys.readouterr().out.startswith(
        "tripwire: no findings in 2 sampled steps; training crashed: ValueError left training; last sample at step 10")


def test_a_raise_action_is_a_stop_by_its_rule(tmp_path):
    m = monitor(tmp_path, actions=["raise"])
    with pytest.raises(RuleTriggered) as err:
        m.execute(m.process(loss(4, nan=True)), sink=None)
    m.close(error=err.value, print_summary=False)
    assert end_of(tmp_path).describe() == "stopped by rule nonfinite at step 4 (it raised RuleTriggered)"


def test_the_first_close_decides_and_a_second_changes_nothing(tmp_path):
    m = monitor(tmp_path)
    m.process(loss(0))
    m.close(error=KeyboardInterrupt(), print_summary=False)
    m.close(print_summary=False)  # Lightning: on_exception, then teardown
    assert end_of(tmp_path).error == "KeyboardInterrupt"


def test_a_run_being_written_is_in_progress_with_its_last_step(tmp_path):
    rec = RunRecord.create(tmp_path, None, run_name="run")
    rec.add_sample(loss(70))
    assert rec.flush()
    assert end_of(tmp_path).describe() == "in progress, last sample at step 70"
    rec.close(end=RunEnd("finished", step=70))
    assert end_of(tmp_path).state == "finished"


def test_a_resumed_run_is_in_progress_again_until_it_closes(tmp_path):
    m = monitor(tmp_path)
    m.process(loss(0))
    m.close(print_summary=False)
    again = RunRecord.create(tmp_path, None, run_name="run")
    assert end_of(tmp_path).state == "in_progress"
    again.close()


def test_a_record_from_before_the_end_was_kept_still_opens_and_says_unknown(tmp_path):
    m = monitor(tmp_path)
    m.process(loss(30))
    m.close(print_summary=False)
    with closing(sqlite3.connect(tmp_path / "run" / "record.sqlite")) as conn, conn:
        conn.execute("DELETE FROM meta WHERE key = 'end'")  # what an older tripwire wrote
    end = end_of(tmp_path)
    assert end.state == "unknown" and end.step == 30
    assert end.describe().startswith("end state unknown")


def test_an_end_written_by_a_newer_tripwire_in_an_unknown_state_reads_as_in_progress():
    assert RunEnd.from_meta({"state": "teleported"}, last_step=5).describe() == "in progress, last sample at step 5"


def test_a_copy_of_the_monitor_carries_its_end(tmp_path):
    import pickle

    m = monitor(tmp_path)
    m.process(loss(0))
    m.close(print_summary=False)
    assert pickle.loads(pickle.dumps(m)).end == m.end


SCRIPT = """
import sys
from tripwire import Monitor, Sample
m = Monitor({{"rules": {{"nonfinite": {{}}}}}}, log_dir=sys.argv[1], run_name="run")
m.process(Sample(step=0, stats={{"loss_nonfinite": {{None: 0.0}}}}))
m.process(Sample(step=10, stats={{"loss_nonfinite": {{None: 0.0}}}}))
{ending}
"""


@pytest.mark.parametrize(("ending", "state", "error"), [
    ("raise ValueError('a bad batch')", "crashed", "ValueError"),  # uncaught: Keras, XGBoost, HF see none
    ("sys.exit(3)", "exited", None),
    ("pass  # the loop never called close()", "exited", None),
])
def test_a_process_that_exits_with_the_run_open_records_how(tmp_path, ending, state, error):
    script = textwrap.dedent(SCRIPT.format(ending=ending))
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120,
                          check=False)
    end = end_of(tmp_path)
    assert (end.state, end.step, end.error) == (state, 10, error), done.stderr
    assert end.describe().split(";")[0] in done.stdout  # the summary says it too
