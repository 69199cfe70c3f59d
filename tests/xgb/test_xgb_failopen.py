"""Never break the user's training: a failure inside XGBoostTripwire's own code switches off only
the failing part, with one warning naming it, and the booster comes out exactly as it would
without tripwire (same predictions). With ``strict=True`` the failure reaches the user instead.

Each row of ``POINTS`` makes one of tripwire's own functions raise and names the part that must
go off, a statistic that must then be missing and one (from another part) that must still arrive.
Every row runs through ``xgboost.train`` and the sklearn API; one runs on ``xgboost.dask``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pytest

xgb = pytest.importorskip("xgboost")

from tripwire import XGBoostTripwire
from tripwire.callbacks.xgboost import callback as adapter
from tripwire.callbacks.xgboost import trees as xgboost_trees
from tripwire.callbacks.xgboost.evals import EvalReader
from tripwire.callbacks.xgboost.heldout import HeldOut
from tripwire.callbacks.xgboost.trees import TreeTracker

pytestmark = pytest.mark.xgboost

ROUNDS = 20
PARAMS = {"max_depth": 3, "nthread": 1, "objective": "binary:logistic", "eval_metric": "logloss"}
CONFIG = {"interval": 5}  # the default rule set: trees, importance, losses and labels all needed


class Injected(RuntimeError):
    """The failure planted in tripwire's own code."""


@dataclass(frozen=True)
class Point:
    owner: object
    name: str
    part: str
    gone: str | None
    kept: str

    def __str__(self) -> str:
        return f"{self.part} ({self.name})"


POINTS = [
    Point(adapter, "count_labels", "label statistics", "label_count", "tree_depth"),
    Point(TreeTracker, "__init__", "reading the trees", "tree_depth", "loss"),
    Point(TreeTracker, "new_rounds", "reading the trees", "feature_importance", "loss"),
    Point(xgboost_trees, "tree_depth", "tree depth", "tree_depth", "feature_importance"),
    Point(TreeTracker, "_add_gain", "feature importance", "feature_importance", "tree_depth"),
    Point(HeldOut, "zscores", "held-out importance", "heldout_importance", "feature_importance"),
    Point(EvalReader, "resolve", "losses from evals_log", "val_loss", "tree_depth"),
    Point(EvalReader, "losses", "losses from evals_log", "loss", "label_count"),
    Point(XGBoostTripwire, "_attributes", "storing the findings in the booster", None, "tree_depth"),
]


def inject(monkeypatch, point: Point) -> None:
    def failing(*args, **kwargs):
        raise Injected(f"planted in {point.name}")

    monkeypatch.setattr(point.owner, point.name, failing)


@pytest.fixture()
def sets(data):
    X, y = data(n=600, features=6, informative=4, noise=1.0)
    return (X[:400], y[:400]), (X[400:], y[400:])


def train(api: str, sets, callback=None) -> tuple[np.ndarray, object]:
    """A seeded fit with a train and a validation set; its predictions on the training rows and the booster."""
    (X, y), (Xv, yv) = sets
    callbacks = [] if callback is None else [callback]
    if api == "sklearn":
        model = xgb.XGBClassifier(n_estimators=ROUNDS, random_state=0, callbacks=callbacks, **PARAMS)
        model.fit(X, y, eval_set=[(X, y), (Xv, yv)], verbose=False)
        return model.predict_proba(X), model.get_booster()
    dtrain, dval = xgb.DMatrix(X, y), xgb.DMatrix(Xv, yv)
    booster = xgb.train({**PARAMS, "seed": 0}, dtrain, ROUNDS, evals=[(dtrain, "train"), (dval, "eval")],
                        callbacks=callbacks, verbose_eval=False)
    return booster.predict(dtrain), booster


def recorded(monkeypatch) -> list:
    """The samples the callback builds from now on."""
    samples: list = []
    build = XGBoostTripwire._sample

    def keep(self, model, s, *final):
        samples.append(build(self, model, s, *final))
        return samples[-1]

    monkeypatch.setattr(XGBoostTripwire, "_sample", keep)
    return samples


