"""Each XGBoost rule fires on a real training run with the fault planted, and stays silent without it."""

from __future__ import annotations

import numpy as np
import pytest

xgb = pytest.importorskip("xgboost")

from tripwire import XGBoostTripwire
from tripwire.record import Run

pytestmark = pytest.mark.xgboost


def kinds(cb: XGBoostTripwire) -> dict[str, list]:
    out: dict[str, list] = {}
    for f in cb.findings:
        out.setdefault(f.kind, []).append(f)
    return out


def regression(n: int = 3000, seed: int = 0) -> xgb.DMatrix:
    """A noisy regression target: unbounded trees keep splitting it down to single rows."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8))
    return xgb.DMatrix(X, X[:, 0] + np.sin(3 * X[:, 1]) + rng.normal(size=n))


def test_trees_deeper_than_the_limit_fire_tree_depth():
    cb = XGBoostTripwire({"rules": {"tree_depth": {}}}, log_dir=False)
    xgb.train({"max_depth": 15, "min_child_weight": 0}, regression(), 20, callbacks=[cb])
    [finding] = kinds(cb)["tree_depth"]
    assert finding.value > 10 and finding.threshold == 10
    assert finding.step == 0  # the first sample (round 0) already holds a deep tree


def test_xgboost_default_depth_stays_silent(tmp_path):
    cb = XGBoostTripwire({"rules": {"tree_depth": {}}}, log_dir=tmp_path)
    xgb.train({"min_child_weight": 0}, regression(), 20, callbacks=[cb])
    assert cb.findings == []
    with Run(cb.record_path) as run:
        assert run.series("tree_depth")[1].tolist() == [6.0, 6.0, 6.0]  # full depth, at the default limit


def test_many_pure_noise_features_fire_useless_importance(data):
    X, y = data(n=2000, features=60, informative=3, noise=0.2)
    only_useless = {"low_feature_importance": {"max_share": 0.995}}  # the 3 informative ones hold 99% at round 10
    cb = XGBoostTripwire({"rules": only_useless}, log_dir=False)
    xgb.train({"max_depth": 3, "eta": 0.3}, xgb.DMatrix(X, y), 30, callbacks=[cb])
    [finding] = cb.findings
    assert finding.subject == "useless" and finding.value > 0.5
    assert finding.evidence["features"] == 60 and "f59" in finding.evidence["useless"]


def test_a_leaked_label_column_fires_dominant_importance(data):
    X, y = data(n=2000, features=12, informative=12, noise=1.0)
    leaked = np.column_stack([X, y + 0.01 * np.random.default_rng(1).normal(size=len(y))])
    names = [f"x{i}" for i in range(12)] + ["label_copy"]
    only_dominant = {"low_feature_importance": {"max_useless_share": 0.99}}  # 12 of 13 columns are unused too
    cb = XGBoostTripwire({"rules": only_dominant}, log_dir=False)
    xgb.train({"max_depth": 4}, xgb.DMatrix(leaked, y, feature_names=names), 30, callbacks=[cb])
    [finding] = cb.findings
    assert finding.subject == "dominant" and finding.value > 0.9
    assert "label_copy" in finding.evidence["top"] and "check label_copy" in finding.suggestion


def test_informative_features_keep_importance_rules_silent(data):
    X, y = data(n=2000, features=12, informative=12, noise=1.0)
    cb = XGBoostTripwire({"rules": {"low_feature_importance": {}}}, log_dir=False)
    xgb.train({"max_depth": 4}, xgb.DMatrix(X, y), 30, callbacks=[cb])
    assert cb.findings == []


def overfitting_run(data, cb, rounds=150):
    """Deep unregularized trees on 80 noisy rows, judged on 2000 held-out rows."""
    X, y = data(n=2080, features=20, informative=5, noise=1.5)
    dtrain, dval = xgb.DMatrix(X[:80], y[:80]), xgb.DMatrix(X[80:], y[80:])
    params = {"max_depth": 12, "eta": 0.3, "min_child_weight": 0, "reg_lambda": 0, "eval_metric": "logloss"}
    return xgb.train(params, dtrain, rounds, evals=[(dtrain, "train"), (dval, "validation")], callbacks=[cb],
                     verbose_eval=False)


def test_overfitting_fires_overfit_and_overtraining(data):
    cb = XGBoostTripwire({"rules": {"overfit": {}, "overtraining": {}}}, log_dir=False)
    bst = overfitting_run(data, cb)
    found = kinds(cb)
    assert set(found) == {"overfit", "overtraining"}
    assert found["overfit"][0].evidence["val_loss"] > 2 * found["overfit"][0].evidence["train_loss"]
    assert bst.num_boosted_rounds() == 150 and cb.stopped_by is None


def test_overfitting_stops_training_when_configured(data):
    cb = XGBoostTripwire({"rules": {"overfit": {}}}, stop_on=["overfit"], log_dir=False)
    bst = overfitting_run(data, cb)
    assert cb.stopped_by is not None and cb.stopped_by.kind == "overfit"
    assert bst.num_boosted_rounds() == cb.stopped_by.step + 1 < 150


def test_rising_metric_is_used_as_one_minus_value(data):
    """With eval_metric auc only, the loss rules read 1 - auc and still see the overfit."""
    cb = XGBoostTripwire({"rules": {"overfit": {}}}, log_dir=False)
    X, y = data(n=2080, features=20, informative=5, noise=1.5)
    dtrain, dval = xgb.DMatrix(X[:80], y[:80]), xgb.DMatrix(X[80:], y[80:])
    bst = xgb.train({"max_depth": 12, "min_child_weight": 0, "reg_lambda": 0, "eval_metric": "auc",
                     "subsample": 0.7}, dtrain, 60, evals=[(dtrain, "dtrain"), (dval, "eval")], callbacks=[cb],
                    verbose_eval=False)
    [finding] = cb.findings
    assert 0 <= finding.evidence["train_loss"] < finding.evidence["val_loss"] < 0.5  # 1 - auc
    assert bst.attr("tripwire_losses") == "loss = 1 - dtrain-auc, val_loss = 1 - eval-auc"


def test_class_imbalance_fires_from_the_labels_given(data):
    X, y = data(n=2000)
    keep = (y == 0) | (np.arange(len(y)) % 20 == 0)  # keep 1 in 20 of class 1
    X, y = X[keep], y[keep]
    cb = XGBoostTripwire({"rules": {"class_imbalance": {}}}, labels=y, log_dir=False)
    xgb.train({"max_depth": 3}, xgb.DMatrix(X, y), 10, callbacks=[cb])
    [finding] = cb.findings
    assert finding.kind == "class_imbalance" and finding.value > 10


def test_a_healthy_run_is_silent_with_the_default_rules(data, tmp_path):
    X, y = data(n=12000, features=12, informative=12, noise=0.5)
    dtrain, dval = xgb.DMatrix(X[:8000], y[:8000]), xgb.DMatrix(X[8000:], y[8000:])
    cb = XGBoostTripwire(labels=y[:8000], log_dir=tmp_path)
    default_rules = set(cb.monitor.engine.rules)
    assert {"tree_depth", "low_feature_importance", "overfit", "overtraining", "underfit",
            "class_imbalance"} <= default_rules
    xgb.train({"max_depth": 4, "eta": 0.1, "eval_metric": ["auc", "logloss"]}, dtrain, 120,
              evals=[(dtrain, "train"), (dval, "validation")], callbacks=[cb], verbose_eval=False)
    assert cb.findings == []
    with Run(cb.record_path) as run:  # silent because healthy, not because nothing was measured
        assert {"loss", "val_loss", "tree_depth", "feature_importance", "label_count"} <= set(run.names())
        assert run.series("val_loss")[0].tolist() == [*range(0, 120, 10), 119]  # every 10th round, and the last


def breast_cancer_run(cb, eta, rounds, early_stopping=None):
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    x, y = load_breast_cancer(return_X_y=True)
    xt, xv, yt, yv = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    params = {"objective": "binary:logistic", "eta": eta, "max_depth": 4, "subsample": 0.8, "colsample_bytree": 0.8,
              "eval_metric": "logloss", "seed": 0, "nthread": 1}
    return xgb.train(params, xgb.DMatrix(xt, yt), rounds, evals=[(xgb.DMatrix(xt, yt), "train"),
                     (xgb.DMatrix(xv, yv), "validation")], early_stopping_rounds=early_stopping,
                     verbose_eval=False, callbacks=[cb])


def test_validation_patience_counts_boosting_rounds_times_eta():
    # breast cancer at eta 0.05 with early stopping after 40 rounds, the usual recipe: the training
    # loss heads for 0 (boosting) while val_loss flattens; patience measured in samples (50 rounds)
    # fired before XGBoost's own early stopping, measured in rounds x eta (100 rounds) it does not
    cb = XGBoostTripwire(None, log_dir=False)
    bst = breast_cancer_run(cb, eta=0.05, rounds=600, early_stopping=40)
    assert bst.num_boosted_rounds() < 600  # early stopping ended it
    assert not {"overfit", "overtraining"} & set(kinds(cb)), [str(f) for f in cb.findings]
    fast = XGBoostTripwire(None, log_dir=False)  # the same trees at eta 0.5 without early stopping
    breast_cancer_run(fast, eta=0.5, rounds=300)
    assert "overtraining" in kinds(fast)


def test_a_large_stable_gap_of_an_early_stopped_run_is_not_overfitting():
    # breast cancer at eta 0.1 with a 50-round early-stopping window, longer than overfit's patience
    # (3 rounds x eta = 30 rounds): the gap to the training loss is large (boosting drives the
    # training loss to 0) but it stops growing after the best round, and most of the training
    # progress reached validation (0.58 -> 0.15); judging the gap's size alone fired at round 80
    cb = XGBoostTripwire(None, log_dir=False)
    bst = breast_cancer_run(cb, eta=0.1, rounds=600, early_stopping=50)
    assert bst.num_boosted_rounds() < 600
    assert "overfit" not in kinds(cb), [str(f) for f in cb.findings]
