"""`tripwire report RUN [--out FILE]`."""

from __future__ import annotations

import subprocess
import sys

from tripwire.cli import main


def test_report_command_writes_the_page_of_a_run_directory(quiet_run, capsys):
    assert main(["report", str(quiet_run)]) == 0
    out = capsys.readouterr().out
    assert out == (f"tripwire: report written to {quiet_run / 'report.html'}\n"
                   "  quiet: Run in progress, last sample at step 500.\n")  # written without an end
    assert "No findings" in (quiet_run / "report.html").read_text(encoding="utf-8")


def test_report_command_takes_a_log_directory_and_an_output_file(quiet_run, tmp_path, capsys):
    out = tmp_path / "pages" / "latest.html"
    assert main(["report", str(quiet_run.parent), "--out", str(out)]) == 0  # the log dir holds one run
    assert out.exists() and "tripwire report · quiet" in out.read_text(encoding="utf-8")


def test_report_command_without_a_record_fails_with_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tripwire report: no tripwire run record at ") and err.count("\n") == 1


def test_python_dash_m_tripwire_report(quiet_run, tmp_path):
    out = tmp_path / "r.html"
    done = subprocess.run([sys.executable, "-m", "tripwire", "report", str(quiet_run / "record.sqlite"),
                           "--out", str(out)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert out.stat().st_size > 1_000_000


def test_report_command_says_how_the_run_ended(tmp_path, capsys):
    from tripwire import Monitor, Sample

    m = Monitor({"rules": {"nonfinite": {}}}, log_dir=tmp_path, run_name="nan")
    m.process(Sample(step=0, stats={"loss_nonfinite": {None: 0.0}}))
    m.process(Sample(step=4, stats={"loss_nonfinite": {None: 1.0}}))
    m.close(print_summary=False)
    assert main(["report", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("  nan: Run stopped by rule nonfinite at step 4 (ended ")
