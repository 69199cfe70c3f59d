"""The end-of-run summary: one line when quiet, a table of (rule, subject, first step, message) otherwise."""

from __future__ import annotations

from tripwire.finding import Finding
from tripwire.report import format_summary


def finding(rule="dead_relu", step=120, subject="fc1", severity="warning", message="fc1 is dead", kind=None):
    return Finding(rule=rule, kind=kind or rule, step=step, epoch=1, severity=severity, subject=subject, value=0.8,
                   threshold=0.5, message=message, suggestion="lower the LR")


def test_quiet_run_is_one_line():
    text = format_summary([], sampled_steps=250)
    assert text == "tripwire: no findings in 250 sampled steps"
    assert format_summary([], record_path="runs/r1/record.sqlite").count("\n") == 0
    assert "runs/r1/record.sqlite" in format_summary([], record_path="runs/r1/record.sqlite")


def test_table_lists_rule_subject_first_step_and_message_in_step_order():
    found = [finding(step=300, rule="overfit", subject=None, message="val loss 60% above train"),
             finding(step=120), finding(step=150, rule="vanishing_gradient", subject="fc2.weight",
                                        message="gradient norm 1e-9", severity="error")]
    lines = format_summary(found).splitlines()
    assert lines[0] == "tripwire: 3 findings (1 error, 2 warnings)"
    assert lines[1].split() == ["rule", "subject", "first", "step", "message"]
    body = [ln.split(None, 3) for ln in lines[2:5]]
    assert body == [["dead_relu", "fc1", "120", "fc1 is dead"],
                    ["vanishing_gradient", "fc2.weight", "150", "gradient norm 1e-9"],
                    ["overfit", "-", "300", "val loss 60% above train"]]
    # columns line up: every step ends at the same column
    ends = [lines[i].index(step) + len(step) for i, step in zip(range(2, 5), ("120", "150", "300"))]
    assert len(set(ends)) == 1


def test_a_rearmed_finding_is_one_row_with_its_first_step_and_count():
    text = format_summary([finding(step=500), finding(step=120), finding(step=900)])
    rows = [ln for ln in text.splitlines() if "dead_relu" in ln]
    assert len(rows) == 1 and " 120 " in rows[0] and "(fired 3 times)" in rows[0]


def test_says_where_the_record_and_report_are_and_what_stopped_training():
    stop = finding(step=120)
    text = format_summary([stop], record_path="runs/r1/record.sqlite", report_path="runs/r1/report.html",
                          stopped_by=stop)
    assert "training stopped at step 120 by dead_relu" in text.splitlines()[0]
    assert "  record: runs/r1/record.sqlite" in text and "  report: runs/r1/report.html" in text
    hint = format_summary([stop], record_path="runs/r1/record.sqlite")
    assert "tripwire report runs/r1`" in hint


def test_long_cells_are_cut_and_control_characters_cannot_reach_the_terminal():
    hostile = "layer\x1b[2J\x1b[31m" + "x" * 80
    text = format_summary([finding(subject=hostile, message="m" * 300 + "\r\nforged line")])
    assert "\x1b" not in text and "\r" not in text
    assert "\\x1b[2J" in text
    row = text.splitlines()[2]
    assert len(row) < 170 and row.endswith("…")
    assert len(text.splitlines()) == 3  # the newline in the message did not add a line
