"""Which eval set is train/validation, which metric is the loss and its direction; label counting."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("xgboost")

from tripwire import ConfigError
from tripwire.callbacks.xgboost.evals import EvalReader, is_maximized, pick_sets
from tripwire.callbacks.xgboost.labels import count_labels

pytestmark = pytest.mark.xgboost


@pytest.mark.parametrize("names, expected", [
    (["train", "validation"], ("train", "validation")),
    (["dtrain", "dtest"], ("dtrain", "dtest")),
    (["eval", "training", "holdout"], ("training", "holdout")),
    (["train"], ("train", None)),
    (["valid"], (None, "valid")),
    (["validation_0", "validation_1"], ("validation_0", "validation_1")),
    (["validation_0", "validation_1", "validation_2"], ("validation_0", "validation_2")),
    (["validation_0"], (None, "validation_0")),
    (["train", "test"], ("train", "test")),  # xgb.cv
])
def test_default_eval_sets(names, expected):
    assert pick_sets(names) == expected


def test_explicit_eval_sets_win_and_must_exist():
    assert pick_sets(["a", "b", "c"], train="b", val="a") == ("b", "a")
    assert pick_sets(["train", "v1", "v2"], val="v1") == ("train", "v1")
    assert pick_sets(["validation_0", "validation_1"], val="validation_0") == (None, "validation_0")
    with pytest.raises(ConfigError, match="train_set='trn' is not an eval set of this run; the eval sets are 'a'"):
        pick_sets(["a"], train="trn")


@pytest.mark.parametrize("metric, rises", [
    ("auc", True), ("aucpr", True), ("map@5", True), ("ndcg", True), ("pre@10", True),
    ("logloss", False), ("rmse", False), ("error", False), ("mape", False), ("mlogloss", False),
])
def test_metric_direction(metric, rises):
    assert is_maximized(metric) is rises


def test_metric_choice_prefers_the_last_falling_metric():
    log = {"train": {"logloss": [0.5], "error": [0.2], "auc": [0.9]}, "val": {"logloss": [0.6], "error": [0.3],
                                                                             "auc": [0.8]}}
    r = EvalReader()
    assert r.losses(log) == (0.2, 0.3) and r.metric == "error"
    only_auc = {"train": {"auc": [0.9, 0.95]}, "val": {"auc": [0.8, 0.85]}}
    assert EvalReader().losses(only_auc) == pytest.approx((0.05, 0.15))
    custom = {"train": {"score": [3.0]}, "val": {"score": [2.0]}}
    assert EvalReader(maximize=True).losses(custom) == (-2.0, -1.0)
    assert EvalReader().losses(custom) == (3.0, 2.0)
    with pytest.raises(ConfigError, match="metric='rmse' is not reported by this run; it reports 'score'"):
        EvalReader(metric="rmse").losses(custom)


def test_cross_validation_means_and_missing_sets():
    log = {"train": {"rmse": [(0.5, 0.01), (0.4, 0.02)]}, "test": {"rmse": [(0.6, 0.03), (0.55, 0.01)]}}
    r = EvalReader()
    assert r.losses(log) == (0.4, 0.55) and r.description == "loss = train-rmse, val_loss = test-rmse"
    assert EvalReader().losses({}) == (None, None)
    assert EvalReader().losses({"validation": {"logloss": [0.3]}}) == (None, 0.3)


def test_count_labels_of_arrays_lists_and_names():
    assert count_labels(np.array([1, 0, 1, 1])) == {"0": 1.0, "1": 3.0}
    assert count_labels([2.0, 0.0, 2.0]) == {"0": 1.0, "2": 2.0}
    assert count_labels(np.array([[0], [1], [1]])) == {"0": 1.0, "1": 2.0}
    assert count_labels(np.array(["b", "a", "b"])) == {"a": 1.0, "b": 2.0}
    with pytest.raises(ValueError, match="labels= takes class labels"):
        count_labels(np.array([0.5, 1.2, 3.3]))


def test_count_labels_of_dask_collections():
    da = pytest.importorskip("dask.array")
    y = np.array([0] * 30 + [1] * 5 + [2] * 2)
    assert count_labels(da.from_array(y, chunks=10)) == {"0": 30.0, "1": 5.0, "2": 2.0}
    dd = pytest.importorskip("dask.dataframe")
    pd = pytest.importorskip("pandas")
    series = dd.from_pandas(pd.Series(y), npartitions=3)
    assert count_labels(series) == {"0": 30.0, "1": 5.0, "2": 2.0}
