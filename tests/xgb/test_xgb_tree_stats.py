"""Tree depth and feature importance as the callback computes them, against independent references.

The references read the finished model whole (a full JSON dump walked node by node, a full
``get_score``); the callback only ever sees slices of the rounds added since its last sample.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

xgb = pytest.importorskip("xgboost")

from tripwire import XGBoostTripwire
from tripwire.callbacks.xgboost.trees import TreeTracker, normalized, tree_depth
from tripwire.record import Run

pytestmark = pytest.mark.xgboost

ALL_TREE_STATS = {"rules": {"tree_depth": {}, "low_feature_importance": {}}}


def walked_depth(node: dict, level: int = 0) -> int:
    """Edges from ``node`` to its deepest leaf, by walking the children."""
    children = node.get("children")
    return level if not children else max(walked_depth(c, level + 1) for c in children)


def reference_depths(booster, trees_per_round: int) -> list[int]:
    """Deepest tree of every round, from the full dump of the finished model."""
    depths = [walked_depth(json.loads(t)) for t in booster.get_dump(dump_format="json")]
    return [max(depths[i:i + trees_per_round]) for i in range(0, len(depths), trees_per_round)]


def recorded(cb: XGBoostTripwire, name: str, subject: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    with Run(cb.record_path) as run:
        return run.series(name, subject)


@pytest.mark.parametrize("params, trees_per_round", [
    ({"objective": "multi:softprob", "num_class": 3, "num_parallel_tree": 2, "max_depth": 5}, 6),
    ({"objective": "binary:logistic", "grow_policy": "lossguide", "max_depth": 0, "max_leaves": 24}, 1),
    ({"objective": "reg:squarederror", "booster": "dart", "max_depth": 4, "rate_drop": 0.1}, 1),
])
def test_depth_of_each_round_matches_a_walk_of_the_full_dump(data, tmp_path, params, trees_per_round):
    X, y = data(n=1500, classes=params.get("num_class", 2), noise=1.0)
    cb = XGBoostTripwire(ALL_TREE_STATS, interval=1, log_dir=tmp_path)
    bst = xgb.train({**params, "subsample": 0.8}, xgb.DMatrix(X, y), 12, callbacks=[cb])

    steps, depths = recorded(cb, "tree_depth")
    assert steps.tolist() == list(range(12))
    assert depths.astype(int).tolist() == reference_depths(bst, trees_per_round)
    assert depths.max() >= 4  # real trees, not stumps: the comparison means something


def test_lossguide_depth_is_not_log2_of_the_node_ids(data, tmp_path):
    """Leaf-wise growth numbers nodes in creation order: log2(largest id) misjudges the depth."""
    X, y = data(n=3000, noise=2.0)
    cb = XGBoostTripwire(ALL_TREE_STATS, interval=1, log_dir=tmp_path)
    bst = xgb.train({"grow_policy": "lossguide", "max_depth": 0, "max_leaves": 64, "tree_method": "hist"},
                    xgb.DMatrix(X, y), 5, callbacks=[cb])
    _, depths = recorded(cb, "tree_depth")
    dumps = [json.loads(t) for t in bst.get_dump(dump_format="json")]

    def max_id(node):
        return max([node["nodeid"]] + [max_id(c) for c in node.get("children", [])])

    log2_guess = [math.floor(math.log2(max_id(t) + 1)) for t in dumps]
    assert depths.astype(int).tolist() == [walked_depth(t) for t in dumps]
    assert depths.astype(int).tolist() != log2_guess


def test_sampling_every_interval_covers_every_round(data, tmp_path):
    """With interval 5 a sample's depth is the deepest of the 5 rounds since the previous one."""
    X, y = data(n=1500, noise=1.0)
    depth_by_round = iter([2, 2, 9, 2, 2, 3, 3, 3, 3, 3])

    class VaryDepth(xgb.callback.TrainingCallback):  # a different max_depth for each round
        def before_iteration(self, model, epoch, evals_log):
            model.set_param({"max_depth": next(depth_by_round)})
            return False

    cb = XGBoostTripwire(ALL_TREE_STATS, interval=5, log_dir=tmp_path)
    bst = xgb.train({"min_child_weight": 0, "reg_lambda": 0}, xgb.DMatrix(X, y), 10, callbacks=[VaryDepth(), cb])
    steps, depths = recorded(cb, "tree_depth")
    per_round = reference_depths(bst, 1)
    assert per_round[2] == 9 and max(per_round[5:]) == 3
    assert steps.tolist() == [0, 5, 9]  # round 5 covers rounds 1..5, the last sample rounds 6..9
    assert depths.astype(int).tolist() == [2, 9, 3]


