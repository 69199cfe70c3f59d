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


def test_readme_yaml_example_is_valid_as_pasted(tmp_path, monkeypatch):
    from tripwire import Config

    readme = (ROOT / "README.md").read_text()
    block = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "tripwire.yaml"
    path.write_text(block)
    monkeypatch.delenv("TRIPWIRE_WEBHOOK", raising=False)
    assert Config.load(path).rules and Config.load(path).actions.webhook is None  # the webhook waits for its URL
    monkeypatch.setenv("TRIPWIRE_WEBHOOK", "http://127.0.0.1:9/hook")
    assert Config.load(path).actions.webhook.url == "http://127.0.0.1:9/hook"


def test_every_readme_quickstart_names_its_install_extra():
    readme = (ROOT / "README.md").read_text()
    quickstart = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    sections = quickstart.split("\n### ")[1:]
    assert len(sections) == 5  # the plain loop, Lightning, Keras, XGBoost, the HF Trainer
    for section in sections:
        assert 'pip install -e ".[' in section.split("```", 1)[0], section.splitlines()[0]


def test_example_yaml_is_valid():
    from tripwire import Config

    assert Config.load(ROOT / "examples" / "tripwire.yaml").rules is not None
