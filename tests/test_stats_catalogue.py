"""The statistics catalogue is consistent, and the rules take what it says about a statistic
from it: the defaults of the options they pass, and where they can run."""

import pytest

from tripwire.registry import builtin_rules
from tripwire.stats import (
    ACTIVATION_FAMILIES,
    ACTIVATION_STATS,
    CATALOGUE,
    COLLECTED,
    FRAMEWORKS,
    UNIT_SHARES,
    Need,
    frameworks_for,
    required,
)

RULES = builtin_rules()


@pytest.mark.parametrize("stat", sorted(CATALOGUE))
def test_every_statistic_is_fully_described(stat):
    info = CATALOGUE[stat]
    assert info.reduce in ("same", "sum", "mean", "max", "min") and info.per and info.doc
    assert info.collected_by and info.collected_by <= set(FRAMEWORKS)
    assert set(info.families) <= set(ACTIVATION_FAMILIES)
    assert (stat in ACTIVATION_STATS) == bool(info.families) == stat.startswith("act_")
    assert all(isinstance(name, str) for name, _ in info.options)


def test_collected_is_what_the_catalogue_says_each_callback_sends():
    for framework in FRAMEWORKS:
        assert COLLECTED[framework] == {s for s, info in CATALOGUE.items() if framework in info.collected_by}
    assert COLLECTED["xgboost"] == {"loss", "val_loss", "epochs_since_val", "label_count", "tree_depth",
                                    "feature_importance", "feature_chances", "boosting_progress", "heldout_importance"}
    # Keras validates at epoch ends
    assert COLLECTED["torch"] - COLLECTED["keras"] == {"epochs_since_val"}
    assert UNIT_SHARES <= ACTIVATION_STATS


def test_a_statistic_whose_absence_has_a_meaning_is_not_required():
    assert not required(Need("epochs_since_val")) and CATALOGUE["epochs_since_val"].absent == 1.0
    assert [s for s in CATALOGUE if not required(Need(s))] == ["epochs_since_val"]


def test_option_defaults_come_from_the_catalogue():
    assert Need("act_dead_frac").setting("inactive_below") == 0.01
    assert Need("act_sigmoid_sat_frac").setting("share") == 0.9  # the rule's default, not 0.99
    assert Need("weight_unchanged", (("rtol", 0.1),)).setting("rtol") == 0.1
    with pytest.raises(KeyError, match="no option 'share'"):
        Need("loss").setting("share")


#: options that pick which series is measured rather than how (a rule asks for each of its choices)
SELECTORS = {"series"}


@pytest.mark.parametrize("kind", sorted(RULES))
def test_the_options_a_rule_passes_default_to_the_catalogue(kind):
    """With its default parameters, a rule asks for each statistic with the catalogue's defaults."""
    for need in RULES[kind](kind).needs():
        defaults = dict(CATALOGUE[need.stat].options)
        assert set(dict(need.options)) <= set(defaults), need.key
        assert all(value == defaults[name] for name, value in need.options if name not in SELECTORS), need.key


@pytest.mark.parametrize("kind", sorted(RULES))
def test_a_rule_runs_where_its_needs_are_collected(kind):
    cls = RULES[kind]
    assert "frameworks" not in vars(cls), "derived from needs(), not written by hand"
    assert cls.frameworks == frameworks_for(cls(kind).needs())
    assert cls.frameworks
