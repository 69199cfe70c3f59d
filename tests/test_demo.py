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
    assert f"report written to {run_dir / 'report.html'}" in out


def test_demo_names_what_to_install_for_an_unknown_framework(capsys):
    with pytest.raises(SystemExit):  # argparse rejects it with the valid choices
        main(["demo", "--framework", "caffe"])
    assert "lightning" in capsys.readouterr().err