@pytest.mark.parametrize("api", ["train", "sklearn"])
@pytest.mark.parametrize("point", POINTS, ids=str)
def test_a_failing_part_is_switched_off_alone_and_the_model_is_unchanged(point, api, sets, monkeypatch, caplog):
    untouched, _ = train(api, sets)
    samples = recorded(monkeypatch)
    inject(monkeypatch, point)
    with caplog.at_level(logging.WARNING, logger="tripwire"):
        callback = XGBoostTripwire(CONFIG, labels=sets[0][1], log_dir=False, eval_data=sets[1])
        predictions, booster = train(api, sets, callback)
    assert booster.num_boosted_rounds() == ROUNDS
    np.testing.assert_array_equal(predictions, untouched)
    assert list(callback.switched_off) == [point.part]
    warned = [r.getMessage() for r in caplog.records if "failed and is off" in r.getMessage()]
    assert len(warned) == 1 and point.part in warned[0] and "Injected: planted in" in warned[0]
    stats = {name.split("[")[0] for sample in samples for name in sample.stats}
    if point.gone is not None:
        assert point.gone not in stats
    assert point.kept in stats
    if point.name == "_attributes":
        assert booster.attr(adapter.FINDINGS_ATTR) is None


@pytest.mark.parametrize("api", ["train", "sklearn"])
@pytest.mark.parametrize("point", POINTS, ids=str)
def test_strict_lets_the_failure_reach_the_user(point, api, sets, monkeypatch):
    inject(monkeypatch, point)
    with pytest.raises(Injected, match="planted in"):
        train(api, sets, XGBoostTripwire(CONFIG, labels=sets[0][1], log_dir=False, strict=True,
                                      eval_data=sets[1]))


def test_regression_labels_are_still_a_setting_error_not_a_part_switched_off():
    with pytest.raises(ValueError, match="labels= takes class labels"):
        XGBoostTripwire(CONFIG, labels=[0.5, 1.5, 2.25], log_dir=False)


@pytest.mark.timeout(120)
def test_on_dask_every_worker_switches_off_the_same_part_and_trains_on(monkeypatch, caplog):
    """Both workers lose tree_depth at the same round: neither stops on it alone (that would leave
    the other waiting in its next allreduce), and the booster is the one trained without tripwire."""
    pytest.importorskip("xgboost.dask")
    import dask.array as da
    from distributed import Client, LocalCluster
    from xgboost import dask as dxgb

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        X = da.random.RandomState(0).normal(size=(2000, 6), chunks=(500, 6))
        y = X[:, 0] + da.random.RandomState(1).normal(size=2000, chunks=500)
        d = dxgb.DaskDMatrix(client, X, y)
        params = {"max_depth": 6, "min_child_weight": 0, "nthread": 1}
        untouched = dxgb.train(client, params, d, ROUNDS)["booster"]
        inject(monkeypatch, Point(xgboost_trees, "tree_depth", "tree depth", None, ""))
        cb = XGBoostTripwire({"rules": {"tree_depth": {"max_depth": 2}}}, stop_on=["tree_depth"], interval=5,
                             log_dir=False)
        with caplog.at_level(logging.WARNING, logger="tripwire"):
            booster = dxgb.train(client, params, d, ROUNDS, callbacks=[cb])["booster"]
        assert booster.num_boosted_rounds() == ROUNDS  # without the failure, tree_depth stops at round 4
        assert XGBoostTripwire.findings_of(booster) == []
        np.testing.assert_array_equal(booster.predict(xgb.DMatrix(X.compute())),
                                      untouched.predict(xgb.DMatrix(X.compute())))
        warned = [r.getMessage() for r in caplog.records if "failed and is off" in r.getMessage()]
        assert len(warned) == 2 and all("tree depth" in w for w in warned)  # one per worker
