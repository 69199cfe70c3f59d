"""The `tripwire` command: the rule catalogue and config checking."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tripwire.cli import main, rules_markdown
from tripwire.registry import builtin_rules

RULES = builtin_rules()


def _defaults(cls) -> dict[str, str]:
    return {name: repr(field.get_default(call_default_factory=True)) for name, field in cls.Params.model_fields.items()}


def test_rules_lists_every_registered_rule_with_its_parameters(capsys):
    assert main(["rules"]) == 0
    out = capsys.readouterr().out
    for kind, cls in RULES.items():
        header = next(line for line in out.splitlines() if line.startswith(f"{kind}  "))
        assert f"default set: {'yes' if cls.in_default_set else 'no'}" in header
        assert f"actions: {', '.join(cls.default_actions)}" in header
        assert f"frameworks: {', '.join(cls.frameworks)}" in header
        assert cls.summary in out
        for name, default in _defaults(cls).items():
            assert f"    {name} = {default}  " in out, f"{kind}.{name} missing"


def test_rules_markdown_has_a_row_and_a_section_per_rule(capsys):
    assert main(["rules", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert out == rules_markdown()
    rows = [line for line in out.splitlines() if line.startswith("| [`")]
    assert [row.split("`")[1] for row in rows] == list(RULES)
    for kind, cls in RULES.items():
        section = out.split(f"\n### {kind}\n", 1)[1].split("\n### ", 1)[0]
        assert cls.summary in section
        for name, default in _defaults(cls).items():
            field = cls.Params.model_fields[name]
            assert f"| `{name}` |" in section and f"`{default}`" in section
            assert " ".join((field.description or "").split()).replace("|", "\\|") in section


def test_rules_filters_by_name_and_suggests_a_close_one(capsys):
    assert main(["rules", "nonfinite"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("nonfinite  ") and all(f"\n{k}  " not in out for k in RULES if k != "nonfinite")
    assert main(["rules", "nonfinte"]) == 1
    assert "did you mean 'nonfinite'" in capsys.readouterr().err


def test_check_accepts_a_valid_file(tmp_path, capsys):
    path = tmp_path / "ok.yaml"
    path.write_text("interval: 5\nrules:\n  nonfinite: {actions: [alert, stop]}\n"
                    "  not_finite_again:\n    type: nonfinite\n  off: {type: nonfinite, enabled: false}\n")
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.strip() == f"ok: {path}: 2 rules (nonfinite, not_finite_again (nonfinite))"


def test_check_without_rules_reports_the_default_set(tmp_path, capsys):
    path = tmp_path / "defaults.yaml"
    path.write_text("interval: 20\n")
    assert main(["check", str(path)]) == 0
    defaults = [k for k, c in RULES.items() if c.in_default_set]
    expected = f"ok: {path}: {len(defaults)} rules (the default set: {', '.join(defaults)})"
    assert capsys.readouterr().out.strip() == expected


MISSPELLED = [pytest.param("nonfinte", "nonfinite", id="nonfinte")]
MISSPELLED.append(pytest.param("dead_relus", "dead_relu", id="dead_relus", marks=pytest.mark.skipif(
    "dead_relu" not in RULES, reason="dead_relu is not registered yet")))


@pytest.mark.parametrize(("typo", "meant"), MISSPELLED)
def test_check_locates_a_misspelled_rule(tmp_path, capsys, typo, meant):
    path = tmp_path / "bad.yaml"
    path.write_text(f"interval: 5\nrules:\n  {typo}: {{}}\n")
    assert main(["check", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    first = captured.err.splitlines()[0]
    assert first.startswith(f"{path}:3:3 at 'rules.{typo}': unknown rule type '{typo}'")
    assert f"did you mean '{meant}'" in first
    assert f"    3 |   {typo}: {{}}" in captured.err  # the offending line, with a caret under it


def test_check_reports_a_bad_value_with_its_key_path(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("rules:\n  nonfinite:\n    actions: [alert, stopp]\n")
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:3:" in err and "rules.nonfinite.actions.1" in err and "did you mean 'stop'" in err


def test_check_reports_every_file_and_fails_if_any_fails(tmp_path, capsys):
    good, broken = tmp_path / "good.yaml", tmp_path / "broken.yaml"
    good.write_text("interval: 5\n")
    broken.write_text("interval: [5\n")
    assert main(["check", str(good), str(broken), str(tmp_path / "missing.yaml")]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith(f"ok: {good}:")
    assert f"{broken}:2:1: invalid YAML" in captured.err
    assert f"{tmp_path / 'missing.yaml'}: config file not found" in captured.err


def test_module_entry_point_prints_no_traceback(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("rules:\n  nonfinte: {}\n")
    proc = subprocess.run([sys.executable, "-m", "tripwire", "check", str(path)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and f"{path}:2:3" in proc.stderr and "did you mean 'nonfinite'" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "tripwire", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "rules" in proc.stdout and "check" in proc.stdout


def test_version_is_the_package_version(capsys):
    import tripwire

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"tripwire {tripwire.__version__}"