def test_importance_is_normalized_total_gain_with_zeros_and_names(data, tmp_path):
    X, y = data(n=1500, features=8, informative=3)
    X[:, 7] = 1.0  # a constant column: never split on
    names = [f"col_{i}" for i in range(8)]
    cb = XGBoostTripwire(ALL_TREE_STATS, interval=4, log_dir=tmp_path)
    bst = xgb.train({"max_depth": 3, "colsample_bytree": 0.5}, xgb.DMatrix(X, y, feature_names=names), 12,
                    callbacks=[cb])

    full = bst.get_score(importance_type="total_gain")
    total = sum(full.values())
    with Run(cb.record_path) as run:
        assert run.subjects("feature_importance") == sorted(names)
        shares = {n: run.series("feature_importance", n)[1] for n in names}
    assert all(len(v) == 4 for v in shares.values())  # rounds 0, 4, 8, and 11 at the end
    assert sum(v[-1] for v in shares.values()) == pytest.approx(1.0)
    for n in names:
        assert shares[n][-1] == pytest.approx(full.get(n, 0.0) / total, rel=1e-5)
    assert "col_7" not in full and shares["col_7"].tolist() == [0.0] * 4


def test_continued_training_counts_only_new_trees_for_depth_and_all_for_importance(data):
    X, y = data(n=1500, features=6, informative=6)
    d = xgb.DMatrix(X, y)
    deep = xgb.train({"max_depth": 8, "min_child_weight": 0}, d, 5)
    more = xgb.train({"max_depth": 2}, d, 5, xgb_model=deep)
    tracker = TreeTracker(more[:5], depth=True, importance=True)
    out = tracker.update(more)
    assert out["depth"] == 2
    full = more.get_score(importance_type="total_gain")
    assert out["importance"] == pytest.approx(normalized(full, list(full)))
    assert tracker.update(more) == {}


def test_tree_depth_of_a_single_leaf_and_of_a_stump():
    assert tree_depth('{ "nodeid": 0, "leaf": 0.5 }') == 0
    stump = ('{ "nodeid": 0, "depth": 0, "split": "f0", "split_condition": 1, "yes": 1, "no": 2, "missing": 1, '
             '"children": [{ "nodeid": 1, "leaf": 0.1 }, { "nodeid": 2, "leaf": 0.2 }]}')
    assert tree_depth(stump) == 1


def test_gblinear_gets_no_tree_statistics_and_trains(data, tmp_path):
    X, y = data(n=500)
    cb = XGBoostTripwire(ALL_TREE_STATS, interval=2, log_dir=tmp_path)
    xgb.train({"booster": "gblinear"}, xgb.DMatrix(X, y), 6, callbacks=[cb])
    with Run(cb.record_path) as run:
        assert "tree_depth" not in run.names() and "feature_importance" not in run.names()
    assert cb.findings == []


def test_boosting_progress_is_rounds_times_eta_and_follows_a_schedule(data, tmp_path):
    X, y = data(n=600, features=6, informative=3)
    schedule = xgb.callback.LearningRateScheduler(lambda i: 0.1 if i <= 5 else 0.3)
    cb = XGBoostTripwire(ALL_TREE_STATS, interval=5, log_dir=tmp_path)
    xgb.train({"max_depth": 2}, xgb.DMatrix(X, y), 11, callbacks=[schedule, cb])
    steps, progress = recorded(cb, "boosting_progress")
    assert steps.tolist() == [0, 5, 10]
    # rounds 0-5 at eta 0.1, rounds 6-10 at 0.3
    assert progress == pytest.approx([0.1, 0.6, 0.6 + 5 * 0.3])
