"""`tree_depth`: scripted per-round depths, and the default against real XGBoost trees."""

import json

import pytest

from tripwire.rules.tree_depth import TreeDepth
from tripwire.stats import Sample


def run(rule, depths):
    """Feed the deepest new tree of rounds 1, 2, ...; return the rounds of fired verdicts."""
    return [r for r, d in enumerate(depths, 1) for v in rule.check(Sample(r, stats={"tree_depth": {None: d}}))
            if v.fired]


def test_deep_tree_fires_and_stays_fired_because_it_stays_in_the_model():
    rule = TreeDepth("tree_depth")
    assert run(rule, [6, 6, 15, 4, 5]) == [3, 4, 5]
    (v,) = rule.check(Sample(6, stats={"tree_depth": {None: 3}}))
    assert v.value == 15 and v.threshold == 10 and "round 3" in v.message and "depth 15" in v.message
    assert "max_depth" in v.suggestion and v.evidence["latest_depth"] == 3


def test_default_xgboost_depth_and_tuned_depths_stay_silent():
    assert run(TreeDepth("tree_depth"), [6] * 50 + [10] * 50) == []


def test_state_is_plain_and_missing_rounds_are_skipped():
    rule = TreeDepth("t", TreeDepth.Params(max_depth=4))
    assert rule.check(Sample(1, stats={})) == []
    run(rule, [3, 5])
    assert rule.state == {"deepest": 5, "round": 2}


def _round_depth(booster):
    """Real depth of the deepest tree added in the last round (a one-round slice of the model)."""
    def depth(node):
        return 0 if "children" not in node else 1 + max(depth(c) for c in node["children"])
    last = booster.num_boosted_rounds()
    return max(depth(json.loads(t)) for t in booster[last - 1:last].get_dump(dump_format="json"))


@pytest.mark.parametrize("max_depth,fires", [(6, False), (15, True)])
def test_default_on_real_boosted_trees(max_depth, fires):
    xgb = pytest.importorskip("xgboost")
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=3000, n_features=20, flip_y=0.3, random_state=0)
    dtrain = xgb.DMatrix(x, label=y)
    params = {"max_depth": max_depth, "objective": "binary:logistic", "tree_method": "hist", "nthread": 1}
    booster, depths = None, []
    for _ in range(3):
        booster = xgb.train(params, dtrain, num_boost_round=1, xgb_model=booster)
        depths.append(_round_depth(booster))
    assert max(depths) <= max_depth and (max(depths) > 10) == fires
    assert bool(run(TreeDepth("tree_depth"), depths)) == fires
