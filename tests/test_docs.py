"""The documentation cannot drift from the code: the rule reference is generated from the registry."""

from pathlib import Path

from tripwire.cli import rules_markdown

ROOT = Path(__file__).resolve().parents[1]


def test_docs_rules_md_is_the_generated_catalogue():
    text = (ROOT / "docs" / "rules.md").read_text()
    assert text.endswith(rules_markdown()), "docs/rules.md is stale: regenerate it with `tripwire rules --markdown`"


def test_readme_rule_table_is_the_generated_overview():
    readme = (ROOT / "README.md").read_text()
    table = rules_markdown(details=False, link="docs/rules.md")
    assert table in readme, "README's rule table is stale: paste `rules_markdown(details=False, link='docs/rules.md')`"


def test_readme_yaml_example_is_valid(tmp_path, monkeypatch):
    from tripwire import Config

    readme = (ROOT / "README.md").read_text()
    block = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    monkeypatch.setenv("TRIPWIRE_WEBHOOK", "http://127.0.0.1:9/hook")
    path = tmp_path / "tripwire.yaml"
    path.write_text(block)
    assert Config.load(path).rules


def test_example_yaml_is_valid():
    from tripwire import Config

    assert Config.load(ROOT / "examples" / "tripwire.yaml").rules is not None
