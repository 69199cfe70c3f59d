"""A config that is pasted works, and one that is wrong says everything that is wrong, once:
optional environment variables, every problem of a file in one pass, unclosed brackets named
where they open, and a short traceback when a callback is built from a bad file."""

import subprocess
import sys

import pytest

from tripwire import Config, ConfigError
from tripwire.cli import main


def test_an_optional_variable_left_unset_switches_the_webhook_off(tmp_path, monkeypatch):
    path = tmp_path / "t.yaml"
    path.write_text('actions:\n  webhook: {url: "${TW_HOOK:-}", timeout_s: 5}\n')
    monkeypatch.delenv("TW_HOOK", raising=False)
    assert Config.load(path).actions.webhook is None
    monkeypatch.setenv("TW_HOOK", "http://127.0.0.1:9/hook")
    assert Config.load(path).actions.webhook.url == "http://127.0.0.1:9/hook"


def test_a_required_variable_left_unset_says_how_to_make_it_optional(tmp_path, monkeypatch):
    path = tmp_path / "t.yaml"
    path.write_text('actions:\n  webhook: {url: "${TW_HOOK}"}\n')
    monkeypatch.delenv("TW_HOOK", raising=False)
    with pytest.raises(ConfigError) as err:
        Config.load(path)
    assert err.value.errors == [err.value]  # the empty value it leaves is not a second problem
    assert err.value.path == "actions.webhook.url" and "${TW_HOOK:-} makes it optional" in str(err.value)


BROKEN = """\
interval: 0
rules:
  dead_relus: {}
  overfit: {ratio: -1, actions: [alert, stpo]}
  nonfinite: {severity: fatal}
actions:
  webhook: {url: "${TW_UNSET_HOOK}"}
"""
PROBLEMS = [(1, "interval", "greater than or equal to 1"), (3, "rules.dead_relus", "did you mean 'dead_relu'"),
            (4, "rules.overfit.ratio", "greater than 0"), (4, "rules.overfit.actions.1", "did you mean 'stop'"),
            (5, "rules.nonfinite.severity", "valid: info, warning, error"),
            (7, "actions.webhook.url", "TW_UNSET_HOOK is not set")]


def test_every_problem_of_a_file_is_reported_in_file_order(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("TW_UNSET_HOOK", raising=False)
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    with pytest.raises(ConfigError) as err:
        Config.load(path)
    assert [(e.line, e.path) for e in err.value.errors] == [(line, key) for line, key, _ in PROBLEMS]
    assert len(str(err.value).splitlines()) == len(PROBLEMS)
    assert main(["check", str(path)]) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith(str(path))]
    assert len(lines) == len(PROBLEMS)
    for line, (number, key, says) in zip(lines, PROBLEMS):
        assert line.startswith(f"{path}:{number}:") and f"at '{key}'" in line and says in line


@pytest.mark.parametrize(("text", "opened"), [
    ("rules:\n  dead_relu: {patience: 3\n  overfit: {}\n", "the '{' at line 2, column 14 is not closed"),
    ("rules:\n  nonfinite: {actions: [alert, stop}\n", "the '[' at line 2, column 24 is not closed"),
])
def test_an_unclosed_bracket_is_named_where_it_opens(tmp_path, capsys, text, opened):
    path = tmp_path / "open.yaml"
    path.write_text(text)
    assert main(["check", str(path)]) == 1
    assert opened in capsys.readouterr().err


def test_a_callback_built_from_a_bad_file_shows_a_short_traceback(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("rules:\n  nonfinte: {}\n  overfit: {ratio: -1}\n")
    script = f"from tripwire import Monitor\nMonitor({str(path)!r})\n"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    frames = [line for line in proc.stderr.splitlines() if line.lstrip().startswith("File ")]
    assert len(frames) <= 3, proc.stderr  # the script, the constructor, Config.load: no parser internals
    assert "During handling" not in proc.stderr and "direct cause" not in proc.stderr
    assert f"{path}:2:3 at 'rules.nonfinte'" in proc.stderr and f"{path}:3:" in proc.stderr
