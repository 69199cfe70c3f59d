"""`tripwire demo`: the README's main job trips at least three rules, stops, and writes a report."""

import pytest

from tripwire.cli import main


@pytest.mark.parametrize("framework,stopper", [("lightning", "dead_relu"), ("xgboost", "overfit")])
def test_demo_trips_three_rules_stops_and_writes_the_report(framework, stopper, tmp_path, capsys):
    pytest.importorskip(framework)
    pytest.importorskip("plotly")
    assert main(["demo", "--framework", framework, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    step = "round" if framework == "xgboost" else "step"  # what a step is called there
    assert f"training stopped at {step}" in out and f"by {stopper}" in out
    (run_dir,) = [p for p in tmp_path.iterdir() if (p / "record.sqlite").exists()]
    from tripwire.record import Run

    rules = {f.rule for f in Run(run_dir).findings}
    assert len(rules) >= 3 and stopper in rules, rules
    page = (run_dir / "report.html").read_text()
    assert stopper in page and "<html" in page.lower()
    assert f"report: {run_dir / 'report.html'}" in out
    assert sum("report" in line for line in out.splitlines()) == 1  # the report once, no command to make it


@pytest.mark.parametrize("framework", ["lightning", "xgboost"])
def test_demo_prints_tripwire_only_one_line_per_finding_as_it_fires(framework, tmp_path, capsys, caplog):
    pytest.importorskip(framework)
    assert main(["demo", "--framework", framework, "--out", str(tmp_path), "--no-report"]) == 0
    captured = capsys.readouterr()  # the alert lines are log records: pytest keeps them in caplog
    lines = (captured.out + captured.err).splitlines() + [r.getMessage() for r in caplog.records]
    noise = [line for line in lines if not line.startswith(("tripwire", "  "))]
    assert noise == []  # no framework start-up notes, no warnings, no rule of another framework
    assert not any("will not run" in line for line in lines)
    (run_dir,) = [p for p in tmp_path.iterdir() if (p / "record.sqlite").exists()]
    from tripwire.record import Run

    alerts = [line for line in lines if line.startswith("tripwire warning:")]
    assert len(alerts) == len(Run(run_dir).findings)


@pytest.mark.parametrize("framework", ["torch", "keras", "xgboost"])
def test_the_default_set_leaves_other_frameworks_rules_out_quietly(framework, caplog):
    from tripwire import Monitor

    monitor = Monitor(None, framework=framework, log_dir=False)
    monitor.open()
    monitor.close(print_summary=False)
    assert monitor.engine.not_run == {} and "will not run" not in caplog.text


def test_demo_names_what_to_install_for_an_unknown_framework(capsys):
    with pytest.raises(SystemExit):  # argparse rejects it with the valid choices
        main(["demo", "--framework", "caffe"])
    assert "lightning" in capsys.readouterr().err
