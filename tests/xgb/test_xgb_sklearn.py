"""The sklearn API: callbacks are a constructor argument, so the callback must clone, copy and pickle."""

from __future__ import annotations

import copy
import pickle

import pytest

xgb = pytest.importorskip("xgboost")
sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from tripwire import XGBoostTripwire

pytestmark = pytest.mark.xgboost

DEPTH = {"rules": {"tree_depth": {"max_depth": 5}, "overfit": {}}}


def test_classifier_fit_reports_on_the_callback_and_the_model(data):
    X, y = data(n=1500, noise=1.0)
    cb = XGBoostTripwire(DEPTH, stop_on=["tree_depth"], labels=y, log_dir=False)
    model = xgb.XGBClassifier(n_estimators=50, max_depth=10, min_child_weight=0, callbacks=[cb]).fit(X, y)
    assert cb.stopped_by is not None and cb.stopped_by.kind == "tree_depth"
    assert model.get_booster().num_boosted_rounds() == cb.stopped_by.step + 1
    assert XGBoostTripwire.findings_of(model) == cb.findings
    assert XGBoostTripwire.stopped_by_of(model) == cb.stopped_by


def test_sklearn_eval_set_names_take_validation_0_as_train(data):
    X, y = data(n=2080, features=20, informative=5, noise=1.5)
    cb = XGBoostTripwire({"rules": {"overfit": {}}}, log_dir=False)
    model = xgb.XGBClassifier(n_estimators=60, max_depth=12, min_child_weight=0, reg_lambda=0, callbacks=[cb])
    model.fit(X[:80], y[:80], eval_set=[(X[:80], y[:80]), (X[80:], y[80:])], verbose=False)
    assert model.get_booster().attr("tripwire_losses") == "loss = validation_0-logloss, val_loss = validation_1-logloss"
    assert [f.kind for f in cb.findings] == ["overfit"]


def test_clone_gives_an_independent_callback_that_trains(data):
    X, y = data(n=800, noise=1.0)
    cb = XGBoostTripwire(DEPTH, stop_on=["tree_depth"], interval=5, log_dir=False)
    model = xgb.XGBClassifier(n_estimators=20, max_depth=10, min_child_weight=0, callbacks=[cb])
    twin = clone(model)
    [cb2] = twin.get_params()["callbacks"]
    assert cb2 is not cb and isinstance(cb2, XGBoostTripwire)
    assert (cb2.interval, cb2.stop_on, cb2.config) == (cb.interval, cb.stop_on, cb.config)
    twin.fit(X, y)
    assert cb2.stopped_by is not None and cb.findings == []


def test_grid_search_runs_each_candidate_with_its_own_callback(data):
    X, y = data(n=600, noise=1.0)
    cb = XGBoostTripwire({"rules": {"tree_depth": {"max_depth": 5}}}, log_dir=False)
    search = GridSearchCV(xgb.XGBClassifier(n_estimators=10, min_child_weight=0, callbacks=[cb]),
                          {"max_depth": [2, 9]}, cv=2, n_jobs=1).fit(X, y)
    assert cb.findings == []  # the original is never trained, only clones of it
    assert len(search.cv_results_["mean_test_score"]) == 2
    shallow = clone(search.estimator).set_params(max_depth=2).fit(X, y)
    assert XGBoostTripwire.findings_of(shallow) == []
    deep = clone(search.estimator).set_params(max_depth=9).fit(X, y)
    assert [f.kind for f in XGBoostTripwire.findings_of(deep)] == ["tree_depth"]


class CopyMidway(xgb.callback.TrainingCallback):
    """Pickles and deep-copies another callback in the middle of training."""

    def __init__(self, other) -> None:
        super().__init__()
        self.other, self.copies = other, []

    def after_iteration(self, model, epoch, evals_log):
        if epoch == 12:
            self.copies = [pickle.loads(pickle.dumps(self.other)), copy.deepcopy(self.other)]
        return False


def test_callback_pickles_and_deep_copies_before_during_and_after_training(data):
    X, y = data(n=800, noise=1.0)
    cb = XGBoostTripwire(DEPTH, labels=y, log_dir=False)
    midway = CopyMidway(cb)
    assert pickle.loads(pickle.dumps(cb)).label_counts == cb.label_counts
    model = xgb.XGBClassifier(n_estimators=20, max_depth=9, min_child_weight=0, callbacks=[cb, midway])
    model.fit(X, y)
    assert len(midway.copies) == 2
    assert all(c._session is None and [f.kind for f in c.findings] == ["tree_depth"] for c in midway.copies)
    restored = pickle.loads(pickle.dumps(model))
    [cb_restored] = restored.get_params()["callbacks"][:1]
    assert cb_restored.findings == cb.findings != []
    assert XGBoostTripwire.findings_of(restored) == cb.findings
    restored.fit(X, y)  # a restored estimator trains again with its callback
    assert cb_restored.findings == cb.findings
